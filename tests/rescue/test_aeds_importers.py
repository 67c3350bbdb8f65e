"""The pure import parsers, and the CLI's import_file."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
from redis.asyncio import Redis

from geo import Crs
from rescue import db
from rescue.aeds.importers import parse, parse_csv, parse_overpass
from rescue.aeds.models import ImportRow, Rejected
from rescue.aeds.service import import_file
from rescue.aeds.sync import channel_of
from rescue.area import load_service_area
from rescue.settings import Settings
from rescue.typedefs import aed_index_key
from tests.rescue.aeds_support import wait_until

AREA = load_service_area()


def rows(raw: str | bytes) -> list[ImportRow | Rejected]:
    data = raw.encode() if isinstance(raw, str) else raw
    return list(parse_csv(data, area=AREA, default_crs=Crs.WGS84))


def test_csv_refs_count_physical_lines() -> None:
    parsed = rows(
        "\ufeffName,LAT,lng,access_note\n"
        'A,36.06,120.38,"two\nlines"\n'
        "\n"
        "B,36.06,120.38,\n"
        "C,x,120.38,\n"
    )
    assert [p.ref for p in parsed] == ["line 2", "line 5", "line 6"]
    assert isinstance(parsed[0], ImportRow) and parsed[0].values["access_note"] == "two\nlines"
    assert isinstance(parsed[2], Rejected) and parsed[2].error == "lat: must be a number"


def test_csv_cells_are_coerced() -> None:
    parsed = rows(
        "name,lat,lng,indoor,level,status,created_at\n"
        "A,36.06,120.38,YES,-2,,2020-01-01T00:00:00Z\n"
        "B,36.06,120.38,maybe,1,active,\n"
    )
    first, second = parsed
    assert isinstance(first, ImportRow)
    assert first.values["indoor"] is True and first.values["level"] == -2
    assert first.values["status"] == "active"  # an empty cell takes the default
    assert "created_at" not in first.values
    assert first.values["district"] == "370202"
    assert isinstance(second, Rejected) and second.error.startswith("indoor:")


def test_csv_row_lists_every_problem() -> None:
    (parsed,) = rows("name,lat,lng,level,status\n,36.06,120.38,x,gone\n")
    assert isinstance(parsed, Rejected)
    assert {part.split(":")[0] for part in parsed.error.split("; ")} == {"name", "level", "status"}


def test_overpass_mapping() -> None:
    doc = {
        "elements": [
            {
                "type": "node",
                "id": 10,
                "lat": 36.0622,
                "lon": 120.3844,
                "tags": {
                    "emergency": "defibrillator",
                    "addr:city": "青岛市",
                    "addr:street": "香港中路",
                    "addr:housenumber": "10号",
                    "access": "yes",
                    "defibrillator:location": "入口左侧",
                    "indoor": "no",
                },
            }
        ]
    }
    (row,) = parse_overpass(doc, area=AREA)
    assert isinstance(row, ImportRow)
    assert row.ref == "node/10"
    assert row.values["osm_id"] == "node/10"
    assert row.values["address"] == "青岛市 香港中路 10号"
    assert row.values["access_note"] == "入口左侧"
    assert row.values["indoor"] is False
    assert "name" not in row.values and row.create_defaults == {"name": "AED"}


def test_json_body_dispatch() -> None:
    fc = {"type": "FeatureCollection", "features": []}
    assert (
        parse("application/json", json.dumps(fc).encode(), area=AREA, default_crs=Crs.WGS84) == []
    )
    listed = [{"type": "node", "id": 1, "lat": 36.06, "lon": 120.38, "tags": {}}]
    (only,) = parse(
        "application/json", json.dumps(listed).encode(), area=AREA, default_crs=Crs.WGS84
    )
    assert isinstance(only, Rejected) and only.ref == "node/1"


async def test_cli_import_file(
    tmp_path: Path, settings: Settings, pg: asyncpg.Connection, redis: Redis, make_client
) -> None:
    worker = await make_client()
    channel = channel_of(redis)

    async def subscribed() -> bool:
        return dict(await redis.pubsub_numsub(channel)).get(channel, 0) >= 1

    await wait_until(subscribed)
    csv_path = tmp_path / "aeds.csv"
    csv_path.write_text("name,lat,lng,serial_no\nCLI AED,36.09,120.37,CLI-1\nBad,x,1,CLI-2\n")
    pool = await db.create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        report = await import_file(pool, AREA, settings, csv_path)
        assert report == {
            "created": 1,
            "updated": 0,
            "rejected": [{"ref": "line 3", "error": "lat: must be a number"}],
        }
        again = await import_file(pool, AREA, settings, csv_path)
        assert (again["created"], again["updated"]) == (0, 0)

        geojson_path = tmp_path / "more.geojson"
        feature = {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [120.47, 36.10]},
            "properties": {"name": "Geo CLI"},
        }
        geojson_path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
        assert (await import_file(pool, AREA, settings, geojson_path))["created"] == 1

        unknown = await import_file(pool, AREA, settings, tmp_path / "aeds.xlsx")
        assert unknown["created"] == 0 and "unknown file type" in unknown["rejected"][0]["error"]
        bad_header = tmp_path / "bad.csv"
        bad_header.write_text("name,lat,lng,colour\n")
        report = await import_file(pool, AREA, settings, bad_header)
        assert report["rejected"] == [
            {"ref": str(bad_header), "error": "colour: is not a known column"}
        ]
    finally:
        await pool.close()
    cli_id = await pg.fetchval("SELECT id FROM aeds WHERE serial_no = 'CLI-1'")
    index = worker.app[aed_index_key]
    await wait_until(lambda: index.get(cli_id) is not None)
