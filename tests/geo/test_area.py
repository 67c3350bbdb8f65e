"""The Qingdao service area and districts, loaded from the shipped GCJ-02 GeoJSON."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import pytest
import shapely

from geo.area import District, ServiceArea
from geo.crs import Crs, from_wgs84, gcj02_to_wgs84

_NAME = "qingdao-districts.gcj02.geojson"
_ROOT = Path(__file__).resolve().parents[2]
_CANDIDATES = [_ROOT / "rescue" / "data" / _NAME, _ROOT.parent / "shared" / "data" / _NAME]

ADCODES = {
    "370202",
    "370203",
    "370211",
    "370212",
    "370213",
    "370214",
    "370215",
    "370281",
    "370283",
    "370285",
}
MAY_FOURTH_SQUARE = (36.0620, 120.3780)  # WGS-84, in 市南 Shinan
SEA = (36.0, 120.5)  # Yellow Sea, south of Laoshan


@pytest.fixture(scope="module")
def fc() -> dict[str, Any]:
    path = next(p for p in _CANDIDATES if p.exists())
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def area(fc: dict[str, Any]) -> ServiceArea:
    return ServiceArea.from_geojson(fc, crs=Crs.GCJ02)


def test_construction_is_fast(fc: dict[str, Any]) -> None:
    start = time.perf_counter()
    ServiceArea.from_geojson(fc)
    assert time.perf_counter() - start < 1.0


def test_districts(area: ServiceArea) -> None:
    assert {d.adcode for d in area.districts} == ADCODES
    shinan = area.district("370202")
    assert isinstance(shinan, District)
    assert (shinan.name, shinan.name_en) == ("市南区", "Shinan")
    assert (area.adcode, area.name_en) == ("370200", "Qingdao")
    with pytest.raises(KeyError):
        area.district("370100")


def test_point_in_shinan(area: ServiceArea) -> None:
    assert area.contains(*MAY_FOURTH_SQUARE)
    district = area.district_of(*MAY_FOURTH_SQUARE)
    assert district is not None and district.adcode == "370202"


def test_sea_and_swapped_points_are_outside(area: ServiceArea) -> None:
    assert not area.contains(*SEA)
    assert area.district_of(*SEA) is None
    lat, lng = MAY_FOURTH_SQUARE
    assert not area.contains(lng, lat)
    assert area.district_of(lng, lat) is None
    assert not area.contains(39.9042, 116.4074)  # Beijing
    assert not area.contains(float("nan"), 120.0)


def test_every_district_is_found_at_its_own_interior_point(area: ServiceArea) -> None:
    for district in area.districts:
        point = shapely.point_on_surface(district.geometry)
        found = area.district_of(point.y, point.x)
        assert found is not None and found.adcode == district.adcode


def test_geometry_is_held_in_wgs84(fc: dict[str, Any], area: ServiceArea) -> None:
    # The first vertex of the file, converted, is a vertex of the district held in memory.
    feature = next(f for f in fc["features"] if f["properties"]["adcode"] == "370202")
    g_lng, g_lat = feature["geometry"]["coordinates"][0][0][0]
    w_lat, w_lng = gcj02_to_wgs84(g_lat, g_lng)
    boundary = area.district("370202").geometry.boundary
    assert shapely.distance(boundary, shapely.Point(w_lng, w_lat)) < 1e-9
    assert shapely.distance(boundary, shapely.Point(g_lng, g_lat)) > 1e-3
    raw = ServiceArea.from_geojson(fc, crs=Crs.WGS84)
    assert raw.bounds[1] == pytest.approx(119.514825, abs=1e-9)
    assert area.bounds[1] == pytest.approx(119.514825 - 0.0055, abs=0.001)


def test_bounds_are_lat_lng(area: ServiceArea) -> None:
    min_lat, min_lng, max_lat, max_lng = area.bounds
    assert 35.5 < min_lat < 35.7 and 37.0 < max_lat < 37.2
    assert 119.4 < min_lng < 119.6 and 121.0 < max_lng < 121.1
    s_min_lat, s_min_lng, s_max_lat, s_max_lng = area.district("370202").bounds
    assert min_lat < s_min_lat < s_max_lat < max_lat
    assert min_lng < s_min_lng < s_max_lng < max_lng


def test_gcj02_and_bd09_inputs_are_converted(area: ServiceArea) -> None:
    # Near the coast a ~500 m shift changes the answer; find such points and check that the
    # answer for a GCJ-02 (or BD-09) input is the answer for the WGS-84 point it stands for.
    rng = random.Random(20240106)
    min_lat, min_lng, max_lat, max_lng = area.bounds
    differing = 0
    for _ in range(3000):
        lat, lng = rng.uniform(min_lat, max_lat), rng.uniform(min_lng, max_lng)
        truth = area.contains(lat, lng)
        gcj = from_wgs84(lat, lng, Crs.GCJ02)
        if area.contains(*gcj) != truth:
            differing += 1
        assert area.contains(*gcj, crs=Crs.GCJ02) == truth
        assert area.contains(*from_wgs84(lat, lng, Crs.BD09), crs=Crs.BD09) == truth
        expected = area.district_of(lat, lng)
        assert area.district_of(*gcj, crs=Crs.GCJ02) == expected
    assert differing > 0  # the sample did exercise the conversion


def test_outline_defaults_to_union_of_districts(fc: dict[str, Any], area: ServiceArea) -> None:
    districts_only = {
        **fc,
        "features": [f for f in fc["features"] if f["properties"]["level"] != "city"],
    }
    union = ServiceArea.from_geojson(districts_only)
    assert union.contains(*MAY_FOURTH_SQUARE)
    assert not union.contains(*SEA)
    assert union.bounds == pytest.approx(area.bounds, abs=1e-6)


def test_rejects_what_is_not_a_feature_collection() -> None:
    with pytest.raises(ValueError):
        ServiceArea.from_geojson({"type": "Feature"})


def test_random_points_stay_inside(area: ServiceArea) -> None:
    rng = random.Random(1)
    for district in area.districts:
        for _ in range(30):
            lat, lng = area.random_point_in(district, rng)
            assert shapely.contains_xy(district.geometry, lng, lat)
            assert area.contains(lat, lng)
            found = area.district_of(lat, lng)
            assert found is not None and found.adcode == district.adcode
    by_code = area.random_point_in("370202", rng)
    assert area.district_of(*by_code) == area.district("370202")
    in_outline = area.random_point_in(area.outline, rng)
    assert area.contains(*in_outline)


def test_random_points_are_deterministic_and_spread(area: ServiceArea) -> None:
    first = [area.random_point_in("370211", random.Random(7)) for _ in range(3)]
    assert first[0] == first[1] == first[2]
    rng = random.Random(7)
    points = {area.random_point_in("370211", rng) for _ in range(50)}
    assert len(points) == 50


def test_to_geojson(area: ServiceArea) -> None:
    out = area.to_geojson()
    assert out["type"] == "FeatureCollection"
    assert {f["properties"]["adcode"] for f in out["features"]} == ADCODES
    json.dumps(out)  # serialisable as is
    shinan = next(f for f in out["features"] if f["properties"]["adcode"] == "370202")
    ring = shinan["geometry"]["coordinates"][0][0]
    for lng, lat in ring:
        assert round(lng, 6) == lng and round(lat, 6) == lat
    # WGS-84 (lng, lat) order, matching the geometry held in memory.
    held = shapely.get_coordinates(area.district("370202").geometry)[0]
    assert ring[0] == pytest.approx([held[0], held[1]], abs=1e-6)
    assert shapely.from_geojson(json.dumps(shinan["geometry"])).is_valid


def test_point_queries_are_fast(area: ServiceArea) -> None:
    rng = random.Random(3)
    min_lat, min_lng, max_lat, max_lng = area.bounds
    points = [(rng.uniform(min_lat, max_lat), rng.uniform(min_lng, max_lng)) for _ in range(2000)]
    start = time.perf_counter()
    for lat, lng in points:
        area.contains(lat, lng)
        area.district_of(lat, lng)
    per_query_s = (time.perf_counter() - start) / (2 * len(points))
    assert per_query_s < 100e-6  # tens of microseconds; generous for slow CI machines
