"""Exporting the inventory; an export re-imported changes nothing."""

from __future__ import annotations

import csv
import io

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from rescue.aeds.models import EXPORT_FIELDS
from tests.conftest import ADMIN
from tests.rescue.aeds_support import LAOSHAN, SHIBEI, create_aed, stored_aeds

MEDIA = {"csv": "text/csv", "geojson": "application/geo+json"}


async def make_inventory(client: TestClient) -> list[dict]:
    full = await create_aed(client, serial_no="EX-1", last_inspected_on="2025-05-05")
    bare = await create_aed(
        client,
        name='Bare, with "quotes"\nand a newline',
        location=SHIBEI,
        address=None,
        access_note=None,
        model=None,
        owner=None,
        indoor=None,
        level=None,
        pads_expire_on=None,
        battery_expire_on=None,
        opening_hours="Mo-Fr 08:00-18:00; Sa 09:00-12:00",
    )
    retired = await create_aed(client, name="Old", location=LAOSHAN, serial_no="EX-OLD")
    assert (await client.delete(f"/v1/aeds/{retired['id']}", headers=ADMIN)).status == 204
    return [full, bare, retired]


async def export(client: TestClient, query: str) -> tuple[bytes, str]:
    resp = await client.get(f"/v1/aeds/export?{query}", headers=ADMIN)
    assert resp.status == 200, await resp.text()
    return await resp.read(), resp.content_type


async def test_csv_export(client: TestClient) -> None:
    full, bare, _ = await make_inventory(client)
    body, content_type = await export(client, "format=csv")
    assert content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert list(rows[0]) == list(EXPORT_FIELDS)
    assert [r["id"] for r in rows] == sorted([full["id"], bare["id"]])
    by_id = {r["id"]: r for r in rows}
    assert by_id[bare["id"]]["name"] == bare["name"]
    assert by_id[full["id"]]["owner_name"] == "市南区卫健局"
    assert by_id[full["id"]]["crs"] == "wgs84"
    assert by_id[full["id"]]["indoor"] == "false"


async def test_geojson_export(client: TestClient) -> None:
    full, bare, _ = await make_inventory(client)
    resp = await client.get("/v1/aeds/export", headers=ADMIN)
    assert resp.content_type == "application/geo+json"
    doc = await resp.json(content_type=None)
    assert doc["type"] == "FeatureCollection"
    assert [f["id"] for f in doc["features"]] == sorted([full["id"], bare["id"]])
    feature = next(f for f in doc["features"] if f["id"] == full["id"])
    assert feature["geometry"] == {"type": "Point", "coordinates": [120.3844, 36.0622]}
    assert feature["properties"]["level"] == 0
    assert feature["properties"]["last_inspected_on"] == "2025-05-05"
    assert "lat" not in feature["properties"]


@pytest.mark.parametrize("fmt", ["csv", "geojson"])
@pytest.mark.parametrize("crs", ["wgs84", "gcj02", "bd09"])
async def test_export_reimports_unchanged(
    client: TestClient, pg: asyncpg.Connection, fmt: str, crs: str
) -> None:
    await make_inventory(client)
    body, _ = await export(client, f"format={fmt}&crs={crs}")
    before = await stored_aeds(pg)
    resp = await client.post(
        "/v1/aeds/import", data=body, headers={**ADMIN, "Content-Type": MEDIA[fmt]}
    )
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"created": 0, "updated": 0, "rejected": []}
    assert await stored_aeds(pg) == before


@pytest.mark.parametrize("fmt", ["csv", "geojson"])
async def test_export_restores_an_empty_inventory(
    client: TestClient, pg: asyncpg.Connection, fmt: str
) -> None:
    await make_inventory(client)
    body, _ = await export(client, f"format={fmt}")
    live = [r for r in await stored_aeds(pg) if r["status"] != "retired"]
    await pg.execute("DELETE FROM aeds")
    resp = await client.post(
        "/v1/aeds/import", data=body, headers={**ADMIN, "Content-Type": MEDIA[fmt]}
    )
    assert (await resp.json())["created"] == 2
    restored = await stored_aeds(pg)
    ignore = ("created_at", "updated_at", "osm_id")
    assert [{k: v for k, v in r.items() if k not in ignore} for r in restored] == [
        {k: v for k, v in r.items() if k not in ignore} for r in live
    ]


async def test_export_format_is_validated(client: TestClient) -> None:
    resp = await client.get("/v1/aeds/export?format=xlsx", headers=ADMIN)
    assert resp.status == 400
    assert (await resp.json())["error"]["details"][0]["field"] == "format"
