"""The volunteer registry (admin): create, read, list, change, rotate tokens."""

from __future__ import annotations

import datetime as dt
import time

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from rescue.auth import hash_token
from tests.conftest import ADMIN
from tests.helpers import bearer, create_center
from tests.volunteers.support import MAY_FOURTH_SQUARE, create_volunteer, location, volunteer_body
from volunteers import positions
from volunteers.constants import META

TODAY = dt.date.today()


def problems(body: dict) -> dict[str, str]:
    return {d["field"]: d["problem"] for d in body["error"]["details"]}


async def test_create_returns_the_volunteer_and_a_token_shown_once(
    client: TestClient, pg: asyncpg.Connection
) -> None:
    body = volunteer_body(quiet_hours="23:00-07:00", home_district="市南区", travel_mode="bike")
    resp = await client.post("/v1/volunteers", json=body, headers=ADMIN)
    assert resp.status == 201
    created = await resp.json()
    token = created.pop("token")
    assert token.startswith("vol_") and len(token) > 30
    assert created == {
        "id": created["id"],
        "name": "王小明",
        "phone": "+86 138 0013 8000",
        "certificate": body["certificate"],
        "travel_mode": "bike",
        "status": "active",
        "quiet_hours": "23:00-07:00",
        "home_district": "370202",
        "created_at": created["created_at"],
    }
    assert dt.datetime.fromisoformat(created["created_at"]).tzinfo is not None
    stored = await pg.fetchval("SELECT token_hash FROM volunteers WHERE id = $1", created["id"])
    assert stored == hash_token(token)

    resp = await client.get(f"/v1/volunteers/{created['id']}", headers=ADMIN)
    assert resp.status == 200
    assert await resp.json() == created  # no token any more

    resp = await client.put("/v1/me/duty", json={"on_duty": False}, headers=bearer(token))
    assert resp.status == 200


async def test_create_defaults(client: TestClient) -> None:
    body = volunteer_body()
    del body["travel_mode"]
    resp = await client.post("/v1/volunteers", json=body, headers=ADMIN)
    created = await resp.json()
    assert (created["travel_mode"], created["status"]) == ("walk", "active")
    assert created["quiet_hours"] is None and created["home_district"] is None


async def test_create_names_every_bad_field(client: TestClient) -> None:
    body = {
        "phone": "call me",
        "certificate": {"number": "", "issued_on": "2026-13-01", "expires_on": "soon"},
        "travel_mode": "helicopter",
        "status": "retired",
        "quiet_hours": "late",
        "home_district": "Atlantis",
        "nickname": "Xiao Ming",
    }
    resp = await client.post("/v1/volunteers", json=body, headers=ADMIN)
    assert resp.status == 400
    error = await resp.json()
    assert error["error"]["code"] == "invalid_input"
    assert set(problems(error)) == {
        "name",
        "phone",
        "certificate.number",
        "certificate.issuer",
        "certificate.issued_on",
        "certificate.expires_on",
        "travel_mode",
        "status",
        "quiet_hours",
        "home_district",
        "nickname",
    }


async def test_create_rejects_a_certificate_expiring_before_issue(client: TestClient) -> None:
    body = volunteer_body()
    body["certificate"]["expires_on"] = "2020-01-01"
    resp = await client.post("/v1/volunteers", json=body, headers=ADMIN)
    assert resp.status == 400
    assert "certificate.expires_on" in problems(await resp.json())


async def test_create_refuses_a_duplicate_certificate(client: TestClient) -> None:
    first = await create_volunteer(client)
    body = volunteer_body()
    body["certificate"]["number"] = first["certificate"]["number"]
    resp = await client.post("/v1/volunteers", json=body, headers=ADMIN)
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "duplicate_certificate"


@pytest.mark.parametrize(
    ("data", "headers", "status", "code"),
    [
        (b"{", {"Content-Type": "application/json"}, 400, "invalid_json"),
        (b"[]", {"Content-Type": "application/json"}, 400, "invalid_json"),
        (b"name=x", {"Content-Type": "application/x-www-form-urlencoded"}, 415, None),
    ],
)
async def test_create_rejects_malformed_bodies(
    client: TestClient, data: bytes, headers: dict[str, str], status: int, code: str | None
) -> None:
    resp = await client.post("/v1/volunteers", data=data, headers={**ADMIN, **headers})
    assert resp.status == status
    if code:
        assert (await resp.json())["error"]["code"] == code


async def test_get_unknown_is_404(client: TestClient) -> None:
    resp = await client.get("/v1/volunteers/vol_nope", headers=ADMIN)
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"


