"""The volunteer's own phone: duty, location updates and the push WebSocket."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from geo import Crs, from_wgs84, haversine_m
from rescue.typedefs import foreground_key, redis_key
from tests.conftest import ADMIN
from tests.helpers import bearer, held_members, held_position, wait_until
from tests.volunteers.support import (
    MAY_FOURTH_SQUARE,
    SHANGHAI,
    ZHANQIAO_PIER,
    create_volunteer,
    location,
    volunteer_body,
)
from volunteers.channels import CLOSE_TOKEN_REVOKED, push_to_phone
from volunteers.constants import META, POSITIONS_BY_MODE, POSITIONS_SEEN


async def stored_position(redis: Redis, vid: str) -> tuple[float, float] | None:
    return await held_position(redis, vid)


async def go_on_duty(
    client: TestClient, token: str, point: tuple[float, float] = MAY_FOURTH_SQUARE
):
    resp = await client.put(
        "/v1/me/duty", json={"on_duty": True, "location": location(point)}, headers=bearer(token)
    )
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_duty_on_stores_the_position_and_off_forgets_it(
    client: TestClient, redis: Redis
) -> None:
    vol = await create_volunteer(client)
    before = time.time()
    body = await go_on_duty(client, vol["token"])
    assert body["on_duty"] is True
    expires = dt.datetime.fromisoformat(body["position_expires_at"])
    assert expires.tzinfo is not None
    assert before + 119 <= expires.timestamp() <= time.time() + 121
    pos = await stored_position(redis, vol["id"])
    assert pos is not None and haversine_m(*pos, *MAY_FOURTH_SQUARE) < 1
    assert await redis.zscore(POSITIONS_SEEN, vol["id"]) >= before - 1
    assert await redis.hexists(META, vol["id"])

    resp = await client.put("/v1/me/duty", json={"on_duty": False}, headers=bearer(vol["token"]))
    assert resp.status == 200
    assert await resp.json() == {"on_duty": False}
    assert await stored_position(redis, vol["id"]) is None
    assert await redis.zscore(POSITIONS_SEEN, vol["id"]) is None
    assert not await redis.hexists(META, vol["id"])


async def test_duty_location_may_be_gcj02(client: TestClient, redis: Redis) -> None:
    vol = await create_volunteer(client)
    gcj = from_wgs84(*MAY_FOURTH_SQUARE, Crs.GCJ02)
    resp = await client.put(
        "/v1/me/duty",
        json={"on_duty": True, "location": location(gcj, crs="gcj02")},
        headers=bearer(vol["token"]),
    )
    assert resp.status == 200
    pos = await stored_position(redis, vol["id"])
    assert pos is not None and haversine_m(*pos, *MAY_FOURTH_SQUARE) < 1


async def test_expired_or_suspended_volunteers_may_not_go_on_duty(
    client: TestClient, redis: Redis
) -> None:
    expired = volunteer_body()
    today = dt.date.today()
    expired["certificate"]["expires_on"] = (today - dt.timedelta(days=1)).isoformat()
    expired["certificate"]["issued_on"] = (today - dt.timedelta(days=800)).isoformat()
    resp = await client.post("/v1/volunteers", json=expired, headers=ADMIN)
    expired = await resp.json()
    suspended = await create_volunteer(client, status="suspended")
    for vol, code in ((expired, "certificate_expired"), (suspended, "suspended")):
        resp = await client.put(
            "/v1/me/duty",
            json={"on_duty": True, "location": location(MAY_FOURTH_SQUARE)},
            headers=bearer(vol["token"]),
        )
        assert resp.status == 403
        assert (await resp.json())["error"]["code"] == code
        assert not await redis.hexists(META, vol["id"])
    # Renewing the certificate lets them on duty.
    resp = await client.patch(
        f"/v1/volunteers/{expired['id']}",
        json={"certificate": {"expires_on": (today + dt.timedelta(days=365)).isoformat()}},
        headers=ADMIN,
    )
    assert resp.status == 200
    await go_on_duty(client, expired["token"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "on_duty"),
        ({"on_duty": "yes"}, "on_duty"),
        ({"on_duty": True}, "location"),
        ({"on_duty": True, "location": {"lat": 36.06}}, "location.lng"),
        ({"on_duty": True, "location": {"lat": 120.38, "lng": 36.06}}, "location.lat"),
        ({"on_duty": True, "location": location(MAY_FOURTH_SQUARE, crs="osgb")}, "location.crs"),
        ({"on_duty": False, "mood": "tired"}, "mood"),
    ],
)
async def test_duty_rejects_bad_bodies(
    client: TestClient, redis: Redis, body: dict, field: str
) -> None:
    vol = await create_volunteer(client)
    resp = await client.put("/v1/me/duty", json=body, headers=bearer(vol["token"]))
    assert resp.status == 400
    error = await resp.json()
    assert field in [d["field"] for d in error["error"]["details"]]
    assert not await redis.hexists(META, vol["id"])


async def test_duty_outside_the_service_area_is_422(client: TestClient, redis: Redis) -> None:
    vol = await create_volunteer(client)
    resp = await client.put(
        "/v1/me/duty",
        json={"on_duty": True, "location": location(SHANGHAI)},
        headers=bearer(vol["token"]),
    )
    assert resp.status == 422
    assert (await resp.json())["error"]["code"] == "outside_service_area"
    assert not await redis.hexists(META, vol["id"])


async def test_location_updates_move_the_only_position(client: TestClient, redis: Redis) -> None:
    vol = await create_volunteer(client)
    await go_on_duty(client, vol["token"])
    seen_before = await redis.zscore(POSITIONS_SEEN, vol["id"])
    resp = await client.put(
        "/v1/me/location",
        json=location(ZHANQIAO_PIER, accuracy_m=8.5),
        headers=bearer(vol["token"]),
    )
    assert resp.status == 204
    pos = await stored_position(redis, vol["id"])
    assert pos is not None and haversine_m(*pos, *ZHANQIAO_PIER) < 1
    assert await held_members(redis) == [vol["id"]]
    assert await redis.zscore(POSITIONS_SEEN, vol["id"]) >= seen_before
    # No history anywhere: the volunteers' keys are the live state only.
    ours = [k for k in await redis.keys("rescue:*") if k.startswith(("rescue:pos", "rescue:vol"))]
    assert sorted(ours) == sorted([POSITIONS_BY_MODE[vol["travel_mode"]], POSITIONS_SEEN, META])


async def test_a_location_waits_for_the_alerts_in_flight_on_its_worker(
    client: TestClient, redis: Redis
) -> None:
    vol = await create_volunteer(client)
    await go_on_duty(client, vol["token"])
    foreground = client.app[foreground_key]
    foreground.max_wait_s = 60
    with foreground.busy():  # an alert, in flight throughout
        task = asyncio.create_task(
            client.put(
                "/v1/me/location", json=location(ZHANQIAO_PIER), headers=bearer(vol["token"])
            )
        )
        done, _ = await asyncio.wait({task}, timeout=0.2)
        assert not done
        pos = await stored_position(redis, vol["id"])
        assert pos is not None and haversine_m(*pos, *MAY_FOURTH_SQUARE) < 1
    # The alert done, the position goes in at once.
    resp = await asyncio.wait_for(task, timeout=30)
    assert resp.status == 204
    pos = await stored_position(redis, vol["id"])
    assert pos is not None and haversine_m(*pos, *ZHANQIAO_PIER) < 1


async def test_location_while_off_duty_is_409(client: TestClient, redis: Redis) -> None:
    vol = await create_volunteer(client)
    resp = await client.put(
        "/v1/me/location", json=location(MAY_FOURTH_SQUARE), headers=bearer(vol["token"])
    )
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "not_on_duty"
    await go_on_duty(client, vol["token"])
    await client.put("/v1/me/duty", json={"on_duty": False}, headers=bearer(vol["token"]))
    resp = await client.put(
        "/v1/me/location", json=location(MAY_FOURTH_SQUARE), headers=bearer(vol["token"])
    )
    assert resp.status == 409
    assert await stored_position(redis, vol["id"]) is None


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"lat": 36.06}, 400, "lng"),
        ({"lat": "36", "lng": 120.38}, 400, "lat"),
        ({**location(MAY_FOURTH_SQUARE), "accuracy_m": -1}, 400, "accuracy_m"),
        ({**location(MAY_FOURTH_SQUARE), "speed": 3}, 400, "speed"),
        (location(SHANGHAI), 422, "location"),
    ],
)
async def test_location_rejects_bad_bodies(
    client: TestClient, redis: Redis, body: dict, status: int, field: str
) -> None:
    vol = await create_volunteer(client)
    await go_on_duty(client, vol["token"])
    resp = await client.put("/v1/me/location", json=body, headers=bearer(vol["token"]))
    assert resp.status == status
    assert field in [d["field"] for d in (await resp.json())["error"]["details"]]
    pos = await stored_position(redis, vol["id"])
    assert pos is not None and haversine_m(*pos, *MAY_FOURTH_SQUARE) < 1


async def test_a_volunteer_only_ever_acts_as_itself(client: TestClient, redis: Redis) -> None:
    me = await create_volunteer(client)
    other = await create_volunteer(client)
    await go_on_duty(client, other["token"])
    await go_on_duty(client, me["token"], ZHANQIAO_PIER)
    await client.put("/v1/me/duty", json={"on_duty": False}, headers=bearer(me["token"]))
    # My check-out did not touch the other volunteer.
    assert await redis.hexists(META, other["id"])
    assert not await redis.hexists(META, me["id"])
    # My token reaches nothing but /v1/me.
    for method, url in (
        ("GET", f"/v1/volunteers/{other['id']}"),
        ("PATCH", f"/v1/volunteers/{me['id']}"),
        ("POST", f"/v1/volunteers/{me['id']}/token"),
    ):
        resp = await client.request(method, url, json={}, headers=bearer(me["token"]))
        assert resp.status == 403, url


async def test_redis_down_is_503(make_client) -> None:  # type: ignore[no-untyped-def]
    up = await make_client()
    vol = await create_volunteer(up)
    down = await make_client(redis_url="redis://127.0.0.1:1/0")
    for path, body in (
        ("/v1/me/location", location(MAY_FOURTH_SQUARE)),
        ("/v1/me/duty", {"on_duty": True, "location": location(MAY_FOURTH_SQUARE)}),
    ):
        resp = await down.put(path, json=body, headers=bearer(vol["token"]))
        assert resp.status == 503, path
        assert (await resp.json())["error"]["code"] == "redis_unavailable"
        assert resp.headers["Retry-After"]


async def test_stream_says_hello_and_forwards_pushes_from_another_worker(make_client) -> None:  # type: ignore[no-untyped-def]
    a = await make_client()
    b = await make_client()
    vol = await create_volunteer(a)
    other = await create_volunteer(a)
    await go_on_duty(a, vol["token"])
    async with a.ws_connect("/v1/me/stream", headers=bearer(vol["token"])) as ws:
        hello = await ws.receive_json(timeout=5)
        assert hello == {"type": "hello", "volunteer_id": vol["id"], "on_duty": True}
        metrics = await (await a.get("/metrics")).text()
        assert 'rescue_websockets_open{kind="phone"} 1.0' in metrics

        assert await push_to_phone(b.app[redis_key], other["id"], {"type": "offer", "id": "x"}) == 0
        offer = {"type": "offer", "id": "off_1", "incident_id": "inc_1", "note": "请速来"}
        assert await push_to_phone(b.app[redis_key], vol["id"], offer) == 1
        assert await ws.receive_json(timeout=5) == offer
        await push_to_phone(b.app[redis_key], vol["id"], {"type": "incident_closed", "n": 2})
        assert await ws.receive_json(timeout=5) == {"type": "incident_closed", "n": 2}

        await ws.send_json({"type": "ping"})
        assert await ws.receive_json(timeout=5) == {"type": "pong"}
        await ws.send_str("hello?")
        assert (await ws.receive_json(timeout=5))["type"] == "error"
        assert not ws.closed

    async def gauge_back_to_zero() -> bool:
        text = await (await a.get("/metrics")).text()
        return 'rescue_websockets_open{kind="phone"} 0.0' in text

    await wait_until(gauge_back_to_zero, timeout=5)


async def test_every_socket_of_a_volunteer_gets_the_push(make_client) -> None:  # type: ignore[no-untyped-def]
    a = await make_client()
    b = await make_client()
    vol = await create_volunteer(a)
    async with (
        a.ws_connect("/v1/me/stream", headers=bearer(vol["token"])) as ws_a,
        b.ws_connect(f"/v1/me/stream?token={vol['token']}") as ws_b,
        a.ws_connect("/v1/me/stream", headers=bearer(vol["token"])) as ws_a2,
    ):
        for ws in (ws_a, ws_b, ws_a2):
            assert (await ws.receive_json(timeout=5))["on_duty"] is False
        assert await push_to_phone(a.app[redis_key], vol["id"], {"type": "offer_update"}) == 2
        for ws in (ws_a, ws_b, ws_a2):
            assert await ws.receive_json(timeout=5) == {"type": "offer_update"}
        await ws_a2.close()
        # The worker still holds one socket of this volunteer: still subscribed.
        await push_to_phone(a.app[redis_key], vol["id"], {"type": "offer", "n": 2})
        assert await ws_a.receive_json(timeout=5) == {"type": "offer", "n": 2}
        assert await ws_b.receive_json(timeout=5) == {"type": "offer", "n": 2}


async def test_stream_needs_a_websocket_upgrade(client: TestClient) -> None:
    vol = await create_volunteer(client)
    resp = await client.get("/v1/me/stream", headers=bearer(vol["token"]))
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "websocket_required"
    # ?token= is honoured only on a WebSocket upgrade.
    resp = await client.get(f"/v1/me/stream?token={vol['token']}")
    assert resp.status == 401


async def test_rotating_the_token_closes_sockets_opened_with_it(make_client) -> None:  # type: ignore[no-untyped-def]
    a = await make_client()
    b = await make_client()
    vol = await create_volunteer(a)
    async with b.ws_connect("/v1/me/stream", headers=bearer(vol["token"])) as ws:
        await ws.receive_json(timeout=5)
        assert (await a.post(f"/v1/volunteers/{vol['id']}/token", headers=ADMIN)).status == 200
        msg = await ws.receive(timeout=5)
        assert msg.type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == CLOSE_TOKEN_REVOKED


async def test_the_token_never_reaches_the_access_log(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    vol = await create_volunteer(client)
    secret = vol["token"].split("_", 1)[1]
    async with client.ws_connect(f"/v1/me/stream?token={vol['token']}&v=2") as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "hello"

    async def logged() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "/v1/me/stream" in r.getMessage()]

    records = await wait_until(logged, timeout=5)
    line = records[0].getMessage()
    assert "token=[redacted]&v=2" in line
    for record in caplog.records:
        assert secret not in record.getMessage()
        assert secret not in str(getattr(record, "first_request_line", ""))
