"""The CSV roster import."""

from __future__ import annotations

import datetime as dt

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from tests.conftest import ADMIN
from tests.helpers import bearer
from tests.volunteers.support import MAY_FOURTH_SQUARE, create_volunteer, location
from volunteers.eligibility import decode_meta

CSV = {**ADMIN, "Content-Type": "text/csv"}
HEADER = (
    "name,phone,certificate_number,certificate_issuer,certificate_issued_on,"
    "certificate_expires_on,travel_mode,status,quiet_hours,home_district\n"
)
GOOD_1 = "张伟,13800000001,RC-001,青岛市红十字会,2025-01-01,2028-01-01,walk,active,,市南区\n"
GOOD_2 = "李娜,13800000002,RC-002,青岛市红十字会,2025-02-01,2028-02-01,bike,,23:00-07:00,\n"
BAD_DATE = "刘洋,13800000003,RC-003,青岛市红十字会,2025-02-30,2028-02-01,walk,,,\n"
BAD_MANY = ",phone?,RC-004,青岛市红十字会,2025-01-01,2024-01-01,jetpack,retired,noon,Atlantis\n"
SHORT = "王芳,13800000005,RC-005\n"


async def post(client: TestClient, text: str, headers: dict[str, str] = CSV) -> dict:
    resp = await client.post("/v1/volunteers/import", data=text.encode(), headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_good_rows_are_imported_and_bad_ones_reported(
    client: TestClient, pg: asyncpg.Connection
) -> None:
    roster = HEADER + GOOD_1 + BAD_DATE + "\n" + GOOD_2 + BAD_MANY + SHORT
    report = await post(client, roster)
    assert report["created"] == 2
    assert report["updated"] == 0
    refs = [r["ref"] for r in report["rejected"]]
    assert refs == ["line 3", "line 6", "line 7"]
    errors = {r["ref"]: r["error"] for r in report["rejected"]}
    assert "certificate_issued_on" in errors["line 3"]
    for column in ("name", "phone", "certificate_expires_on", "travel_mode", "status"):
        assert column in errors["line 6"]
    assert "quiet_hours" in errors["line 6"] and "home_district" in errors["line 6"]
    assert "3 cells" in errors["line 7"]

    rows = await pg.fetch("SELECT * FROM volunteers ORDER BY cert_number")
    assert [r["cert_number"] for r in rows] == ["RC-001", "RC-002"]
    first, second = rows
    assert first["home_district"] == "370202" and first["status"] == "active"
    assert second["travel_mode"] == "bike" and second["status"] == "active"
    assert second["quiet_hours"] == "23:00-07:00"
    assert second["cert_expires_on"] == dt.date(2028, 2, 1)
    # Imported volunteers have no token until an admin issues one.
    assert first["token_hash"] is None and second["token_hash"] is None


async def test_reimport_creates_nothing_and_changes_only_what_changed(
    client: TestClient, pg: asyncpg.Connection
) -> None:
    roster = HEADER + GOOD_1 + GOOD_2
    assert (await post(client, roster))["created"] == 2
    again = await post(client, roster)
    assert again == {"created": 0, "updated": 0, "unchanged": 2, "rejected": []}

    renewed = GOOD_2.replace("2028-02-01", "2030-02-01")
    report = await post(client, HEADER + GOOD_1 + renewed)
    assert (report["created"], report["updated"], report["unchanged"]) == (0, 1, 1)
    assert await pg.fetchval("SELECT count(*) FROM volunteers") == 2
    expires = await pg.fetchval("SELECT cert_expires_on FROM volunteers WHERE cert_number='RC-002'")
    assert expires == dt.date(2030, 2, 1)


async def test_upsert_by_id_renumbers_a_certificate(
    client: TestClient, pg: asyncpg.Connection
) -> None:
    vol = await create_volunteer(client, status="suspended", travel_mode="car")
    text = (
        "id,name,phone,certificate_number,certificate_issuer,certificate_issued_on,"
        "certificate_expires_on,travel_mode,status\n"
        f"{vol['id']},新名字,13900000000,RC-RENUMBERED,青岛市急救中心,2026-01-01,2029-01-01,,\n"
        "vol_restored_1,赵敏,13900000001,RC-RESTORED,青岛市急救中心,2026-01-01,2029-01-01,,\n"
    )
    report = await post(client, text)
    assert (report["created"], report["updated"]) == (1, 1)
    row = await pg.fetchrow("SELECT * FROM volunteers WHERE id = $1", vol["id"])
    assert row["cert_number"] == "RC-RENUMBERED" and row["name"] == "新名字"
    # Empty status/travel_mode cells keep what the volunteer had.
    assert (row["status"], row["travel_mode"]) == ("suspended", "car")
    assert await pg.fetchval("SELECT name FROM volunteers WHERE id = 'vol_restored_1'") == "赵敏"
    # The token issued at creation still works: an import never touches tokens.
    resp = await client.put("/v1/me/duty", json={"on_duty": False}, headers=bearer(vol["token"]))
    assert resp.status == 200


async def test_conflicting_rows_are_rejected(client: TestClient, pg: asyncpg.Connection) -> None:
    other = await create_volunteer(client)
    taken = other["certificate"]["number"]
    text = (
        "id,name,phone,certificate_number,certificate_issuer,certificate_issued_on,"
        "certificate_expires_on\n"
        ",甲,13800000001,RC-A,红十字会,2025-01-01,2028-01-01\n"
        ",乙,13800000002,RC-A,红十字会,2025-01-01,2028-01-01\n"
        f"vol_new_1,丙,13800000003,{taken},红十字会,2025-01-01,2028-01-01\n"
        "vol_x,丁,13800000004,RC-B,红十字会,2025-01-01,2028-01-01\n"
        "vol_x,戊,13800000005,RC-C,红十字会,2025-01-01,2028-01-01\n"
    )
    report = await post(client, text)
    assert report["created"] == 2
    errors = {r["ref"]: r["error"] for r in report["rejected"]}
    assert set(errors) == {"line 3", "line 4", "line 6"}
    assert "also on line 2" in errors["line 3"]
    assert other["id"] in errors["line 4"]
    assert "also on line 5" in errors["line 6"]
    assert await pg.fetchval("SELECT count(*) FROM volunteers") == 3


async def test_quoted_multiline_cells_keep_line_numbers_right(client: TestClient) -> None:
    text = HEADER + '"张\n伟",13800000001,RC-001,红十字会,2025-01-01,2028-01-01,,,,\n' + BAD_DATE
    report = await post(client, text)
    assert report["created"] == 1
    assert [r["ref"] for r in report["rejected"]] == ["line 4"]


async def test_a_bom_and_crlf_are_fine(client: TestClient) -> None:
    text = "\ufeff" + (HEADER + GOOD_1).replace("\n", "\r\n")
    assert (await post(client, text))["created"] == 1


async def test_import_suspending_an_on_duty_volunteer_updates_redis(
    client: TestClient, redis: Redis
) -> None:
    vol = await create_volunteer(client)
    resp = await client.put(
        "/v1/me/duty",
        json={"on_duty": True, "location": location(MAY_FOURTH_SQUARE)},
        headers=bearer(vol["token"]),
    )
    assert resp.status == 200
    text = (
        "id,name,phone,certificate_number,certificate_issuer,certificate_issued_on,"
        "certificate_expires_on,status\n"
        f"{vol['id']},{vol['name']},{vol['phone']},{vol['certificate']['number']},"
        f"{vol['certificate']['issuer']},{vol['certificate']['issued_on']},"
        f"{vol['certificate']['expires_on']},suspended\n"
    )
    assert (await post(client, text))["updated"] == 1
    assert decode_meta(await redis.hget("rescue:vol:meta", vol["id"])).status == "suspended"


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (HEADER.encode(), {**ADMIN, "Content-Type": "application/json"}, 415, None),
        (b"", CSV, 400, "invalid_csv"),
        (b"name,phone\n", CSV, 400, "invalid_csv"),
        ((HEADER.strip() + ",shoe_size\n").encode(), CSV, 400, "invalid_csv"),
        (("name,name," + HEADER).encode(), CSV, 400, "invalid_csv"),
        ((HEADER + GOOD_1).encode("utf-16"), CSV, 400, "invalid_csv"),
        ((HEADER + GOOD_1 + '张伟,"1380\n').encode(), CSV, 400, "invalid_csv"),
    ],
)
async def test_unreadable_files_are_400(
    client: TestClient, body: bytes, headers: dict[str, str], status: int, code: str | None
) -> None:
    resp = await client.post("/v1/volunteers/import", data=body, headers=headers)
    assert resp.status == status, await resp.text()
    if code:
        assert (await resp.json())["error"]["code"] == code


async def test_too_large_is_413(make_client) -> None:  # type: ignore[no-untyped-def]
    client = await make_client(max_import_bytes=100)
    resp = await client.post(
        "/v1/volunteers/import", data=(HEADER + GOOD_1 * 5).encode(), headers=CSV
    )
    assert resp.status == 413
