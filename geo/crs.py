"""Coordinate reference systems used by Chinese maps: WGS-84, GCJ-02 and BD-09.

GCJ-02 is the obfuscated datum every map published in mainland China must use (AMap, Tencent,
the 120 centers' GIS); BD-09 is Baidu's further shift of GCJ-02. The forward formulas are the
standard published ones; neither has a closed-form inverse, so the inverses here iterate on the
forward formula until it reproduces the input to about 1e-9 degree (0.1 mm), far inside the
1 cm the project requires. All functions take and return (lat, lng).
"""

from __future__ import annotations

import enum
import math

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "Crs",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "from_wgs84",
    "from_wgs84_array",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "out_of_china",
    "to_wgs84",
    "to_wgs84_array",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]

FloatArray = NDArray[np.float64]


class Crs(enum.StrEnum):
    """A geographic coordinate system a location may be expressed in."""

    WGS84 = "wgs84"
    GCJ02 = "gcj02"
    BD09 = "bd09"


# Krasovsky 1940 ellipsoid, as in the published GCJ-02 formula.
_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = math.pi * 3000.0 / 180.0

# Inverse iteration: stop when the forward transform of the estimate is within this many
# degrees of the input (1e-9 deg is about 0.1 mm); the map is a contraction with a factor of
# about 1e-5, so two or three steps suffice and the bound only guards against a bad input.
_TOLERANCE_DEG = 1e-9
_MAX_ITERATIONS = 30


def out_of_china(lat: float, lng: float) -> bool:
    """Whether a point lies outside the bounding box where the GCJ-02 shift applies."""
    return lng < 72.004 or lng > 137.8347 or lat < 0.8293 or lat > 55.8271


