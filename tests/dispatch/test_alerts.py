"""POST /v1/alerts end to end: the plan, coordinate systems, exclusions, budget, AEDs,
idempotency under concurrency, a Redis outage, exercises and validation."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import time
from typing import Any

import asyncpg
from redis.asyncio import Redis

from dispatch import routes
from geo import Crs, TravelMode, TravelModel, from_wgs84
from rescue.bus import relay
from tests.conftest import ADMIN
from tests.dispatch.support import (
    PATIENT,
    aed,
    alert_body,
    center,
    ghost_on_duty,
    local_hour_window,
    location,
    offset,
    post_alert,
    raise_alert,
    responders,
    volunteer,
)
from tests.helpers import wait_until
from volunteers.constants import POSITIONS_SEEN

PLAN_KEYS = {
    "incident_id",
    "external_id",
    "status",
    "created_at",
    "location",
    "district",
    "time_budget_s",
    "responders",
    "aeds",
    "guidance",
    "degraded",
    "exercise",
}
RESPONDER_KEYS = {"volunteer_id", "offer_id", "role", "eta_s", "distance_m", "aed_id"}
AED_KEYS = {
    "id",
    "name",
    "address",
    "location",
    "level",
    "access_note",
    "opening_hours",
    "distance_m",
    "eta_s",
}


async def test_plan_has_the_contracts_shape(make_client: Any, pg: asyncpg.Connection) -> None:
    client = await make_client()
    c = await center(client)
    near = await volunteer(client, pg, offset(PATIENT, north_m=80))
    other = await volunteer(client, pg, offset(PATIENT, east_m=150))
    third = await volunteer(client, pg, offset(PATIENT, east_m=-200), travel_mode="bike")
    unit = await aed(client, offset(PATIENT, east_m=120), address="青岛市市南区 5 号", level=1)

    plan = await raise_alert(client, c, reported_at="2026-01-01T08:00:00+08:00")

    assert set(plan) == PLAN_KEYS
    assert plan["status"] == "open" and plan["exercise"] is False
    assert plan["time_budget_s"] == 300
    assert plan["district"] == "370202"
    assert plan["location"]["crs"] == "wgs84"
    assert abs(plan["location"]["lat"] - PATIENT[0]) < 1e-6
    assert set(responders(plan)) == {near.id, other.id, third.id}
    for r in plan["responders"]:
        assert set(r) == RESPONDER_KEYS
        assert (r["role"] == "aed") == (r["aed_id"] is not None)
        assert 0 < r["eta_s"] <= 300
    assert [r["eta_s"] for r in plan["responders"]] == sorted(
        r["eta_s"] for r in plan["responders"]
    )
    assert responders(plan)[near.id] == "cpr"  # the nearest goes straight to the patient
    assert "aed" in responders(plan).values()
    (listed,) = plan["aeds"]
    assert set(listed) == AED_KEYS
    assert (
        listed["id"] == unit and listed["level"] == 1 and listed["address"] == "青岛市市南区 5 号"
    )
    assert 119 <= listed["distance_m"] <= 121
    assert listed["eta_s"] == round(TravelModel().eta_s(listed["distance_m"], TravelMode.WALK))
    guidance = plan["guidance"]
    assert guidance["url"].endswith(f"/v1/guidance/{guidance['session_id']}/ws")
    assert guidance["token"].startswith("gds_")
    assert plan["degraded"] == []

    # Stored: the incident, one offer per responder, the dispatcher's hashed token, the timeline.
    incident = await pg.fetchrow("SELECT * FROM incidents WHERE id = $1", plan["incident_id"])
    assert incident["center_id"] == c.id and incident["status"] == "open"
    assert incident["reported_at"] == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert incident["next_escalation_at"] > incident["created_at"]
    offers = await pg.fetch("SELECT * FROM offers WHERE incident_id = $1", plan["incident_id"])
    assert {o["id"] for o in offers} == {r["offer_id"] for r in plan["responders"]}
    assert all(o["state"] == "open" and not o["engaged"] for o in offers)
    stored_hash = await pg.fetchval(
        "SELECT token_hash FROM guidance_participants"
        " WHERE session_id = $1 AND role = 'dispatcher'",
        guidance["session_id"],
    )
    assert stored_hash == hashlib.sha256(guidance["token"].encode()).digest()
    types = [
        r["type"]
        for r in await pg.fetch(
            "SELECT type FROM timeline WHERE incident_id = $1 ORDER BY id", plan["incident_id"]
        )
    ]
    assert types == ["alert_received", "plan_made", "offers_sent"]
    events = await pg.fetch(
        "SELECT type, data::text AS data FROM outbox WHERE key = $1 ORDER BY id",
        plan["incident_id"],
    )
    assert [e["type"] for e in events] == ["incident.created"] + ["offer.created"] * 3


async def test_gcj02_alert_gives_the_same_plan(make_client: Any, pg: asyncpg.Connection) -> None:
    client = await make_client()
    c = await center(client)
    for north, east in ((60, 0), (0, 140), (-190, 30), (250, -100)):
        await volunteer(client, pg, offset(PATIENT, north_m=north, east_m=east))
    await aed(client, offset(PATIENT, north_m=100, east_m=40))
    await aed(client, offset(PATIENT, north_m=-90))

    wgs = await raise_alert(client, c)
    resp = await post_alert(client, c, alert_body(crs=Crs.GCJ02), "?crs=gcj02")
    assert resp.status == 201
    gcj = await resp.json()

    def essence(plan: dict[str, Any]) -> Any:
        return (
            sorted(
                (r["volunteer_id"], r["role"], r["aed_id"], r["eta_s"]) for r in plan["responders"]
            ),
            [(a["id"], a["distance_m"]) for a in plan["aeds"]],
            plan["district"],
        )

    assert essence(wgs) == essence(gcj)
    assert len(wgs["responders"]) == 4
    # The GCJ-02 answer speaks GCJ-02 everywhere (about 500 m off WGS-84 here).
    expected = from_wgs84(*PATIENT, Crs.GCJ02)
    assert gcj["location"]["crs"] == "gcj02"
    assert abs(gcj["location"]["lat"] - expected[0]) < 1e-6
    assert abs(gcj["location"]["lng"] - expected[1]) < 1e-6
    assert all(a["location"]["crs"] == "gcj02" for a in gcj["aeds"])
    stored = await pg.fetchrow("SELECT lat, lng FROM incidents WHERE id = $1", gcj["incident_id"])
    assert abs(stored["lat"] - PATIENT[0]) < 1e-6 and abs(stored["lng"] - PATIENT[1]) < 1e-6


async def test_each_exclusion_excludes(
    make_client: Any, pg: asyncpg.Connection, redis: Redis
) -> None:
    client = await make_client()
    c = await center(client)
    at = offset(PATIENT, north_m=50)
    eligible = await volunteer(client, pg, at)
    await volunteer(client, pg, None)  # never on duty
    checked_out = await volunteer(client, pg, at)
    resp = await client.put("/v1/me/duty", json={"on_duty": False}, headers=checked_out.headers)
    assert resp.status == 200
    stale = await volunteer(client, pg, at)
    await redis.zadd(POSITIONS_SEEN, {stale.id: time.time() - 10_000})
    expired = await volunteer(client, pg, at)
    yesterday = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    resp = await client.patch(
        f"/v1/volunteers/{expired.id}",
        json={"certificate": {"expires_on": yesterday}},
        headers=ADMIN,
    )
    assert resp.status == 200, await resp.text()
    suspended = await volunteer(client, pg, at)
    resp = await client.patch(
        f"/v1/volunteers/{suspended.id}", json={"status": "suspended"}, headers=ADMIN
    )
    assert resp.status == 200, await resp.text()
    await volunteer(client, pg, at, quiet_hours=local_hour_window(around=True))
    awake = await volunteer(client, pg, at, quiet_hours=local_hour_window(around=False))
    # Engaged in another incident nearby: accepts an offer there first.
    engaged = await volunteer(client, pg, at)
    elsewhere = await raise_alert(client, c, location=location(offset(PATIENT, north_m=300)))
    (offer,) = [r for r in elsewhere["responders"] if r["volunteer_id"] == engaged.id]
    resp = await client.post(f"/v1/me/offers/{offer['offer_id']}/accept", headers=engaged.headers)
    assert resp.status == 200, await resp.text()

    plan = await raise_alert(client, c)
    assert set(responders(plan)) == {eligible.id, awake.id}
    made = await pg.fetchval(
        "SELECT data::text FROM timeline WHERE incident_id = $1 AND type = 'plan_made'",
        plan["incident_id"],
    )
    for reason in ("stale", "certificate_expired", "suspended", "quiet_hours", "engaged"):
        assert f'"{reason}": 1' in made


async def test_time_budget_bounds_the_plan(make_client: Any, pg: asyncpg.Connection) -> None:
    client = await make_client()
    c = await center(client)
    reach = TravelModel().reach_m(300, TravelMode.WALK)
    inside = await volunteer(client, pg, offset(PATIENT, north_m=reach - 10))
    await volunteer(client, pg, offset(PATIENT, north_m=-(reach + 10)))
    near = await volunteer(client, pg, offset(PATIENT, east_m=100))
    driver = await volunteer(client, pg, offset(PATIENT, east_m=-(reach + 200)), travel_mode="car")
    assert set(responders(await raise_alert(client, c))) == {inside.id, near.id, driver.id}

    # A smaller budget shrinks the plan.
    small = await make_client(time_budget_s=120)
    plan = await raise_alert(small, c)
    assert plan["time_budget_s"] == 120
    assert set(responders(plan)) == {near.id}


async def test_unavailable_aeds_are_left_out(make_client: Any, pg: asyncpg.Connection) -> None:
    client = await make_client()
    c = await center(client)
    yesterday = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    good = await aed(client, offset(PATIENT, north_m=50))
    await aed(client, offset(PATIENT, north_m=60), status="maintenance")
    await aed(client, offset(PATIENT, north_m=70), pads_expire_on=yesterday)
    await aed(client, offset(PATIENT, north_m=80), battery_expire_on=yesterday)
    await aed(
        client,
        offset(PATIENT, north_m=90),
        opening_hours=f"Mo-Su {local_hour_window(around=False)}",
    )
    open_now = await aed(
        client, offset(PATIENT, north_m=95), opening_hours=f"Mo-Su {local_hour_window(around=True)}"
    )
    too_far = TravelModel().reach_m(300, TravelMode.WALK) + 20
    await aed(client, offset(PATIENT, east_m=too_far))
    plan = await raise_alert(client, c)
    assert [a["id"] for a in plan["aeds"]] == [good, open_now]


async def test_replay_and_conflict(make_client: Any, pg: asyncpg.Connection) -> None:
    client = await make_client()
    c = await center(client)
    await volunteer(client, pg, offset(PATIENT, north_m=40))
    await aed(client, offset(PATIENT, east_m=40))
    body = alert_body(note="second floor")
    first = await post_alert(client, c, body)
    assert first.status == 201
    plan = await first.json()
    # Same body, keys in another order: the same plan, guidance token included.
    replay = await post_alert(client, c, dict(reversed(list(body.items()))))
    assert replay.status == 200
    assert await replay.json() == plan
    assert await pg.fetchval("SELECT count(*) FROM incidents") == 1
    assert await pg.fetchval("SELECT count(*) FROM outbox WHERE type = 'offer.created'") == 1
    # Same external id, different body.
    resp = await post_alert(client, c, {**body, "note": "third floor"})
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "external_id_conflict"
    # Another center may use the same external id.
    other = await center(client, "Huangdao 120")
    assert (await post_alert(client, other, body)).status == 201
    metrics = await (await client.get("/metrics")).text()
    assert 'rescue_alerts_total{outcome="created"} 2.0' in metrics
    assert 'rescue_alerts_total{outcome="replayed"} 1.0' in metrics
    assert 'rescue_alerts_total{outcome="conflict"} 1.0' in metrics


async def test_concurrent_identical_alerts_make_one_incident(
    make_client: Any, pg: asyncpg.Connection
) -> None:
    first, second = await make_client(), await make_client()
    c = await center(first)
    for east in (30, 60, 90, -40):
        await volunteer(first, pg, offset(PATIENT, east_m=east))
    await aed(first, offset(PATIENT, north_m=60))
    body = alert_body()
    responses = await asyncio.gather(
        *(post_alert(first if i % 2 else second, c, body) for i in range(20))
    )
    statuses = sorted(r.status for r in responses)
    assert statuses == [200] * 19 + [201]
    plans = [await r.json() for r in responses]
    assert all(p == plans[0] for p in plans)
    assert await pg.fetchval("SELECT count(*) FROM incidents") == 1
    assert await pg.fetchval("SELECT count(*) FROM offers") == 4
    assert await pg.fetchval("SELECT count(*) FROM guidance_sessions") == 1
    assert await pg.fetchval("SELECT count(*) FROM outbox WHERE type = 'incident.created'") == 1


async def test_redis_down_answers_degraded(make_client: Any, pg: asyncpg.Connection) -> None:
    healthy = await make_client()
    c = await center(healthy)
    await volunteer(healthy, pg, offset(PATIENT, north_m=40))
    unit = await aed(healthy, offset(PATIENT, east_m=70))
    broken = await make_client(redis_url="redis://127.0.0.1:1/0")
    resp = await post_alert(broken, c, alert_body())
    assert resp.status == 201, await resp.text()
    plan = await resp.json()
    assert plan["degraded"] == ["volunteers"]
    assert plan["responders"] == []
    assert [a["id"] for a in plan["aeds"]] == [unit]
    stored = await pg.fetchrow(
        "SELECT status, plan FROM incidents WHERE id = $1", plan["incident_id"]
    )
    assert stored["status"] == "open"
    metrics = await (await broken.get("/metrics")).text()
    assert 'rescue_alerts_total{outcome="degraded"} 1.0' in metrics


async def test_a_full_redis_pool_delays_alerts_instead_of_degrading_them(
    make_client: Any, pg: asyncpg.Connection
) -> None:
    """Redis is up but the worker's pool has fewer connections than requests awaiting Redis (a
    burst): each alert waits for a connection, and offers its volunteers."""
    setup = await make_client()
    c = await center(setup)
    near = await volunteer(setup, pg, offset(PATIENT, north_m=40))
    # Three connections: the phone and guidance hubs hold two, twelve alerts share the third.
    narrow = await make_client(redis_max_connections=3, background=False)
    bodies = [alert_body() for _ in range(12)]
    responses = await asyncio.gather(*(post_alert(narrow, c, body) for body in bodies))
    plans = [await r.json() for r in responses]
    assert [p["degraded"] for p in plans] == [[]] * len(bodies)
    assert all([r["volunteer_id"] for r in p["responders"]] == [near.id] for p in plans)


async def test_exercise_is_marked_everywhere(make_client: Any, pg: asyncpg.Connection) -> None:
    client = await make_client()
    c = await center(client)
    vol = await volunteer(client, pg, offset(PATIENT, north_m=40))
    plan = await raise_alert(client, c, exercise=True)
    assert plan["exercise"] is True
    resp = await client.get("/v1/me/offers", headers=vol.headers)
    (offer,) = (await resp.json())["items"]
    assert offer["exercise"] is True
    datas = await pg.fetch("SELECT data FROM outbox WHERE key = $1", plan["incident_id"])
    assert datas and all('"exercise": true' in r["data"] for r in datas)
    entries = await pg.fetch(
        "SELECT data::text AS data FROM timeline WHERE incident_id = $1", plan["incident_id"]
    )
    assert entries and all('"exercise": true' in r["data"] for r in entries)


async def test_alert_validation(make_client: Any, pg: asyncpg.Connection) -> None:
    client = await make_client()
    c = await center(client)
    resp = await client.post(
        "/v1/alerts", json={"note": 5, "category": "fall", "x": 1}, headers=c.headers
    )
    assert resp.status == 400
    fields = {d["field"] for d in (await resp.json())["error"]["details"]}
    assert fields == {"external_id", "location", "note", "category", "x"}
    resp = await post_alert(client, c, alert_body(callback_url="ftp://x", reported_at="yesterday"))
    fields = {d["field"] for d in (await resp.json())["error"]["details"]}
    assert resp.status == 400 and fields == {"callback_url", "reported_at"}
    swapped = alert_body(location={"lat": PATIENT[1], "lng": PATIENT[0]})
    resp = await post_alert(client, c, swapped)
    assert resp.status == 400
    shanghai = alert_body(location={"lat": 31.23, "lng": 121.47})
    resp = await post_alert(client, c, shanghai)
    assert resp.status == 422
    assert (await resp.json())["error"]["code"] == "outside_service_area"
    vol = await volunteer(client, pg, None)
    assert (await client.post("/v1/alerts", json=alert_body(), headers=vol.headers)).status == 403
    assert (await client.post("/v1/alerts", json=alert_body(), headers=ADMIN)).status == 403
    assert (await client.post("/v1/alerts", json=alert_body())).status == 401
    resp = await client.post(
        "/v1/alerts", data="x", headers={**c.headers, "Content-Type": "text/plain"}
    )
    assert resp.status == 415
    assert await pg.fetchval("SELECT count(*) FROM incidents") == 0


async def test_a_position_without_a_registered_volunteer_does_not_fail_the_alert(
    make_client: Any, pg: asyncpg.Connection, redis: Redis
) -> None:
    client = await make_client()
    c = await center(client)
    real = await volunteer(client, pg, offset(PATIENT, north_m=90))
    # Redis outlived a rebuilt database: a position of a volunteer PostgreSQL does not know.
    await ghost_on_duty(redis, offset(PATIENT, north_m=20))
    plan = await raise_alert(client, c)
    assert set(responders(plan)) == {real.id}
    replay = await client.get(f"/v1/incidents/{plan['incident_id']}", headers=c.headers)
    assert set(responders(await replay.json())) == {real.id}
    assert await pg.fetchval("SELECT count(*) FROM outbox WHERE type = 'offer.created'") == 1


async def test_an_alert_is_answered_before_its_events_are_published(
    make_client: Any, pg: asyncpg.Connection, monkeypatch: Any
) -> None:
    # Its worker publishes them right after (no relay claim), but not ahead of the response.
    client = await make_client()
    c = await center(client)
    await volunteer(client, pg, offset(PATIENT, north_m=50))
    order: list[str] = []
    render = routes.render_plan
    xadd = relay.Relay._xadd

    def rendering(*args: Any, **kwargs: Any) -> Any:
        order.append("rendered")
        return render(*args, **kwargs)

    async def publishing(self: relay.Relay, entries: Any) -> None:
        order.append("published")
        await xadd(self, entries)

    monkeypatch.setattr(routes, "render_plan", rendering)
    monkeypatch.setattr(relay.Relay, "_xadd", publishing)
    plan = await raise_alert(client, c)
    assert len(plan["responders"]) == 1
    await wait_until(lambda: "published" in order, what="the alert's events published")
    assert order[:2] == ["rendered", "published"]
