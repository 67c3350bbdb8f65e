"""The AED inventory's JSON API: create, read, change, retire, list."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from geo import Crs, from_wgs84
from tests.conftest import ADMIN
from tests.rescue.aeds_support import (
    HUANGDAO,
    LAOSHAN,
    SHIBEI,
    SHINAN,
    aed_body,
    create_aed,
    stored_aeds,
)

AED_KEYS = {
    "id",
    "name",
    "address",
    "district",
    "location",
    "venue_type",
    "indoor",
    "level",
    "access_note",
    "opening_hours",
    "status",
    "model",
    "serial_no",
    "pads_expire_on",
    "battery_expire_on",
    "last_inspected_on",
    "owner",
    "created_at",
    "updated_at",
}


async def test_create_returns_the_aed(client: TestClient) -> None:
    resp = await client.post("/v1/aeds", json=aed_body(serial_no="SN-1"), headers=ADMIN)
    assert resp.status == 201
    aed = await resp.json()
    assert set(aed) == AED_KEYS
    assert aed["id"].startswith("aed_")
    assert resp.headers["Location"] == f"/v1/aeds/{aed['id']}"
    assert aed["district"] == "370202"
    assert aed["location"] == {**SHINAN, "crs": "wgs84"}
    assert aed["owner"] == {"name": "市南区卫健局", "phone": "0532-8288 0000"}
    assert aed["serial_no"] == "SN-1"
    assert aed["pads_expire_on"] == "2030-01-01"
    assert aed["created_at"].endswith("+00:00")
    got = await client.get(f"/v1/aeds/{aed['id']}", headers=ADMIN)
    assert got.status == 200
    assert await got.json() == aed


async def test_create_minimal_takes_defaults(client: TestClient) -> None:
    body = {"name": "Minimal", "location": SHIBEI}
    resp = await client.post("/v1/aeds", json=body, headers=ADMIN)
    assert resp.status == 201
    aed = await resp.json()
    assert aed["opening_hours"] == "24/7"
    assert aed["status"] == "active"
    assert aed["venue_type"] == "other"
    assert aed["owner"] is None
    assert aed["district"] == "370203"
    assert aed["indoor"] is None and aed["level"] is None


async def test_create_converts_gcj02_input_to_wgs84(client: TestClient) -> None:
    lat, lng = from_wgs84(SHINAN["lat"], SHINAN["lng"], Crs.GCJ02)
    aed = await create_aed(client, location={"lat": lat, "lng": lng, "crs": "gcj02"})
    assert aed["location"]["crs"] == "wgs84"
    assert aed["location"]["lat"] == pytest.approx(SHINAN["lat"], abs=1e-6)
    assert aed["location"]["lng"] == pytest.approx(SHINAN["lng"], abs=1e-6)


async def test_default_crs_setting_applies_to_input(make_client) -> None:
    client = await make_client(default_crs=Crs.GCJ02)
    lat, lng = from_wgs84(LAOSHAN["lat"], LAOSHAN["lng"], Crs.GCJ02)
    aed = await create_aed(client, location={"lat": lat, "lng": lng})
    assert aed["location"]["lat"] == pytest.approx(LAOSHAN["lat"], abs=1e-6)
    assert aed["district"] == "370212"


async def test_given_district_is_kept(client: TestClient) -> None:
    aed = await create_aed(client, district="370203")
    assert aed["district"] == "370203"


async def test_responses_honour_crs(client: TestClient) -> None:
    aed = await create_aed(client)
    lat, lng = from_wgs84(SHINAN["lat"], SHINAN["lng"], Crs.GCJ02)
    for url in (f"/v1/aeds/{aed['id']}?crs=gcj02", "/v1/aeds?crs=gcj02"):
        body = await (await client.get(url, headers=ADMIN)).json()
        location = body["location"] if "location" in body else body["items"][0]["location"]
        assert location == {"lat": round(lat, 7), "lng": round(lng, 7), "crs": "gcj02"}
    bd = await (await client.get(f"/v1/aeds/{aed['id']}?crs=bd09", headers=ADMIN)).json()
    assert bd["location"]["crs"] == "bd09"
    resp = await client.post("/v1/aeds?crs=gcj02", json=aed_body(name="B"), headers=ADMIN)
    assert (await resp.json())["location"]["crs"] == "gcj02"
    bad = await client.get(f"/v1/aeds/{aed['id']}?crs=mars", headers=ADMIN)
    assert bad.status == 400
    assert (await bad.json())["error"]["details"][0]["field"] == "crs"


async def _bad_create(
    client: TestClient, pg: asyncpg.Connection, body: Any, status: int, fields: set[str]
) -> dict[str, Any]:
    before = await stored_aeds(pg)
    resp = await client.post("/v1/aeds", json=body, headers=ADMIN)
    assert resp.status == status, await resp.text()
    error = (await resp.json())["error"]
    assert {d["field"] for d in error["details"]} == fields
    assert await stored_aeds(pg) == before
    return error


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        ({"location": {"lat": 95.0, "lng": 120.38}}, {"location.lat"}),
        ({"location": {"lat": 36.06, "lng": 190.0}}, {"location.lng"}),
        ({"location": {"lat": "36", "lng": 120.38}}, {"location.lat"}),
        ({"location": {"lat": 36.06, "lng": 120.38, "crs": "wgs"}}, {"location.crs"}),
        ({"location": None}, {"location"}),
        ({"name": ""}, {"name"}),
        ({"opening_hours": "Mo-Fr 25:00-26:00 nonsense"}, {"opening_hours"}),
        ({"venue_type": "spaceport"}, {"venue_type"}),
        ({"status": "broken"}, {"status"}),
        ({"pads_expire_on": "2030-13-01"}, {"pads_expire_on"}),
        ({"battery_expire_on": "01/06/2030"}, {"battery_expire_on"}),
        ({"last_inspected_on": 20240101}, {"last_inspected_on"}),
        ({"level": "2"}, {"level"}),
        ({"level": 1.5}, {"level"}),
        ({"indoor": "yes"}, {"indoor"}),
        ({"owner": "someone"}, {"owner"}),
        ({"owner": {"name": "x", "phone": "call me"}}, {"owner.phone"}),
        ({"owner": {"name": "x", "email": "a@b"}}, {"owner.email"}),
        ({"colour": "green"}, {"colour"}),
        ({"id": "aed_mine"}, {"id"}),
        ({"district": "999999"}, {"district"}),
        ({"name": "x" * 201}, {"name"}),
    ],
)
async def test_create_rejects_bad_fields(
    client: TestClient, pg: asyncpg.Connection, overrides: dict[str, Any], fields: set[str]
) -> None:
    error = await _bad_create(client, pg, aed_body(**overrides), 400, fields)
    assert error["code"] == "invalid_input"


async def test_create_names_every_bad_field_at_once(
    client: TestClient, pg: asyncpg.Connection
) -> None:
    body = aed_body(venue_type="x", status="y", level="z", opening_hours="nope nope")
    del body["name"]
    await _bad_create(
        client, pg, body, 400, {"name", "venue_type", "status", "level", "opening_hours"}
    )


async def test_swapped_coordinates(client: TestClient, pg: asyncpg.Connection) -> None:
    # lng in lat's place is out of range: a 400 that says they look swapped.
    error = await _bad_create(
        client, pg, aed_body(location={"lat": 120.38, "lng": 36.06}), 400, {"location.lat"}
    )
    assert "swapped" in error["details"][0]["problem"]


async def test_outside_service_area(client: TestClient, pg: asyncpg.Connection) -> None:
    error = await _bad_create(
        client, pg, aed_body(location={"lat": 39.9042, "lng": 116.4074}), 422, {"location"}
    )
    assert error["code"] == "outside_service_area"


async def test_body_errors(make_client, pg: asyncpg.Connection) -> None:
    client = await make_client(max_body_bytes=2000)
    before = await stored_aeds(pg)
    resp = await client.post("/v1/aeds", data="name=x", headers=ADMIN)
    assert resp.status == 415
    resp = await client.post(
        "/v1/aeds", data="{not json", headers={**ADMIN, "Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "invalid_json"
    resp = await client.post("/v1/aeds", json=[1, 2], headers=ADMIN)
    assert resp.status == 400
    resp = await client.post("/v1/aeds", json=aed_body(access_note="x" * 3000), headers=ADMIN)
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "body_too_large"
    assert await stored_aeds(pg) == before


async def test_serial_no_is_unique(client: TestClient, pg: asyncpg.Connection) -> None:
    await create_aed(client, serial_no="SN-42")
    error = await _bad_create(client, pg, aed_body(name="Other", serial_no="SN-42"), 409, set())
    assert error["code"] == "serial_no_taken"
    other = await create_aed(client, name="Other", serial_no="SN-43")
    before = await stored_aeds(pg)
    resp = await client.patch(f"/v1/aeds/{other['id']}", json={"serial_no": "SN-42"}, headers=ADMIN)
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "serial_no_taken"
    assert await stored_aeds(pg) == before


async def test_get_unknown_is_404(client: TestClient) -> None:
    for method in ("get", "patch", "delete"):
        kwargs = {"json": {"name": "x"}} if method == "patch" else {}
        resp = await getattr(client, method)("/v1/aeds/aed_nope", headers=ADMIN, **kwargs)
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "not_found"


async def test_patch_changes_fields(client: TestClient) -> None:
    aed = await create_aed(client)
    patch = {"name": "新名字", "level": 2, "owner": None, "status": "maintenance"}
    resp = await client.patch(f"/v1/aeds/{aed['id']}", json=patch, headers=ADMIN)
    assert resp.status == 200
    changed = await resp.json()
    assert changed["name"] == "新名字"
    assert changed["level"] == 2
    assert changed["owner"] is None
    assert changed["status"] == "maintenance"
    assert changed["model"] == aed["model"]
    assert changed["created_at"] == aed["created_at"]
    assert changed["updated_at"] > aed["updated_at"]
    assert await (await client.get(f"/v1/aeds/{aed['id']}", headers=ADMIN)).json() == changed


async def test_patch_location_rederives_district(client: TestClient) -> None:
    aed = await create_aed(client)
    resp = await client.patch(f"/v1/aeds/{aed['id']}", json={"location": LAOSHAN}, headers=ADMIN)
    changed = await resp.json()
    assert changed["district"] == "370212"
    assert changed["location"] == {**LAOSHAN, "crs": "wgs84"}


async def test_patch_without_change_keeps_updated_at(client: TestClient) -> None:
    aed = await create_aed(client)
    resp = await client.patch(f"/v1/aeds/{aed['id']}", json={"name": aed["name"]}, headers=ADMIN)
    assert resp.status == 200
    assert (await resp.json())["updated_at"] == aed["updated_at"]


@pytest.mark.parametrize(
    ("patch", "status", "fields"),
    [
        ({"name": None}, 400, {"name"}),
        ({"opening_hours": "Mo-Xx"}, 400, {"opening_hours"}),
        ({"level": "ground"}, 400, {"level"}),
        ({"name": "ok", "venue_type": "zoo"}, 400, {"venue_type"}),
        ({"location": {"lat": 36.06}}, 400, {"location.lng"}),
        ({"location": {"lat": 31.23, "lng": 121.47}}, 422, {"location"}),
        ({"id": "aed_other"}, 400, {"id"}),
        ({"updated_at": "2020-01-01T00:00:00Z"}, 400, {"updated_at"}),
        ({"nickname": "x"}, 400, {"nickname"}),
    ],
)
async def test_bad_patch_changes_nothing(
    client: TestClient,
    pg: asyncpg.Connection,
    patch: dict[str, Any],
    status: int,
    fields: set[str],
) -> None:
    aed = await create_aed(client)
    before = await stored_aeds(pg)
    resp = await client.patch(f"/v1/aeds/{aed['id']}", json=patch, headers=ADMIN)
    assert resp.status == status, await resp.text()
    assert {d["field"] for d in (await resp.json())["error"]["details"]} == fields
    assert await stored_aeds(pg) == before


async def test_delete_retires_and_keeps_history(client: TestClient) -> None:
    aed = await create_aed(client)
    resp = await client.delete(f"/v1/aeds/{aed['id']}", headers=ADMIN)
    assert resp.status == 204
    got = await (await client.get(f"/v1/aeds/{aed['id']}", headers=ADMIN)).json()
    assert got["status"] == "retired"
    assert got["name"] == aed["name"]
    listed = await (await client.get("/v1/aeds", headers=ADMIN)).json()
    assert listed["items"] == []
    retired = await (await client.get("/v1/aeds?status=retired", headers=ADMIN)).json()
    assert [a["id"] for a in retired["items"]] == [aed["id"]]
    again = await client.delete(f"/v1/aeds/{aed['id']}", headers=ADMIN)
    assert again.status == 204
    assert (await (await client.get(f"/v1/aeds/{aed['id']}", headers=ADMIN)).json()) == got


async def test_cursor_paging_covers_everything_once(client: TestClient) -> None:
    created = [(await create_aed(client, name=f"AED {n:02d}"))["id"] for n in range(7)]
    seen: list[str] = []
    url: str | None = "/v1/aeds?limit=3"
    pages = 0
    while url is not None:
        body = await (await client.get(url, headers=ADMIN)).json()
        assert len(body["items"]) <= 3
        seen.extend(item["id"] for item in body["items"])
        pages += 1
        url = f"/v1/aeds?limit=3&cursor={body['next_cursor']}" if body["next_cursor"] else None
    assert pages == 3
    assert seen == sorted(created)


async def test_list_paging_parameters_are_validated(client: TestClient) -> None:
    for query in ("limit=0", "limit=1001", "limit=x", "cursor=__4"):
        resp = await client.get(f"/v1/aeds?{query}", headers=ADMIN)
        assert resp.status == 400, query
        field = query.split("=")[0]
        assert (await resp.json())["error"]["details"][0]["field"] == field


async def test_list_filters(client: TestClient) -> None:
    shinan = await create_aed(client, name="Shinan mall", serial_no="QD-001")
    shibei = await create_aed(client, name="Shibei station", location=SHIBEI, status="maintenance")
    laoshan = await create_aed(client, name="Laoshan school", location=LAOSHAN, address="石老人")
    huangdao = await create_aed(client, name="West coast", location=HUANGDAO)

    async def ids(query: str) -> list[str]:
        resp = await client.get(f"/v1/aeds?{query}", headers=ADMIN)
        assert resp.status == 200, await resp.text()
        return [item["id"] for item in (await resp.json())["items"]]

    everyone = sorted(a["id"] for a in (shinan, shibei, laoshan, huangdao))
    assert await ids("") == everyone
    assert await ids("status=maintenance") == [shibei["id"]]
    assert await ids("status=active,maintenance") == everyone
    assert await ids("district=370212") == [laoshan["id"]]
    assert await ids("district=崂山区") == [laoshan["id"]]
    assert await ids("district=崂山") == [laoshan["id"]]
    assert await ids("district=laoshan") == [laoshan["id"]]
    assert await ids("district=Huangdao") == [huangdao["id"]]
    assert await ids("q=MALL") == [shinan["id"]]
    assert await ids("q=qd-00") == [shinan["id"]]
    assert await ids("q=石老") == [laoshan["id"]]
    assert await ids("q=%25") == []
    # A box around Shinan and Shibei (minLng,minLat,maxLng,maxLat), WGS-84.
    assert await ids("bbox=120.36,36.05,120.39,36.10") == sorted([shinan["id"], shibei["id"]])
    assert await ids("bbox=120.36,36.05,120.39,36.10&status=active") == [shinan["id"]]


async def test_bbox_is_read_in_the_requested_crs(client: TestClient) -> None:
    aed = await create_aed(client)
    # A tight WGS-84 box around the AED: shifted by GCJ-02's ~500 m offset, it misses.
    lat, lng = SHINAN["lat"], SHINAN["lng"]
    box = f"{lng - 0.001},{lat - 0.001},{lng + 0.001},{lat + 0.001}"
    wgs_resp = await client.get(f"/v1/aeds?bbox={box}", headers=ADMIN)
    assert len((await wgs_resp.json())["items"]) == 1
    gcj_resp = await client.get(f"/v1/aeds?bbox={box}&crs=gcj02", headers=ADMIN)
    assert (await gcj_resp.json())["items"] == []
    g_lat, g_lng = from_wgs84(lat, lng, Crs.GCJ02)
    gcj_box = f"{g_lng - 0.001},{g_lat - 0.001},{g_lng + 0.001},{g_lat + 0.001}"
    body = await (await client.get(f"/v1/aeds?bbox={gcj_box}&crs=gcj02", headers=ADMIN)).json()
    assert [item["id"] for item in body["items"]] == [aed["id"]]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=broken", "status"),
        ("district=Atlantis", "district"),
        ("bbox=1,2,3", "bbox"),
        ("bbox=a,b,c,d", "bbox"),
        ("bbox=120.4,36.1,120.3,36.0", "bbox"),
        ("bbox=120,95,121,96", "bbox"),
        ("q=" + "x" * 201, "q"),
    ],
)
async def test_list_rejects_bad_filters(client: TestClient, query: str, field: str) -> None:
    resp = await client.get(f"/v1/aeds?{query}", headers=ADMIN)
    assert resp.status == 400
    assert [d["field"] for d in (await resp.json())["error"]["details"]] == [field]
