"""Great-circle distances and the conservative bounding box."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.distance import EARTH_RADIUS_M, bbox_around, haversine_m


def _destination(lat: float, lng: float, bearing_deg: float, dist_m: float) -> tuple[float, float]:
    """The point dist_m along a great circle from (lat, lng): the standard direct formula."""
    d = dist_m / EARTH_RADIUS_M
    phi1, lam1, theta = math.radians(lat), math.radians(lng), math.radians(bearing_deg)
    phi2 = math.asin(math.sin(phi1) * math.cos(d) + math.cos(phi1) * math.sin(d) * math.cos(theta))
    lam2 = lam1 + math.atan2(
        math.sin(theta) * math.sin(d) * math.cos(phi1),
        math.cos(d) - math.sin(phi1) * math.sin(phi2),
    )
    lng2 = (math.degrees(lam2) + 540.0) % 360.0 - 180.0
    return math.degrees(phi2), lng2


def test_earth_radius() -> None:
    assert EARTH_RADIUS_M == 6_371_008.8


def test_one_degree_of_latitude_and_of_longitude_on_the_equator() -> None:
    one_degree = EARTH_RADIUS_M * math.pi / 180  # 111,195.08 m
    assert haversine_m(36.0, 120.0, 37.0, 120.0) == pytest.approx(one_degree, rel=1e-12)
    assert haversine_m(0.0, 10.0, 0.0, 11.0) == pytest.approx(one_degree, rel=1e-12)
    assert one_degree == pytest.approx(111_195.08, abs=0.01)


def test_rosetta_code_reference() -> None:
    # Rosetta Code "Haversine formula": Nashville BNA (36.12, -86.67) to Los Angeles LAX
    # (33.94, -118.40) is 2887.2599506071106 km on a sphere of radius 6372.8 km; the distance
    # scales with the radius.
    expected = 2887.2599506071106e3 * EARTH_RADIUS_M / 6372.8e3
    assert haversine_m(36.12, -86.67, 33.94, -118.40) == pytest.approx(expected, rel=1e-12)


def test_longitude_degree_shrinks_with_latitude() -> None:
    at_qingdao = haversine_m(36.0, 120.0, 36.0, 121.0)
    assert at_qingdao == pytest.approx(90_000, rel=0.01)  # cos(36 deg) * 111.2 km


def test_zero_symmetric_and_antipodal() -> None:
    assert haversine_m(36.06, 120.38, 36.06, 120.38) == 0.0
    a = haversine_m(36.06, 120.38, 36.10, 120.45)
    assert a == haversine_m(36.10, 120.45, 36.06, 120.38)
    assert haversine_m(10.0, 20.0, -10.0, -160.0) == pytest.approx(math.pi * EARTH_RADIUS_M)


@settings(max_examples=200)
@given(
    lat=st.floats(min_value=-80, max_value=80),
    lng=st.floats(min_value=-179, max_value=179),
    bearing=st.floats(min_value=0, max_value=360),
    dist=st.floats(min_value=0, max_value=50_000),
)
def test_haversine_agrees_with_the_direct_formula(
    lat: float, lng: float, bearing: float, dist: float
) -> None:
    lat2, lng2 = _destination(lat, lng, bearing, dist)
    assert haversine_m(lat, lng, lat2, lng2) == pytest.approx(dist, abs=1e-3)


@settings(max_examples=300)
@given(
    lat=st.floats(min_value=-85, max_value=85),
    lng=st.floats(min_value=-180, max_value=180),
    bearing=st.floats(min_value=0, max_value=360),
    radius=st.floats(min_value=1, max_value=200_000),
    fraction=st.floats(min_value=0, max_value=1),
)
def test_bbox_contains_every_point_within_the_radius(
    lat: float, lng: float, bearing: float, radius: float, fraction: float
) -> None:
    min_lat, min_lng, max_lat, max_lng = bbox_around(lat, lng, radius)
    p_lat, p_lng = _destination(lat, lng, bearing, radius * fraction)
    assert min_lat <= p_lat <= max_lat
    assert min_lng <= p_lng <= max_lng


def test_bbox_is_tight_in_the_city() -> None:
    min_lat, min_lng, max_lat, max_lng = bbox_around(36.06, 120.38, 430)
    assert (max_lat - min_lat) * 111_195.08 == pytest.approx(860, rel=1e-4)
    assert haversine_m(36.06, min_lng, 36.06, max_lng) == pytest.approx(860, rel=1e-3)
    assert min_lat < 36.06 < max_lat and min_lng < 120.38 < max_lng


def test_bbox_widens_near_a_pole_and_across_the_antimeridian() -> None:
    assert bbox_around(89.999, 0.0, 1000)[1::2] == (-180.0, 180.0)
    assert bbox_around(0.0, 179.999, 1000)[1::2] == (-180.0, 180.0)
    assert bbox_around(89.999, 0.0, 1000)[2] == 90.0


def test_bbox_rejects_negative_radius() -> None:
    with pytest.raises(ValueError, match="radius_m"):
        bbox_around(36.0, 120.0, -1)