async def test_list_filters(client: TestClient) -> None:
    valid = await create_volunteer(client, name="张伟", home_district="370202")
    expiring = volunteer_body(name="李娜", home_district="Laoshan")
    expiring["certificate"]["expires_on"] = (TODAY + dt.timedelta(days=10)).isoformat()
    expiring = await (await client.post("/v1/volunteers", json=expiring, headers=ADMIN)).json()
    expired = volunteer_body(name="刘洋", status="suspended")
    expired["certificate"]["expires_on"] = (TODAY - dt.timedelta(days=1)).isoformat()
    expired["certificate"]["issued_on"] = (TODAY - dt.timedelta(days=700)).isoformat()
    expired = await (await client.post("/v1/volunteers", json=expired, headers=ADMIN)).json()

    async def ids(query: str) -> list[str]:
        resp = await client.get(f"/v1/volunteers?{query}", headers=ADMIN)
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert body["next_cursor"] is None
        return [v["id"] for v in body["items"]]

    assert await ids("") == sorted([valid["id"], expiring["id"], expired["id"]])
    assert await ids("status=suspended") == [expired["id"]]
    assert await ids("district=370212") == [expiring["id"]]
    assert await ids("district=市南区") == [valid["id"]]
    assert await ids("q=李") == [expiring["id"]]
    assert await ids(f"q={valid['certificate']['number']}") == [valid["id"]]
    assert await ids("q=%25") == []  # a literal %, not a wildcard
    assert await ids("certificate=valid") == sorted([valid["id"], expiring["id"]])
    assert await ids("certificate=expired") == [expired["id"]]
    assert await ids("certificate=expiring") == [expiring["id"]]
    assert await ids("certificate=expiring&within_days=5") == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=gone", "status"),
        ("certificate=soon", "certificate"),
        ("district=Atlantis", "district"),
        ("within_days=-1", "within_days"),
        ("limit=0", "limit"),
        ("cursor=_w", "cursor"),
        ("colour=red", "colour"),
    ],
)
async def test_list_rejects_bad_filters(client: TestClient, query: str, field: str) -> None:
    resp = await client.get(f"/v1/volunteers?{query}", headers=ADMIN)
    assert resp.status == 400
    assert field in problems(await resp.json())


async def test_list_pages_by_id(client: TestClient) -> None:
    made = sorted([(await create_volunteer(client))["id"] for _ in range(5)])
    seen: list[str] = []
    url = "/v1/volunteers?limit=2"
    pages = 0
    while url:
        body = await (await client.get(url, headers=ADMIN)).json()
        seen += [v["id"] for v in body["items"]]
        pages += 1
        url = f"/v1/volunteers?limit=2&cursor={body['next_cursor']}" if body["next_cursor"] else ""
    assert seen == made
    assert pages == 3