def _gcj_delta(lat: float, lng: float) -> tuple[float, float]:
    """The GCJ-02 offset (dlat, dlng) in degrees at a WGS-84 point, without the China check."""
    x = lng - 105.0
    y = lat - 35.0
    sqrt_abs_x = math.sqrt(abs(x))
    common = (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x + common
    dlat += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    dlat += (
        (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    )
    dlng = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x + common
    dlng += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    dlng += (
        (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    )
    rad_lat = lat / 180.0 * math.pi
    magic = 1.0 - _EE * math.sin(rad_lat) ** 2
    sqrt_magic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * math.pi)
    dlng = (dlng * 180.0) / (_A / sqrt_magic * math.cos(rad_lat) * math.pi)
    return dlat, dlng


def _bd_forward(lat: float, lng: float) -> tuple[float, float]:
    """The BD-09 shift of a GCJ-02 point, without the China check."""
    z = math.hypot(lng, lat) + 0.00002 * math.sin(lat * _X_PI)
    theta = math.atan2(lat, lng) + 0.000003 * math.cos(lng * _X_PI)
    return z * math.sin(theta) + 0.006, z * math.cos(theta) + 0.0065


def wgs84_to_gcj02(lat: float, lng: float) -> tuple[float, float]:
    """Convert a WGS-84 point to GCJ-02 (points outside China are returned unchanged)."""
    if out_of_china(lat, lng):
        return lat, lng
    dlat, dlng = _gcj_delta(lat, lng)
    return lat + dlat, lng + dlng


def gcj02_to_wgs84(lat: float, lng: float) -> tuple[float, float]:
    """Convert a GCJ-02 point to WGS-84 by iterating the forward formula to within 1e-9 deg."""
    if out_of_china(lat, lng):
        return lat, lng
    dlat, dlng = _gcj_delta(lat, lng)
    w_lat, w_lng = lat - dlat, lng - dlng  # the usual one-step approximation, as a seed
    for _ in range(_MAX_ITERATIONS):
        dlat, dlng = _gcj_delta(w_lat, w_lng)
        err_lat = w_lat + dlat - lat
        err_lng = w_lng + dlng - lng
        if abs(err_lat) < _TOLERANCE_DEG and abs(err_lng) < _TOLERANCE_DEG:
            break
        w_lat -= err_lat
        w_lng -= err_lng
    return w_lat, w_lng


def gcj02_to_bd09(lat: float, lng: float) -> tuple[float, float]:
    """Convert a GCJ-02 point to BD-09 (points outside China are returned unchanged)."""
    if out_of_china(lat, lng):
        return lat, lng
    return _bd_forward(lat, lng)


def bd09_to_gcj02(lat: float, lng: float) -> tuple[float, float]:
    """Convert a BD-09 point to GCJ-02 by iterating the forward formula to within 1e-9 deg."""
    if out_of_china(lat, lng):
        return lat, lng
    x = lng - 0.0065
    y = lat - 0.006
    z = math.hypot(x, y) - 0.00002 * math.sin(y * _X_PI)
    theta = math.atan2(y, x) - 0.000003 * math.cos(x * _X_PI)
    g_lat, g_lng = z * math.sin(theta), z * math.cos(theta)  # published closed form, as a seed
    for _ in range(_MAX_ITERATIONS):
        b_lat, b_lng = _bd_forward(g_lat, g_lng)
        err_lat = b_lat - lat
        err_lng = b_lng - lng
        if abs(err_lat) < _TOLERANCE_DEG and abs(err_lng) < _TOLERANCE_DEG:
            break
        g_lat -= err_lat
        g_lng -= err_lng
    return g_lat, g_lng


def wgs84_to_bd09(lat: float, lng: float) -> tuple[float, float]:
    """Convert a WGS-84 point to BD-09."""
    if out_of_china(lat, lng):
        return lat, lng
    return _bd_forward(*wgs84_to_gcj02(lat, lng))


def bd09_to_wgs84(lat: float, lng: float) -> tuple[float, float]:
    """Convert a BD-09 point to WGS-84."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lat, lng))


def to_wgs84(lat: float, lng: float, crs: Crs) -> tuple[float, float]:
    """Convert a point expressed in `crs` to WGS-84."""
    if crs is Crs.WGS84:
        return lat, lng
    if crs is Crs.GCJ02:
        return gcj02_to_wgs84(lat, lng)
    if crs is Crs.BD09:
        return bd09_to_wgs84(lat, lng)
    raise ValueError(f"unknown crs: {crs!r}")


def from_wgs84(lat: float, lng: float, crs: Crs) -> tuple[float, float]:
    """Convert a WGS-84 point to `crs`."""
    if crs is Crs.WGS84:
        return lat, lng
    if crs is Crs.GCJ02:
        return wgs84_to_gcj02(lat, lng)
    if crs is Crs.BD09:
        return wgs84_to_bd09(lat, lng)
    raise ValueError(f"unknown crs: {crs!r}")


# Vectorised versions, for converting whole geometries (tens of thousands of vertices).


def _out_of_china_array(lat: FloatArray, lng: FloatArray) -> NDArray[np.bool_]:
    return (lng < 72.004) | (lng > 137.8347) | (lat < 0.8293) | (lat > 55.8271)


def _gcj_delta_array(lat: FloatArray, lng: FloatArray) -> tuple[FloatArray, FloatArray]:
    x = lng - 105.0
    y = lat - 35.0
    sqrt_abs_x = np.sqrt(np.abs(x))
    pi = math.pi
    common = (20.0 * np.sin(6.0 * x * pi) + 20.0 * np.sin(2.0 * x * pi)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x + common
    dlat += (20.0 * np.sin(y * pi) + 40.0 * np.sin(y / 3.0 * pi)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(y / 12.0 * pi) + 320.0 * np.sin(y * pi / 30.0)) * 2.0 / 3.0
    dlng = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x + common
    dlng += (20.0 * np.sin(x * pi) + 40.0 * np.sin(x / 3.0 * pi)) * 2.0 / 3.0
    dlng += (150.0 * np.sin(x / 12.0 * pi) + 300.0 * np.sin(x / 30.0 * pi)) * 2.0 / 3.0
    rad_lat = lat / 180.0 * pi
    magic = 1.0 - _EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * pi)
    dlng = (dlng * 180.0) / (_A / sqrt_magic * np.cos(rad_lat) * pi)
    return dlat, dlng


def _bd_forward_array(lat: FloatArray, lng: FloatArray) -> tuple[FloatArray, FloatArray]:
    z = np.hypot(lng, lat) + 0.00002 * np.sin(lat * _X_PI)
    theta = np.arctan2(lat, lng) + 0.000003 * np.cos(lng * _X_PI)
    return z * np.sin(theta) + 0.006, z * np.cos(theta) + 0.0065


def _gcj02_to_wgs84_array(lat: FloatArray, lng: FloatArray) -> tuple[FloatArray, FloatArray]:
    dlat, dlng = _gcj_delta_array(lat, lng)
    w_lat, w_lng = lat - dlat, lng - dlng
    for _ in range(_MAX_ITERATIONS):
        dlat, dlng = _gcj_delta_array(w_lat, w_lng)
        err_lat = w_lat + dlat - lat
        err_lng = w_lng + dlng - lng
        if np.all(np.abs(err_lat) < _TOLERANCE_DEG) and np.all(np.abs(err_lng) < _TOLERANCE_DEG):
            break
        w_lat = w_lat - err_lat
        w_lng = w_lng - err_lng
    outside = _out_of_china_array(lat, lng)
    return np.where(outside, lat, w_lat), np.where(outside, lng, w_lng)


def _bd09_to_gcj02_array(lat: FloatArray, lng: FloatArray) -> tuple[FloatArray, FloatArray]:
    x = lng - 0.0065
    y = lat - 0.006
    z = np.hypot(x, y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    g_lat, g_lng = z * np.sin(theta), z * np.cos(theta)
    for _ in range(_MAX_ITERATIONS):
        b_lat, b_lng = _bd_forward_array(g_lat, g_lng)
        err_lat = b_lat - lat
        err_lng = b_lng - lng
        if np.all(np.abs(err_lat) < _TOLERANCE_DEG) and np.all(np.abs(err_lng) < _TOLERANCE_DEG):
            break
        g_lat = g_lat - err_lat
        g_lng = g_lng - err_lng
    outside = _out_of_china_array(lat, lng)
    return np.where(outside, lat, g_lat), np.where(outside, lng, g_lng)


def to_wgs84_array(lat: FloatArray, lng: FloatArray, crs: Crs) -> tuple[FloatArray, FloatArray]:
    """Vectorised `to_wgs84` over arrays of latitudes and longitudes."""
    lat = np.asarray(lat, dtype=np.float64)
    lng = np.asarray(lng, dtype=np.float64)
    if crs is Crs.WGS84:
        return lat.copy(), lng.copy()
    if crs is Crs.GCJ02:
        return _gcj02_to_wgs84_array(lat, lng)
    if crs is Crs.BD09:
        return _gcj02_to_wgs84_array(*_bd09_to_gcj02_array(lat, lng))
    raise ValueError(f"unknown crs: {crs!r}")


def from_wgs84_array(lat: FloatArray, lng: FloatArray, crs: Crs) -> tuple[FloatArray, FloatArray]:
    """Vectorised `from_wgs84` over arrays of latitudes and longitudes."""
    lat = np.asarray(lat, dtype=np.float64)
    lng = np.asarray(lng, dtype=np.float64)
    if crs is Crs.WGS84:
        return lat.copy(), lng.copy()
    outside = _out_of_china_array(lat, lng)
    dlat, dlng = _gcj_delta_array(lat, lng)
    g_lat, g_lng = lat + dlat, lng + dlng
    if crs is Crs.BD09:
        g_lat, g_lng = _bd_forward_array(g_lat, g_lng)
    elif crs is not Crs.GCJ02:
        raise ValueError(f"unknown crs: {crs!r}")
    return np.where(outside, lat, g_lat), np.where(outside, lng, g_lng)
