"""Great-circle distances on the mean Earth sphere."""

from __future__ import annotations

import math

__all__ = ["EARTH_RADIUS_M", "bbox_around", "haversine_m"]

EARTH_RADIUS_M = 6_371_008.8  # IUGG mean radius R1; the spherical error is under 0.5 %.

_DEG = math.pi / 180.0


def haversine_rad(
    lat1: float, lng1: float, cos_lat1: float, lat2: float, lng2: float, cos_lat2: float
) -> float:
    """Haversine distance in metres between points given in radians with their cos(lat)."""
    s_lat = math.sin((lat2 - lat1) * 0.5)
    s_lng = math.sin((lng2 - lng1) * 0.5)
    h = s_lat * s_lat + cos_lat1 * cos_lat2 * s_lng * s_lng
    return 2.0 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, h)))


def haversine_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in metres between two WGS-84 points given in degrees."""
    r_lat1 = lat1 * _DEG
    r_lat2 = lat2 * _DEG
    return haversine_rad(
        r_lat1, lng1 * _DEG, math.cos(r_lat1), r_lat2, lng2 * _DEG, math.cos(r_lat2)
    )


def bbox_around(lat: float, lng: float, radius_m: float) -> tuple[float, float, float, float]:
    """A (min_lat, min_lng, max_lat, max_lng) box containing every point within radius_m.

    Conservative: near a pole, or when the box would cross the antimeridian, it widens to the
    full longitude range rather than wrapping.
    """
    if radius_m < 0 or not math.isfinite(radius_m):
        raise ValueError(f"radius_m must be a non-negative finite number, got {radius_m!r}")
    # A hair of slack so that a point exactly on the circle is inside despite rounding.
    angle = radius_m / EARTH_RADIUS_M * (1.0 + 1e-9) + 1e-12
    dlat = angle / _DEG
    min_lat = max(-90.0, lat - dlat)
    max_lat = min(90.0, lat + dlat)
    cos_lat = math.cos(lat * _DEG)
    # The widest longitude span of a spherical cap of angular radius `angle` centred at `lat`.
    if angle >= math.pi / 2 or math.sin(angle) >= cos_lat:
        return min_lat, -180.0, max_lat, 180.0
    dlng = math.asin(math.sin(angle) / cos_lat) / _DEG
    min_lng = lng - dlng
    max_lng = lng + dlng
    if min_lng < -180.0 or max_lng > 180.0:
        return min_lat, -180.0, max_lat, 180.0
    return min_lat, min_lng, max_lat, max_lng
