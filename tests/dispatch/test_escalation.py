"""Escalation waves (durable timers swept by every worker) and offer expiry."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import asyncpg
from redis.asyncio import Redis

from dispatch import escalation, queries
from geo import TravelMode, TravelModel
from rescue import db
from rescue.foreground import Foreground
from rescue.typedefs import (
    aed_index_key,
    bus_key,
    db_key,
    dispatch_key,
    foreground_key,
    redis_key,
    settings_key,
)
from tests.dispatch.support import (
    PATIENT,
    aed,
    center,
    ghost_on_duty,
    local_hour_window,
    offset,
    raise_alert,
    responders,
    volunteer,
)
from tests.helpers import PUBLISHED, wait_until

MODEL = TravelModel()


async def test_waves_widen_the_reach_until_the_maximum(
    make_client: Any, pg: asyncpg.Connection
) -> None:
    # Two workers: each wave must still happen exactly once.
    first = await make_client(escalation_window_s=1)
    await make_client(escalation_window_s=1)
    c = await center(first)
    near = await volunteer(first, pg, offset(PATIENT, north_m=50))
    # Beyond the 300 s walk but within 420 s (the second wave's reach).
    farther = await volunteer(
        first, pg, offset(PATIENT, east_m=MODEL.reach_m(380, TravelMode.WALK))
    )
    plan = await raise_alert(first, c)
    assert set(responders(plan)) == {near.id}
    incident_id = plan["incident_id"]

    offer = await wait_until(
        lambda: pg.fetchrow(
            "SELECT wave, role, state FROM offers WHERE incident_id = $1 AND volunteer_id = $2",
            incident_id,
            farther.id,
        )
    )
    assert offer["wave"] == 2 and offer["state"] == "open"
    # Nobody accepts: the waves go on to the maximum budget (300 -> 420 -> 540 -> 600), then stop.
    done = await wait_until(
        lambda: pg.fetchrow(
            "SELECT wave, budget_now_s FROM incidents WHERE id = $1 AND next_escalation_at IS NULL",
            incident_id,
        )
    )
    assert (done["wave"], done["budget_now_s"]) == (4, 600)
    escalated = await pg.fetch(
        "SELECT data FROM timeline WHERE incident_id = $1 AND type = 'escalated' ORDER BY id",
        incident_id,
    )
    datas = [json.loads(e["data"]) for e in escalated]
    waves = [(d["wave"], d["budget_s"], d["offers"]) for d in datas]
    assert waves == [(2, 420, 1), (3, 540, 0), (4, 600, 0)]
    events = await pg.fetch(
        "SELECT data FROM outbox WHERE type = 'incident.escalated' AND key = $1 ORDER BY id",
        incident_id,
    )
    assert len(events) == 3
    assert '"budget_s": 420' in events[0]["data"] and '"external_id"' in events[0]["data"]
    # The near volunteer was never offered twice.
    assert await pg.fetchval("SELECT count(*) FROM offers WHERE incident_id = $1", incident_id) == 2


async def test_no_escalation_once_the_roles_are_filled(
    make_client: Any, pg: asyncpg.Connection
) -> None:
    client = await make_client(escalation_window_s=1, needed_aed=0, needed_cpr=1)
    c = await center(client)
    vol = await volunteer(client, pg, offset(PATIENT, north_m=50))
    await volunteer(client, pg, offset(PATIENT, east_m=MODEL.reach_m(380, TravelMode.WALK)))
    plan = await raise_alert(client, c)
    (offer,) = plan["responders"]
    resp = await client.post(f"/v1/me/offers/{offer['offer_id']}/accept", headers=vol.headers)
    assert resp.status == 200
    row = await wait_until(
        lambda: pg.fetchrow(
            "SELECT wave FROM incidents WHERE id = $1 AND next_escalation_at IS NULL",
            plan["incident_id"],
        )
    )
    assert row["wave"] == 1
    assert await pg.fetchval("SELECT count(*) FROM offers") == 1


async def test_declines_bring_the_next_wave_forward(
    make_client: Any, pg: asyncpg.Connection
) -> None:
    # The window is long: only the early trigger can explain a prompt second wave.
    client = await make_client(escalation_window_s=3600)
    c = await center(client)
    vol = await volunteer(client, pg, offset(PATIENT, north_m=50))
    farther = await volunteer(
        client, pg, offset(PATIENT, east_m=MODEL.reach_m(380, TravelMode.WALK))
    )
    plan = await raise_alert(client, c)
    (offer,) = plan["responders"]
    resp = await client.post(f"/v1/me/offers/{offer['offer_id']}/decline", headers=vol.headers)
    assert resp.status == 200
    wave = await wait_until(
        lambda: pg.fetchval(
            "SELECT wave FROM offers WHERE incident_id = $1 AND volunteer_id = $2",
            plan["incident_id"],
            farther.id,
        )
    )
    assert wave == 2


async def test_overdue_offers_expire(make_client: Any, pg: asyncpg.Connection) -> None:
    client = await make_client(offer_ttl_s=1)
    c = await center(client)
    vol = await volunteer(client, pg, offset(PATIENT, north_m=50))
    plan = await raise_alert(client, c)
    (offer,) = plan["responders"]
    await wait_until(
        lambda: pg.fetchval("SELECT state = 'expired' FROM offers WHERE id = $1", offer["offer_id"])
    )
    entry = await pg.fetchrow(
        "SELECT actor, data FROM timeline WHERE incident_id = $1 AND type = 'offer_expired'",
        plan["incident_id"],
    )
    assert entry["actor"] == "system"
    assert json.loads(entry["data"])["offer_id"] == offer["offer_id"]
    assert await pg.fetchval("SELECT count(*) FROM outbox WHERE type = 'offer.expired'") == 1
    resp = await client.post(f"/v1/me/offers/{offer['offer_id']}/accept", headers=vol.headers)
    assert resp.status == 409


async def test_a_withdrawal_brings_the_next_wave_forward(
    make_client: Any, pg: asyncpg.Connection
) -> None:
    client = await make_client(escalation_window_s=3600, needed_aed=0)
    c = await center(client)
    vol = await volunteer(client, pg, offset(PATIENT, north_m=50))
    farther = await volunteer(
        client, pg, offset(PATIENT, east_m=MODEL.reach_m(380, TravelMode.WALK))
    )
    plan = await raise_alert(client, c)
    (offer,) = plan["responders"]
    url = f"/v1/me/offers/{offer['offer_id']}"
    assert (await client.post(f"{url}/accept", headers=vol.headers)).status == 200
    resp = await client.post(f"{url}/status", json={"status": "withdrawn"}, headers=vol.headers)
    assert resp.status == 200
    assert (await resp.json())["state"] == "accepted"
    role = await wait_until(
        lambda: pg.fetchval(
            "SELECT role FROM offers WHERE incident_id = $1 AND volunteer_id = $2 AND wave = 2",
            plan["incident_id"],
            farther.id,
        )
    )
    assert role == "cpr"


async def test_a_waves_events_are_published_by_the_worker_that_ran_it(
    make_client: Any, pg: asyncpg.Connection, redis: Redis
) -> None:
    """The wave's one statement claims its outbox rows, as an alert's does: the worker that ran
    it XADDs them after the commit, each once, and its relay stamps them."""
    client = await make_client(escalation_window_s=1)
    c = await center(client)
    farther = await volunteer(
        client, pg, offset(PATIENT, east_m=MODEL.reach_m(380, TravelMode.WALK))
    )
    bus = client.app[bus_key]
    plan = await raise_alert(client, c)
    assert plan["responders"] == []
    before = bus.stats.published_by_producer
    await wait_until(
        lambda: pg.fetchval(
            "SELECT count(*) FROM offers WHERE incident_id = $1 AND volunteer_id = $2 AND wave = 2",
            plan["incident_id"],
            farther.id,
        )
    )
    wave_events = "SELECT event_id FROM outbox WHERE key = $1 AND data->>'wave' = '2' ORDER BY id"
    rows = await pg.fetch(wave_events, plan["incident_id"])
    assert len(rows) == 2  # incident.escalated, one offer.created
    await wait_until(
        lambda: bus.stats.published_by_producer - before >= 2, what="published by the producer"
    )
    stamped = f"SELECT bool_and({PUBLISHED}) FROM outbox WHERE key = $1"
    await wait_until(lambda: pg.fetchval(stamped, plan["incident_id"]), what="stamped")
    on_stream = [fields["id"] for _, fields in await redis.xrange(bus.stream)]
    wave_ids = {r["event_id"] for r in rows}
    assert sorted(i for i in on_stream if i in wave_ids) == sorted(wave_ids)


async def test_a_wave_plans_again_without_a_volunteer_the_registry_does_not_know(
    make_client: Any, pg: asyncpg.Connection, redis: Redis
) -> None:
    # One offer per wave: a ghost taking the slot would leave the real volunteer unasked.
    client = await make_client(escalation_window_s=1, offers_aed=0, offers_cpr=1, needed_aed=0)
    c = await center(client)
    real = await volunteer(client, pg, offset(PATIENT, east_m=MODEL.reach_m(380, TravelMode.WALK)))
    # Redis outlived a rebuilt database: the nearest position in the second wave's reach is of
    # a volunteer PostgreSQL does not know.
    await ghost_on_duty(redis, offset(PATIENT, north_m=MODEL.reach_m(340, TravelMode.WALK)))
    plan = await raise_alert(client, c)
    assert plan["responders"] == []
    incident_id = plan["incident_id"]
    offer = await wait_until(
        lambda: pg.fetchrow(
            "SELECT volunteer_id, wave FROM offers WHERE incident_id = $1", incident_id
        )
    )
    assert (offer["volunteer_id"], offer["wave"]) == (real.id, 2)
    escalated = await pg.fetchval(
        "SELECT data FROM timeline WHERE incident_id = $1 AND type = 'escalated' ORDER BY id",
        incident_id,
    )
    assert json.loads(escalated)["offers"] == 1
    offered = await pg.fetch(
        "SELECT data->>'volunteer_id' AS v FROM outbox WHERE type = 'offer.created' AND key = $1",
        incident_id,
    )
    assert [r["v"] for r in offered] == [real.id]


async def test_a_waves_fetcher_brings_the_best_placed_aed_that_is_open(
    make_client: Any, pg: asyncpg.Connection
) -> None:
    client = await make_client(escalation_window_s=1)
    c = await center(client)
    # Beyond the alert's 300 s walk, within the second wave's 420 s.
    reach = MODEL.reach_m(330, TravelMode.WALK)
    farther = await volunteer(client, pg, offset(PATIENT, east_m=reach))
    # Right on the volunteer's way, but closed now; a step off the way, open; farther, open.
    await aed(
        client, offset(PATIENT, east_m=40), opening_hours=f"Mo-Su {local_hour_window(around=False)}"
    )
    open_now = await aed(client, offset(PATIENT, east_m=80, north_m=10))
    await aed(client, offset(PATIENT, north_m=200))
    plan = await raise_alert(client, c)
    assert plan["responders"] == []

    offer = await wait_until(
        lambda: pg.fetchrow(
            "SELECT wave, role, aed_id FROM offers WHERE incident_id = $1 AND volunteer_id = $2",
            plan["incident_id"],
            farther.id,
        )
    )
    assert dict(offer) == {"wave": 2, "role": "aed", "aed_id": open_now}


async def test_a_wave_waits_for_the_alerts_in_flight_on_its_worker(
    make_client: Any, pg: asyncpg.Connection
) -> None:
    # The wave runs here, not in a background loop: its worker has an alert in flight.
    client = await make_client(escalation_window_s=1, background=False)
    c = await center(client)
    farther = await volunteer(
        client, pg, offset(PATIENT, east_m=MODEL.reach_m(380, TravelMode.WALK))
    )
    plan = await raise_alert(client, c)
    assert plan["responders"] == []
    app = client.app
    claimed = await wait_until(lambda: pg.fetch(queries.CLAIM_DUE_INCIDENTS, 10, 15))
    foreground = Foreground(max_wait_s=60)
    wave = escalation.escalate(
        pool=app[db_key],
        redis=app[redis_key],
        aeds=app[aed_index_key],
        config=app[dispatch_key],
        incident=claimed[0],
        foreground=foreground,
    )
    with foreground.busy():
        task = asyncio.create_task(wave)
        done, _ = await asyncio.wait({task}, timeout=0.2)
        assert not done
        count = "SELECT count(*) FROM offers WHERE incident_id = $1"
        assert await pg.fetchval(count, plan["incident_id"]) == 0
    # The alert done, the wave goes on at once.
    assert await asyncio.wait_for(task, timeout=30) == 2
    offered = await pg.fetchval(
        "SELECT volunteer_id FROM offers WHERE incident_id = $1 AND wave = 2", plan["incident_id"]
    )
    assert offered == farther.id


async def test_an_alert_is_in_flight_on_its_worker_while_it_runs(
    make_client: Any, pg: asyncpg.Connection, monkeypatch: Any
) -> None:
    client = await make_client(background=False)
    c = await center(client)
    foreground = client.app[foreground_key]
    seen: list[int] = []
    busy = foreground.busy

    @contextlib.contextmanager
    def counting() -> Iterator[None]:
        with busy():
            seen.append(foreground.in_flight)
            yield

    monkeypatch.setattr(foreground, "busy", counting)
    await raise_alert(client, c)
    assert seen == [1]
    assert foreground.in_flight == 0
    # The worker's other background work waits for the same alerts.
    assert client.app[bus_key].foreground is foreground


async def test_an_idle_round_is_one_read(make_client: Any, pg: asyncpg.Connection) -> None:
    # Two rounds a second per worker, nearly all with nothing due: each is one round trip.
    client = await make_client(background=False)
    c = await center(client)
    await volunteer(client, pg, offset(PATIENT, north_m=50))
    plan = await raise_alert(client, c)
    (offer,) = plan["responders"]
    app = client.app
    ran: list[str] = []
    pool = await db.create_pool(app[settings_key].database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:  # the pool's one connection, logged from now on
            conn.add_query_logger(lambda record: ran.append(record.query))

        async def tick() -> int:
            ran.clear()
            return await escalation.tick(
                pool=pool, redis=app[redis_key], aeds=app[aed_index_key], config=app[dispatch_key]
            )

        assert await tick() == 0
        assert ran == [queries.DUE_WORK]
        # An overdue offer: expired, and no claim is tried, since no incident is due.
        await pg.execute("UPDATE offers SET expires_at = now() - interval '1 s'")
        assert await tick() == 0
        assert queries.EXPIRE_OFFERS in ran and queries.CLAIM_DUE_INCIDENTS not in ran
        state = "SELECT state FROM offers WHERE id = $1"
        assert await pg.fetchval(state, offer["offer_id"]) == "expired"
        # A due incident: claimed (its wave finds nobody new).
        await pg.execute("UPDATE incidents SET next_escalation_at = now() - interval '1 s'")
        assert await tick() == 1
        assert ran[0] == queries.DUE_WORK and queries.EXPIRE_OFFERS not in ran
        assert queries.CLAIM_DUE_INCIDENTS in ran
    finally:
        await pool.close()
