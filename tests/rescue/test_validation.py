"""Fields: the location forms and unknown-field checks used on the position-update path."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from geo import Crs, to_wgs84
from rescue.errors import Problem
from rescue.validation import Fields

POINT = (36.0621, 120.3847)


@pytest.mark.parametrize("crs", list(Crs))
def test_location_fields_convert_from_the_named_crs(crs: Crs) -> None:
    body = {"lat": POINT[0], "lng": POINT[1], "crs": crs.value}
    fields = Fields(body)
    assert fields.location_fields(body, default_crs=Crs.WGS84) == to_wgs84(*POINT, crs)
    assert fields.problems == []


def test_location_fields_default_crs_and_bad_crs() -> None:
    body = {"lat": POINT[0], "lng": POINT[1]}
    fields = Fields(body)
    assert fields.location_fields(body, default_crs=Crs.GCJ02) == to_wgs84(*POINT, Crs.GCJ02)
    bad = {**body, "crs": "osgb"}
    fields = Fields({"location": bad})
    assert fields.location("location", default_crs=Crs.WGS84) is None
    assert fields.problems == [Problem("location.crs", "must be one of wgs84, gcj02, bd09")]


@pytest.mark.parametrize("allowed", [["lat", "lng"], frozenset({"lat", "lng"}), ("lat", "lng")])
def test_unknown_fields_are_named_whatever_the_collection(allowed: Iterable[str]) -> None:
    fields = Fields({"lat": 1, "speed": 3, "lng": 2, "heading": 4})
    fields.unknown(allowed)
    assert [p.field for p in fields.problems] == ["speed", "heading"]
