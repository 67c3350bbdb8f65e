"""GET /v1/incidents/{id}, cancel and close: visibility, atomic endings, their effects."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from redis.asyncio import Redis

from tests.conftest import ADMIN
from tests.dispatch.support import PATIENT, center, offset, raise_alert, volunteer
from volunteers.constants import ENGAGED


async def test_only_the_raising_center_sees_the_incident(
    make_client: Any, pg: asyncpg.Connection
) -> None:
    client = await make_client()
    mine, theirs = await center(client, "Qingdao 120"), await center(client, "Jiaozhou 120")
    vol = await volunteer(client, pg, offset(PATIENT, north_m=50))
    plan = await raise_alert(client, mine)
    url = f"/v1/incidents/{plan['incident_id']}"

    resp = await client.get(url + "?crs=gcj02", headers=mine.headers)
    assert resp.status == 200
    incident = await resp.json()
    assert incident["incident_id"] == plan["incident_id"] and incident["status"] == "open"
    assert incident["location"]["crs"] == "gcj02"
    assert incident["guidance"] == plan["guidance"]
    assert [o["volunteer_id"] for o in incident["offers"]] == [vol.id]
    assert incident["offers"][0]["state"] == "open"
    assert [t["type"] for t in incident["timeline"]] == [
        "alert_received",
        "plan_made",
        "offers_sent",
    ]
    assert incident["timeline"][0]["actor"] == mine.id
    assert set(incident["timeline"][0]) == {"at", "type", "actor", "data"}
    assert incident["outcome"] is None

    # Another center learns nothing, not even that the id exists.
    for method, path, body in (
        ("GET", url, None),
        ("POST", url + "/cancel", {"reason": "x"}),
        ("POST", url + "/close", {"outcome": {}}),
    ):
        resp = await client.request(method, path, json=body, headers=theirs.headers)
        assert resp.status == 404, (method, path)
    assert (await client.get(url, headers=ADMIN)).status == 200
    assert (await client.get(url, headers=vol.headers)).status == 403
    assert (await client.get("/v1/incidents/inc_nope", headers=mine.headers)).status == 404
    assert await pg.fetchval("SELECT status FROM incidents") == "open"


async def test_cancel_ends_offers_engagements_and_guidance(
    make_client: Any, pg: asyncpg.Connection, redis: Redis
) -> None:
    client = await make_client()
    c = await center(client)
    taker = await volunteer(client, pg, offset(PATIENT, north_m=50))
    idle = await volunteer(client, pg, offset(PATIENT, east_m=80))
    plan = await raise_alert(client, c)
    offers = {r["volunteer_id"]: r["offer_id"] for r in plan["responders"]}
    resp = await client.post(f"/v1/me/offers/{offers[taker.id]}/accept", headers=taker.headers)
    assert resp.status == 200
    url = f"/v1/incidents/{plan['incident_id']}"

    resp = await client.post(url + "/cancel", json={}, headers=c.headers)
    assert resp.status == 400
    resp = await client.post(url + "/cancel", json={"reason": "误报"}, headers=c.headers)
    assert resp.status == 200, await resp.text()
    incident = await resp.json()
    assert incident["status"] == "cancelled" and incident["outcome"] == {"reason": "误报"}
    states = {o["volunteer_id"]: (o["state"], o["engaged"]) for o in incident["offers"]}
    assert states == {taker.id: ("accepted", False), idle.id: ("cancelled", False)}
    assert [t["type"] for t in incident["timeline"]][-2:] == ["offer_cancelled", "cancelled"]
    assert await redis.hget(ENGAGED, taker.id) is None
    row = await pg.fetchrow(
        "SELECT closed_at, next_escalation_at FROM incidents WHERE id = $1", plan["incident_id"]
    )
    assert row["closed_at"] is not None and row["next_escalation_at"] is None
    assert await pg.fetchval("SELECT closed_at FROM guidance_sessions") is not None
    events = [
        r["type"]
        for r in await pg.fetch(
            "SELECT type FROM outbox WHERE key = $1 ORDER BY id", plan["incident_id"]
        )
    ]
    assert events[-2:] == ["offer.cancelled", "incident.cancelled"]

    # Once only; and nothing more can happen to it.
    for path, body in (("/cancel", {"reason": "again"}), ("/close", {"outcome": {}})):
        resp = await client.post(url + path, json=body, headers=c.headers)
        assert resp.status == 409
        assert (await resp.json())["error"]["code"] == "incident_not_open"
    resp = await client.post(f"/v1/me/offers/{offers[idle.id]}/accept", headers=idle.headers)
    assert resp.status == 409
    resp = await client.post(
        f"/v1/me/offers/{offers[taker.id]}/status",
        json={"status": "arrived"},
        headers=taker.headers,
    )
    assert resp.status == 409
    # The taker is free for the next incident.
    assert taker.id in {r["volunteer_id"] for r in (await raise_alert(client, c))["responders"]}


async def test_close_with_outcome(make_client: Any, pg: asyncpg.Connection) -> None:
    client = await make_client()
    c = await center(client)
    vol = await volunteer(client, pg, offset(PATIENT, north_m=50))
    plan = await raise_alert(client, c)
    (offer,) = plan["responders"]
    assert (
        await client.post(f"/v1/me/offers/{offer['offer_id']}/accept", headers=vol.headers)
    ).status == 200
    url = f"/v1/incidents/{plan['incident_id']}/close"
    resp = await client.post(url, json={"outcome": {"rosc": "yes", "mood": 1}}, headers=c.headers)
    assert resp.status == 400
    fields = {d["field"] for d in (await resp.json())["error"]["details"]}
    assert fields == {"outcome.rosc", "outcome.mood"}
    assert (await client.post(url, json={}, headers=c.headers)).status == 400
    outcome = {
        "ems_arrived_at": "2026-05-01T10:12:00+08:00",
        "rosc": True,
        "transported": True,
        "notes": "AED 1 shock",
    }
    resp = await client.post(url, json={"outcome": outcome}, headers=ADMIN)
    assert resp.status == 200, await resp.text()
    incident = await resp.json()
    assert incident["status"] == "closed"
    assert incident["outcome"] == {
        **outcome,
        "ems_arrived_at": "2026-05-01T10:12:00+08:00",
        "survived": None,
    }
    assert incident["timeline"][-1]["type"] == "closed"
    assert incident["timeline"][-1]["actor"] == "admin"
    assert incident["offers"][0]["engaged"] is False
    assert await pg.fetchval("SELECT count(*) FROM outbox WHERE type = 'incident.closed'") == 1


async def test_concurrent_cancel_and_close_end_it_once(
    make_client: Any, pg: asyncpg.Connection
) -> None:
    first, second = await make_client(), await make_client()
    c = await center(first)
    await volunteer(first, pg, offset(PATIENT, north_m=50))
    plan = await raise_alert(first, c)
    url = f"/v1/incidents/{plan['incident_id']}"
    results = await asyncio.gather(
        first.post(url + "/cancel", json={"reason": "duplicate call"}, headers=c.headers),
        second.post(url + "/close", json={"outcome": {"rosc": False}}, headers=c.headers),
        first.post(url + "/close", json={"outcome": {"survived": False}}, headers=c.headers),
    )
    assert sorted(r.status for r in results) == [200, 409, 409]
    ends = await pg.fetchval(
        "SELECT count(*) FROM outbox WHERE type IN ('incident.cancelled', 'incident.closed')"
    )
    assert ends == 1