async def test_patch_suspends_renews_and_sets_quiet_hours(client: TestClient) -> None:
    vol = await create_volunteer(client)
    renewed = {"issued_on": TODAY.isoformat(), "expires_on": "2030-06-30", "number": "RC-NEW-1"}
    resp = await client.patch(
        f"/v1/volunteers/{vol['id']}",
        json={
            "status": "suspended",
            "certificate": renewed,
            "quiet_hours": "22:30-06:15",
            "travel_mode": "car",
            "home_district": "Huangdao",
        },
        headers=ADMIN,
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["status"] == "suspended"
    assert body["certificate"] == {**vol["certificate"], **renewed}
    assert body["quiet_hours"] == "22:30-06:15"
    assert body["travel_mode"] == "car"
    assert body["home_district"] == "370211"
    assert body["created_at"] == vol["created_at"]

    resp = await client.patch(
        f"/v1/volunteers/{vol['id']}", json={"quiet_hours": None, "status": "active"}, headers=ADMIN
    )
    body = await resp.json()
    assert body["quiet_hours"] is None and body["status"] == "active"
    assert body["travel_mode"] == "car"


async def test_bad_patch_changes_nothing(client: TestClient) -> None:
    vol = await create_volunteer(client)
    url = f"/v1/volunteers/{vol['id']}"
    resp = await client.patch(
        url,
        json={"name": None, "status": "active", "quiet_hours": "7pm", "certificate": {"x": 1}},
        headers=ADMIN,
    )
    assert resp.status == 400
    assert set(problems(await resp.json())) == {"name", "quiet_hours", "certificate.x"}
    # Valid alone, but the certificate would then expire before it was issued.
    resp = await client.patch(
        url,
        json={"status": "suspended", "certificate": {"expires_on": "2000-01-01"}},
        headers=ADMIN,
    )
    assert resp.status == 400
    assert "certificate.expires_on" in problems(await resp.json())
    resp = await client.get(url, headers=ADMIN)
    assert await resp.json() == {k: v for k, v in vol.items() if k != "token"}


async def test_patch_to_a_taken_certificate_number_is_409(client: TestClient) -> None:
    a = await create_volunteer(client)
    b = await create_volunteer(client)
    resp = await client.patch(
        f"/v1/volunteers/{b['id']}",
        json={"certificate": {"number": a["certificate"]["number"]}},
        headers=ADMIN,
    )
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "duplicate_certificate"


async def test_patch_unknown_is_404(client: TestClient) -> None:
    resp = await client.patch("/v1/volunteers/vol_nope", json={"status": "active"}, headers=ADMIN)
    assert resp.status == 404


async def test_suspending_an_on_duty_volunteer_drops_them_from_searches(
    client: TestClient, redis: Redis
) -> None:
    vol = await create_volunteer(client)
    resp = await client.put(
        "/v1/me/duty",
        json={"on_duty": True, "location": location(MAY_FOURTH_SQUARE)},
        headers=bearer(vol["token"]),
    )
    assert resp.status == 200

    async def search() -> tuple[list[positions.Candidate], dict[str, int], positions.Coverage]:
        return await positions.search_candidates(
            redis,
            lat=MAY_FOURTH_SQUARE[0],
            lng=MAY_FOURTH_SQUARE[1],
            radius_m=500,
            now=time.time(),
            ttl_s=120,
            at_local=dt.datetime.combine(TODAY, dt.time(12)),
        )

    assert [c.volunteer_id for c in (await search())[0]] == [vol["id"]]
    resp = await client.patch(
        f"/v1/volunteers/{vol['id']}", json={"status": "suspended"}, headers=ADMIN
    )
    assert resp.status == 200
    found, excluded, _ = await search()
    assert found == []
    assert excluded["suspended"] == 1
    # PATCHing an off-duty volunteer does not put them on duty.
    other = await create_volunteer(client)
    await client.patch(f"/v1/volunteers/{other['id']}", json={"travel_mode": "car"}, headers=ADMIN)
    assert not await redis.hexists(META, other["id"])


async def test_token_rotation_stops_the_old_token(client: TestClient) -> None:
    vol = await create_volunteer(client)
    old = bearer(vol["token"])
    assert (await client.put("/v1/me/duty", json={"on_duty": False}, headers=old)).status == 200

    resp = await client.post(f"/v1/volunteers/{vol['id']}/token", headers=ADMIN)
    assert resp.status == 200
    new_token = (await resp.json())["token"]
    assert new_token.startswith("vol_") and new_token != vol["token"]

    resp = await client.put("/v1/me/duty", json={"on_duty": False}, headers=old)
    assert resp.status == 401
    resp = await client.put("/v1/me/duty", json={"on_duty": False}, headers=bearer(new_token))
    assert resp.status == 200


async def test_token_rotation_reaches_other_workers(make_client) -> None:  # type: ignore[no-untyped-def]
    a = await make_client()
    b = await make_client()
    vol = await create_volunteer(a)
    old = bearer(vol["token"])
    # Worker B caches the token (for 10 s) on first use.
    assert (await b.put("/v1/me/duty", json={"on_duty": False}, headers=old)).status == 200
    assert (await a.post(f"/v1/volunteers/{vol['id']}/token", headers=ADMIN)).status == 200

    async def refused_on_b() -> bool:
        resp = await b.put("/v1/me/duty", json={"on_duty": False}, headers=old)
        return resp.status == 401

    from tests.helpers import wait_until

    # Well inside the authenticator's cache TTL: only the broadcast can explain a 401.
    await wait_until(refused_on_b, timeout=5.0)


async def test_token_rotation_of_unknown_is_404(client: TestClient) -> None:
    resp = await client.post("/v1/volunteers/vol_nope/token", headers=ADMIN)
    assert resp.status == 404


ADMIN_ENDPOINTS = [
    ("POST", "/v1/volunteers"),
    ("GET", "/v1/volunteers"),
    ("GET", "/v1/volunteers/{id}"),
    ("PATCH", "/v1/volunteers/{id}"),
    ("POST", "/v1/volunteers/{id}/token"),
    ("POST", "/v1/volunteers/import"),
]
PHONE_ENDPOINTS = [("PUT", "/v1/me/duty"), ("PUT", "/v1/me/location"), ("GET", "/v1/me/stream")]


async def test_auth_matrix(client: TestClient) -> None:
    vol = await create_volunteer(client)
    center = await create_center(client)
    volunteer, dispatch = bearer(vol["token"]), bearer(center["api_key"])
    for method, path in ADMIN_ENDPOINTS + PHONE_ENDPOINTS:
        url = path.format(id=vol["id"])
        resp = await client.request(method, url)
        assert resp.status == 401, (method, path)
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        resp = await client.request(method, url, headers=bearer("vol_not-a-real-token-123456"))
        assert resp.status == 401, (method, path)
        wrong = [dispatch, volunteer] if (method, path) in ADMIN_ENDPOINTS else [dispatch, ADMIN]
        for headers in wrong:
            resp = await client.request(method, url, headers=headers)
            assert resp.status == 403, (method, path, resp.status)
            assert (await resp.json())["error"]["code"] == "forbidden"
