"""Coordinate conversions: published reference vectors, round trips, points outside China."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.crs import (
    Crs,
    bd09_to_gcj02,
    bd09_to_wgs84,
    from_wgs84,
    from_wgs84_array,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    out_of_china,
    to_wgs84,
    to_wgs84_array,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from geo.distance import haversine_m

Convert = Callable[[float, float], tuple[float, float]]

CM = 0.01

# Qingdao's service area, generously.
qd_lat = st.floats(min_value=35.5, max_value=37.2)
qd_lng = st.floats(min_value=119.5, max_value=121.0)

# (forward, inverse) pairs: every one of the six functions appears once on each side.
PAIRS: list[tuple[str, Convert, Convert]] = [
    ("wgs84->gcj02", wgs84_to_gcj02, gcj02_to_wgs84),
    ("gcj02->bd09", gcj02_to_bd09, bd09_to_gcj02),
    ("wgs84->bd09", wgs84_to_bd09, bd09_to_wgs84),
]
ALL_SIX: list[Convert] = [f for _, fwd, inv in PAIRS for f in (fwd, inv)]


def _dist(a: tuple[float, float], b: tuple[float, float]) -> float:
    return haversine_m(a[0], a[1], b[0], b[1])


# --- published reference points -------------------------------------------------------------

# wandergis/coordtransform README.md (the widely copied JavaScript implementation of the same
# Krasovsky-1940 GCJ-02 and BD-09 formulas); its functions take and return (lng, lat), the
# values below are reordered to (lat, lng). Input (lat 39.915, lng 116.404) in Beijing.
CT_INPUT = (39.915, 116.404)
CT_WGS84_TO_GCJ02 = (39.91640428150164, 116.41024449916938)
CT_GCJ02_TO_BD09 = (39.92133699351021, 116.41036949371029)
CT_BD09_TO_GCJ02 = (39.90865673957631, 116.39762729119315)  # its one-step closed form
CT_GCJ02_TO_WGS84 = (39.91359571849836, 116.39775550083061)  # its one-step approximation

# googollee/eviltransform python/test.py: (wgs lat, wgs lng, gcj lat, gcj lng).
EVILTRANSFORM = [
    (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),  # Shanghai
    (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),  # Shenzhen
    (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),  # Beijing
]


def test_wgs84_to_gcj02_matches_coordtransform() -> None:
    assert wgs84_to_gcj02(*CT_INPUT) == pytest.approx(CT_WGS84_TO_GCJ02, abs=1e-9)


def test_gcj02_to_bd09_matches_coordtransform() -> None:
    assert gcj02_to_bd09(*CT_INPUT) == pytest.approx(CT_GCJ02_TO_BD09, abs=1e-9)


def test_bd09_to_gcj02_refines_the_published_closed_form() -> None:
    ours = bd09_to_gcj02(*CT_INPUT)
    # The closed form is only approximate (a few cm): ours is close to it...
    assert _dist(ours, CT_BD09_TO_GCJ02) < 0.2
    # ...but, unlike it, maps back onto the input.
    assert _dist(gcj02_to_bd09(*ours), CT_INPUT) < 1e-3
    assert _dist(gcj02_to_bd09(*CT_BD09_TO_GCJ02), CT_INPUT) > _dist(gcj02_to_bd09(*ours), CT_INPUT)


def test_gcj02_to_wgs84_refines_the_one_step_approximation() -> None:
    ours = gcj02_to_wgs84(*CT_INPUT)
    assert _dist(ours, CT_GCJ02_TO_WGS84) < 1.0
    assert _dist(wgs84_to_gcj02(*ours), CT_INPUT) < 1e-3
    # The one-step approximation misses by centimetres; the iteration must do better.
    assert _dist(wgs84_to_gcj02(*CT_GCJ02_TO_WGS84), CT_INPUT) > CM


@pytest.mark.parametrize(("wlat", "wlng", "glat", "glng"), EVILTRANSFORM)
def test_eviltransform_vectors(wlat: float, wlng: float, glat: float, glng: float) -> None:
    assert wgs84_to_gcj02(wlat, wlng) == pytest.approx((glat, glng), abs=1e-8)
    assert _dist(gcj02_to_wgs84(glat, glng), (wlat, wlng)) < CM


def test_gcj02_offset_in_qingdao_is_hundreds_of_metres() -> None:
    # May Fourth Square: the shift is what makes a wrong CRS a wrong answer (API.md).
    wgs = (36.0620, 120.3780)
    offset = _dist(wgs84_to_gcj02(*wgs), wgs)
    assert 300 < offset < 700
    assert _dist(wgs84_to_bd09(*wgs), wgs) > offset


# --- round trips over the Qingdao service area ----------------------------------------------


@pytest.mark.parametrize(("name", "forward", "inverse"), PAIRS, ids=[p[0] for p in PAIRS])
@settings(max_examples=300, deadline=None)
@given(lat=qd_lat, lng=qd_lng)
def test_inverse_of_forward_is_identity(
    name: str, forward: Convert, inverse: Convert, lat: float, lng: float
) -> None:
    shifted = forward(lat, lng)
    assert _dist(shifted, (lat, lng)) > 100  # it really moved
    assert _dist(inverse(*shifted), (lat, lng)) < CM


@pytest.mark.parametrize(("name", "forward", "inverse"), PAIRS, ids=[p[0] for p in PAIRS])
@settings(max_examples=300, deadline=None)
@given(lat=qd_lat, lng=qd_lng)
def test_forward_of_inverse_is_identity(
    name: str, forward: Convert, inverse: Convert, lat: float, lng: float
) -> None:
    assert _dist(forward(*inverse(lat, lng)), (lat, lng)) < CM


@settings(max_examples=200, deadline=None)
@given(lat=qd_lat, lng=qd_lng)
def test_composed_paths_agree(lat: float, lng: float) -> None:
    assert _dist(wgs84_to_bd09(lat, lng), gcj02_to_bd09(*wgs84_to_gcj02(lat, lng))) < 1e-6
    assert _dist(bd09_to_wgs84(lat, lng), gcj02_to_wgs84(*bd09_to_gcj02(lat, lng))) < 1e-6


# --- outside China --------------------------------------------------------------------------

OUTSIDE = [
    (51.5074, -0.1278),  # London
    (35.6762, 139.6503),  # Tokyo: east of the box
    (-33.8688, 151.2093),  # Sydney
    (0.5, 100.0),  # south of the box
    (56.0, 100.0),  # north of the box
    (40.0, 72.0),  # just west of the box
]


@pytest.mark.parametrize("point", OUTSIDE)
@pytest.mark.parametrize("convert", ALL_SIX)
def test_points_outside_china_are_unchanged(point: tuple[float, float], convert: Convert) -> None:
    assert out_of_china(*point)
    assert convert(*point) == point


@settings(max_examples=200)
@given(
    lat=st.floats(min_value=-89.9, max_value=89.9),
    lng=st.one_of(
        st.floats(min_value=-179.9, max_value=71.9), st.floats(min_value=137.9, max_value=179.9)
    ),
)
def test_any_point_outside_the_box_is_unchanged(lat: float, lng: float) -> None:
    for convert in ALL_SIX:
        assert convert(lat, lng) == (lat, lng)


def test_out_of_china_box_edges() -> None:
    assert not out_of_china(36.06, 120.38)
    assert not out_of_china(0.8293, 72.004)
    assert not out_of_china(55.8271, 137.8347)
    assert out_of_china(0.8292, 100.0)
    assert out_of_china(55.8272, 100.0)
    assert out_of_china(30.0, 72.0039)
    assert out_of_china(30.0, 137.8348)


# --- dispatch by Crs and the vectorised forms -----------------------------------------------


def test_crs_values() -> None:
    assert [c.value for c in Crs] == ["wgs84", "gcj02", "bd09"]
    assert Crs("gcj02") is Crs.GCJ02
    assert str(Crs.BD09) == "bd09"


def test_to_and_from_wgs84_dispatch() -> None:
    p = (36.0620, 120.3780)
    assert to_wgs84(*p, Crs.WGS84) == p
    assert from_wgs84(*p, Crs.WGS84) == p
    assert from_wgs84(*p, Crs.GCJ02) == wgs84_to_gcj02(*p)
    assert from_wgs84(*p, Crs.BD09) == wgs84_to_bd09(*p)
    assert to_wgs84(*p, Crs.GCJ02) == gcj02_to_wgs84(*p)
    assert to_wgs84(*p, Crs.BD09) == bd09_to_wgs84(*p)


@settings(max_examples=100, deadline=None)
@given(lat=qd_lat, lng=qd_lng, crs=st.sampled_from(list(Crs)))
def test_to_wgs84_inverts_from_wgs84(lat: float, lng: float, crs: Crs) -> None:
    assert _dist(to_wgs84(*from_wgs84(lat, lng, crs), crs), (lat, lng)) < CM


@pytest.mark.parametrize("crs", list(Crs))
def test_array_versions_agree_with_scalar(crs: Crs) -> None:
    rng = np.random.default_rng(7)
    lat = np.concatenate([rng.uniform(35.5, 37.2, 200), [51.5, -33.9]])
    lng = np.concatenate([rng.uniform(119.5, 121.0, 200), [-0.12, 151.2]])
    to_lat, to_lng = to_wgs84_array(lat, lng, crs)
    from_lat, from_lng = from_wgs84_array(lat, lng, crs)
    for i in range(len(lat)):
        expected_to = to_wgs84(float(lat[i]), float(lng[i]), crs)
        expected_from = from_wgs84(float(lat[i]), float(lng[i]), crs)
        assert _dist((float(to_lat[i]), float(to_lng[i])), expected_to) < 1e-3
        assert _dist((float(from_lat[i]), float(from_lng[i])), expected_from) < 1e-3
    assert (to_lat[-1], to_lng[-1]) == (lat[-1], lng[-1])  # outside China: unchanged


def test_conversions_return_lat_lng_order() -> None:
    lat, lng = wgs84_to_gcj02(36.0620, 120.3780)
    assert math.isclose(lat, 36.06, abs_tol=0.01)
    assert math.isclose(lng, 120.38, abs_tol=0.01)
