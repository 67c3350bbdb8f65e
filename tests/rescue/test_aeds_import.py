"""Importing AEDs: CSV, GeoJSON and OSM/Overpass; bad rows reported; re-imports idempotent."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from geo import Crs, from_wgs84
from tests.conftest import ADMIN
from tests.rescue.aeds_support import SHIBEI, SHINAN, create_aed, stored_aeds

CSV_TYPE = {"Content-Type": "text/csv"}
GEOJSON_TYPE = {"Content-Type": "application/geo+json"}
JSON_TYPE = {"Content-Type": "application/json"}

G_LAT, G_LNG = from_wgs84(36.10, 120.47, Crs.GCJ02)

HEADER = (
    "name,lat,lng,crs,venue_type,indoor,level,opening_hours,serial_no,pads_expire_on,"
    "owner_name,owner_phone"
)
CSV_FILE = f"""{HEADER}
Mall AED,36.0622,120.3844,,mall,true,2,Mo-Su 10:00-22:00,SN-A,2030-01-01,万象城,0532-1
GCJ AED,{G_LAT!r},{G_LNG!r},gcj02,school,no,,24/7,SN-B,,,
Level AED,36.0622,120.3844,,office,,two,,SN-C,,,
Hours AED,36.0622,120.3844,,office,,,Mo-Fr 99:00,SN-D,,,
Beijing AED,39.9042,116.4074,,office,,,,SN-E,,,
Swapped AED,120.37,36.09,,office,,,,SN-F,,,
Venue AED,36.0622,120.3844,,spaceport,,,,SN-G,,,
Date AED,36.0622,120.3844,,office,,,,SN-H,2030-02-30,,
Short row,36.0622,120.3844
Mall AED again,36.0622,120.3844,,mall,,,,SN-A,,,
,36.0622,120.3844,,office,,,,SN-I,,,
Keyless AED,36.09,120.37,,transit,,,,,,,
"""


async def post_import(client: TestClient, body: str | bytes, headers: dict[str, str]) -> Any:
    resp = await client.post("/v1/aeds/import", data=body, headers={**ADMIN, **headers})
    assert resp.status == 200, await resp.text()
    return await resp.json()


def errors_by_ref(report: dict[str, Any]) -> dict[str, str]:
    return {r["ref"]: r["error"] for r in report["rejected"]}


async def test_csv_import_reports_every_bad_row(client: TestClient, pg: asyncpg.Connection) -> None:
    report = await post_import(client, CSV_FILE, CSV_TYPE)
    assert report["created"] == 3
    assert report["updated"] == 0
    errors = errors_by_ref(report)
    assert list(errors) == [f"line {n}" for n in range(4, 13)]
    assert errors["line 4"].startswith("level:")
    assert errors["line 5"].startswith("opening_hours:")
    assert errors["line 6"].startswith("location:") and "outside" in errors["line 6"]
    assert errors["line 7"].startswith("lat:") and "swapped" in errors["line 7"]
    assert errors["line 8"].startswith("venue_type:")
    assert errors["line 9"].startswith("pads_expire_on:")
    assert "fields" in errors["line 10"]
    assert errors["line 11"].startswith("serial_no:") and "line 2" in errors["line 11"]
    assert errors["line 12"].startswith("name:")

    rows = {r["name"]: r for r in await stored_aeds(pg)}
    assert set(rows) == {"Mall AED", "GCJ AED", "Keyless AED"}
    mall = rows["Mall AED"]
    assert (mall["indoor"], mall["level"], mall["venue_type"]) == (True, 2, "mall")
    assert mall["opening_hours"] == "Mo-Su 10:00-22:00"
    assert (mall["owner_name"], mall["owner_phone"]) == ("万象城", "0532-1")
    assert mall["district"] == "370202"
    assert str(mall["pads_expire_on"]) == "2030-01-01"
    gcj = rows["GCJ AED"]
    assert gcj["lat"] == pytest.approx(36.10, abs=1e-6)
    assert gcj["lng"] == pytest.approx(120.47, abs=1e-6)
    assert gcj["district"] == "370212"
    assert gcj["indoor"] is False

    before = await stored_aeds(pg)
    again = await post_import(client, CSV_FILE, CSV_TYPE)
    assert (again["created"], again["updated"]) == (0, 0)
    assert again["rejected"] == report["rejected"]
    assert await stored_aeds(pg) == before


async def test_csv_import_updates_by_serial_and_keeps_absent_columns(
    client: TestClient, pg: asyncpg.Connection
) -> None:
    aed = await create_aed(client, serial_no="SN-9", model="Zoll AED Plus")
    other = await create_aed(client, name="Untouched", serial_no="SN-10")
    csv_text = "serial_no,name,lat,lng\nSN-9,Renamed,36.09,120.37\n"
    report = await post_import(client, csv_text, CSV_TYPE)
    assert report == {"created": 0, "updated": 1, "rejected": []}
    row = await pg.fetchrow("SELECT * FROM aeds WHERE id = $1", aed["id"])
    assert row["name"] == "Renamed"
    assert row["model"] == "Zoll AED Plus"  # no model column: kept
    assert row["district"] == "370203"  # follows the new location
    assert row["updated_at"].isoformat() > aed["updated_at"]
    untouched = await pg.fetchrow("SELECT * FROM aeds WHERE id = $1", other["id"])
    assert untouched["updated_at"].isoformat() == other["updated_at"]


async def test_import_by_id_creates_with_that_id_and_checks_serial(
    client: TestClient, pg: asyncpg.Connection
) -> None:
    await create_aed(client, serial_no="SN-OWNED")
    csv_text = (
        "id,name,lat,lng,serial_no\n"
        "aed_custom_1,Custom,36.09,120.37,SN-NEW\n"
        "aed_custom_2,Thief,36.09,120.37,SN-OWNED\n"
        "bad id!,Bad,36.09,120.37,\n"
        "aed_custom_1,Twice,36.09,120.37,\n"
    )
    report = await post_import(client, csv_text, CSV_TYPE)
    assert report["created"] == 1
    errors = errors_by_ref(report)
    assert errors["line 3"].startswith("serial_no:") and "another AED" in errors["line 3"]
    assert errors["line 4"].startswith("id:")
    assert errors["line 5"].startswith("id:") and "line 2" in errors["line 5"]
    assert await pg.fetchval("SELECT name FROM aeds WHERE id = 'aed_custom_1'") == "Custom"


GEOJSON_FILE = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [120.3844, 36.0622]},
            "properties": {"name": "Geo one", "serial_no": "GJ-1", "level": -1, "indoor": True},
        },
        {
            "type": "Feature",
            "geometry": {"type": "LineString", "coordinates": [[120.38, 36.06], [120.39, 36.07]]},
            "properties": {"name": "A line"},
        },
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [120.3844, 36.0622]},
            "properties": {"name": "Colourful", "colour": "green"},
        },
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [120.3844, 36.0622]},
            "properties": {"name": "Both", "lat": 36.0},
        },
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": ["120.38", "36.06"]},
            "properties": {"name": "Strings"},
        },
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [G_LNG, G_LAT]},
            "properties": {"name": "Geo GCJ", "serial_no": "GJ-2", "crs": "gcj02"},
        },
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [120.3844, 36.0622]},
            "properties": {"name": "Level text", "level": "2"},
        },
    ],
}


async def test_geojson_import(client: TestClient, pg: asyncpg.Connection) -> None:
    report = await post_import(client, json.dumps(GEOJSON_FILE), GEOJSON_TYPE)
    assert report["created"] == 2
    errors = errors_by_ref(report)
    assert list(errors) == ["feature 2", "feature 3", "feature 4", "feature 5", "feature 7"]
    assert errors["feature 2"].startswith("geometry:")
    assert errors["feature 3"].startswith("colour:")
    assert errors["feature 4"].startswith("lat:")
    assert errors["feature 5"].startswith("geometry.coordinates:")
    assert errors["feature 7"].startswith("level:")
    rows = {r["name"]: r for r in await stored_aeds(pg)}
    assert (rows["Geo one"]["level"], rows["Geo one"]["indoor"]) == (-1, True)
    assert rows["Geo GCJ"]["lat"] == pytest.approx(36.10, abs=1e-6)
    before = await stored_aeds(pg)
    again = await post_import(client, json.dumps(GEOJSON_FILE), GEOJSON_TYPE)
    assert (again["created"], again["updated"]) == (0, 0)
    assert await stored_aeds(pg) == before
    # The same document as application/json is recognized as GeoJSON too.
    as_json = await post_import(client, json.dumps(GEOJSON_FILE), JSON_TYPE)
    assert (as_json["created"], as_json["updated"]) == (0, 0)


DEFIB = {"emergency": "defibrillator"}


def overpass(**node_tags: str) -> dict[str, Any]:
    tags = {
        "emergency": "defibrillator",
        "opening_hours": "Mo-Fr 08:00-18:00",
        "defibrillator:location": "一楼大厅服务台",
        "level": "1",
        "indoor": "yes",
        "access": "customers",
        "phone": "+86 532 8000 0000",
        "operator": "青岛地铁",
        **node_tags,
    }
    return {
        "version": 0.6,
        "elements": [
            {"type": "node", "id": 1, "lat": 36.0622, "lon": 120.3844, "tags": tags},
            {"type": "node", "id": 2, "lat": 36.06, "lon": 120.38, "tags": {"amenity": "bench"}},
            {
                "type": "node",
                "id": 3,
                "lat": 36.06,
                "lon": 120.38,
                "tags": {"emergency": "defibrillator", "opening_hours": "whenever"},
            },
            {
                "type": "way",
                "id": 4,
                "center": {"lat": 36.09, "lon": 120.37},
                "tags": {"emergency": "defibrillator", "name": "Station AED"},
            },
            {"type": "way", "id": 5, "tags": {"emergency": "defibrillator"}},
            {
                "type": "node",
                "id": 6,
                "lat": 36.06,
                "lon": 120.38,
                "tags": {"emergency": "defibrillator", "level": "1;2"},
            },
            {"type": "node", "id": 7, "lat": 31.23, "lon": 121.47, "tags": DEFIB},
            {"kind": "mystery"},
        ],
    }


async def test_overpass_import(client: TestClient, pg: asyncpg.Connection) -> None:
    report = await post_import(client, json.dumps(overpass()), JSON_TYPE)
    assert report["created"] == 2
    errors = errors_by_ref(report)
    assert list(errors) == ["node/2", "node/3", "way/5", "node/6", "node/7", "element 8"]
    assert errors["node/2"].startswith("tags.emergency:")
    assert errors["node/3"].startswith("opening_hours:")
    assert errors["way/5"].startswith("lat/lon:")
    assert errors["node/6"].startswith("level:")
    assert "outside" in errors["node/7"]
    node = await pg.fetchrow("SELECT * FROM aeds WHERE osm_id = 'node/1'")
    assert node["name"] == "AED (青岛地铁)"
    assert node["access_note"] == "一楼大厅服务台 (access: customers)"
    assert (node["level"], node["indoor"]) == (1, True)
    assert (node["owner_name"], node["owner_phone"]) == ("青岛地铁", "+86 532 8000 0000")
    assert node["opening_hours"] == "Mo-Fr 08:00-18:00"
    way = await pg.fetchrow("SELECT * FROM aeds WHERE osm_id = 'way/4'")
    assert (way["name"], way["district"]) == ("Station AED", "370203")

    # Re-importing changes nothing; an admin's name for an unnamed node survives re-imports.
    await client.patch(f"/v1/aeds/{node['id']}", json={"name": "地铁五四广场站"}, headers=ADMIN)
    before = await stored_aeds(pg)
    again = await post_import(client, json.dumps(overpass()), JSON_TYPE)
    assert (again["created"], again["updated"]) == (0, 0)
    assert await stored_aeds(pg) == before
    changed = await post_import(client, json.dumps(overpass(opening_hours="24/7")), JSON_TYPE)
    assert (changed["created"], changed["updated"]) == (0, 1)
    node = await pg.fetchrow("SELECT * FROM aeds WHERE osm_id = 'node/1'")
    assert (node["name"], node["opening_hours"]) == ("地铁五四广场站", "24/7")


@pytest.mark.parametrize(
    ("body", "headers", "status", "field"),
    [
        (CSV_FILE, {"Content-Type": "text/plain"}, 415, None),
        ("name,lat,lng,colour\nx,36.06,120.38,red\n", CSV_TYPE, 400, "colour"),
        ("name,lng\nx,120.38\n", CSV_TYPE, 400, "lat"),
        ("name,lat,lat,lng\nx,1,1,1\n", CSV_TYPE, 400, "lat"),
        ("", CSV_TYPE, 400, None),
        ("name,lat,lng\n名字,36.06,120.38\n".encode("gb18030"), CSV_TYPE, 400, None),
        ("{nope", JSON_TYPE, 400, None),
        (json.dumps({"type": "Feature"}), GEOJSON_TYPE, 400, "type"),
        (json.dumps({"type": "FeatureCollection"}), GEOJSON_TYPE, 400, "features"),
        (json.dumps({"elements": "none"}), JSON_TYPE, 400, "elements"),
    ],
)
async def test_bad_import_files_change_nothing(
    client: TestClient,
    pg: asyncpg.Connection,
    body: str | bytes,
    headers: dict[str, str],
    status: int,
    field: str | None,
) -> None:
    await create_aed(client)
    before = await stored_aeds(pg)
    resp = await client.post("/v1/aeds/import", data=body, headers={**ADMIN, **headers})
    assert resp.status == status, await resp.text()
    error = (await resp.json())["error"]
    if field is not None:
        assert field in [d["field"] for d in error["details"]]
    assert await stored_aeds(pg) == before


async def test_csv_charset_from_content_type(client: TestClient, pg: asyncpg.Connection) -> None:
    body = "name,lat,lng\n五四广场,36.0622,120.3844\n".encode("gb18030")
    report = await post_import(client, body, {"Content-Type": "text/csv; charset=gb18030"})
    assert report["created"] == 1
    assert await pg.fetchval("SELECT name FROM aeds") == "五四广场"
    resp = await client.post(
        "/v1/aeds/import", data=body, headers={**ADMIN, "Content-Type": "text/csv; charset=nope"}
    )
    assert resp.status == 400


async def test_import_too_large_is_413(make_client, pg: asyncpg.Connection) -> None:
    client = await make_client(max_import_bytes=300)
    body = "name,lat,lng\n" + "AED,36.0622,120.3844\n" * 20
    resp = await client.post("/v1/aeds/import", data=body, headers={**ADMIN, **CSV_TYPE})
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "body_too_large"
    assert await stored_aeds(pg) == []


async def test_large_import_and_reimport(client: TestClient, pg: asyncpg.Connection) -> None:
    lines = ["name,lat,lng,serial_no,venue_type,opening_hours"]
    for n in range(2000):
        lat = 36.06 + (n % 50) * 0.0004
        lng = 120.36 + (n // 50) * 0.0004
        lines.append(f"AED {n},{lat!r},{lng!r},BULK-{n:05d},office,Mo-Fr 08:00-18:00")
    body = "\n".join(lines) + "\n"
    report = await post_import(client, body, CSV_TYPE)
    assert report == {"created": 2000, "updated": 0, "rejected": []}
    assert await pg.fetchval("SELECT count(*) FROM aeds") == 2000
    again = await post_import(client, body, CSV_TYPE)
    assert again == {"created": 0, "updated": 0, "rejected": []}


async def test_keyless_rows_are_matched_by_name_and_place(
    client: TestClient, pg: asyncpg.Connection
) -> None:
    body = "name,lat,lng\n" + "".join(
        f"Plain,{point['lat']},{point['lng']}\n" for point in (SHIBEI, SHINAN)
    )
    first = await post_import(client, body, CSV_TYPE)
    assert (first["created"], first["updated"]) == (2, 0)
    second = await post_import(client, body, CSV_TYPE)
    assert (second["created"], second["updated"]) == (0, 0)
    dup = await post_import(client, body + f"Plain,{SHIBEI['lat']},{SHIBEI['lng']}\n", CSV_TYPE)
    assert [r["ref"] for r in dup["rejected"]] == ["line 4"]
    assert await pg.fetchval("SELECT count(*) FROM aeds") == 2
