"""Offers reach the volunteer's phone socket through the event bus (group "phones")."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from aiohttp import ClientWebSocketResponse, web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from dispatch import fanout
from dispatch.models import DispatchConfig
from rescue.app import create_app
from rescue.bus import Event, bus_ctx, install_bus
from rescue.settings import Settings
from rescue.typedefs import aed_index_key, bus_key, dispatch_key
from tests.dispatch.support import PATIENT, aed, center, offset, raise_alert, volunteer
from tests.helpers import PUBLISHED, wait_until

Wired = Callable[[], Awaitable[TestClient]]


@pytest.fixture
async def wired(pg: asyncpg.Connection, redis: Redis, settings: Settings) -> AsyncIterator[Wired]:
    """Workers with the bus running. rescue/app.py installs the bus before dispatch's setup
    subscribes; until it does, this wires the same thing after create_app."""
    clients: list[TestClient] = []

    async def start() -> TestClient:
        app: web.Application = create_app(settings=settings.replace(bus_claim_idle_ms=1000))
        if bus_key not in app:
            install_bus(app)
            app.cleanup_ctx.append(bus_ctx)
        if fanout.GROUP not in app[bus_key].groups:
            config: DispatchConfig = app[dispatch_key]
            app[bus_key].subscribe_batch(
                fanout.GROUP, fanout.make_handler(config), types=fanout.TYPES
            )
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in reversed(clients):
        await client.close()


async def next_of(ws: ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    """The next message of a type (skipping others), waiting at most 10 s."""
    while True:
        message = await ws.receive_json(timeout=10)
        if message["type"] == kind:
            return dict(message)


async def test_offers_and_their_updates_reach_the_phone(
    wired: Wired, pg: asyncpg.Connection
) -> None:
    api, phones = await wired(), await wired()
    c = await center(api)
    vol = await volunteer(api, pg, offset(PATIENT, north_m=60))
    async with phones.ws_connect("/v1/me/stream", headers=vol.headers) as ws:
        assert (await ws.receive_json(timeout=10))["type"] == "hello"
        plan = await raise_alert(api, c)
        (responder,) = plan["responders"]

        pushed = await next_of(ws, "offer")
        offer = pushed["offer"]
        assert offer["id"] == responder["offer_id"]
        assert offer["incident_id"] == plan["incident_id"]
        assert offer["state"] == "open"
        assert offer["incident"] is None and offer["guidance"] is None

        resp = await api.post(f"/v1/me/offers/{offer['id']}/accept", headers=vol.headers)
        assert resp.status == 200
        update = await next_of(ws, "offer_update")
        assert update["offer"]["state"] == "accepted"

        resp = await api.post(
            f"/v1/incidents/{plan['incident_id']}/cancel",
            json={"reason": "误报"},
            headers=c.headers,
        )
        assert resp.status == 200
        closed = await next_of(ws, "incident_closed")
        assert closed == {
            "type": "incident_closed",
            "incident_id": plan["incident_id"],
            "status": "cancelled",
            "reason": "误报",
        }
    # Each handled event is recorded for the group (a redelivery would push nothing).
    await wait_until(
        lambda: pg.fetchval("SELECT count(*) >= 3 FROM bus_processed WHERE group_name = 'phones'")
    )


async def test_a_new_offer_pushed_from_its_event_is_the_stored_offer(
    wired: Wired, pg: asyncpg.Connection
) -> None:
    """The offer message is rendered from the offer.created event and the worker's AED index
    (no read back): it equals the offer as the volunteer's API reads it from PostgreSQL."""
    api = await wired()
    c = await center(api)
    await aed(api, offset(PATIENT, north_m=80))
    vol = await volunteer(api, pg, offset(PATIENT, north_m=120))
    # The one worker's index has the AED (the inventory's sync reached it).
    await wait_until(lambda: len(api.app[aed_index_key]) == 1, what="AED indexed")
    async with api.ws_connect("/v1/me/stream", headers=vol.headers) as ws:
        assert (await ws.receive_json(timeout=10))["type"] == "hello"
        plan = await raise_alert(api, c)
        (responder,) = plan["responders"]
        assert responder["role"] == "aed"
        pushed = (await next_of(ws, "offer"))["offer"]
    resp = await api.get("/v1/me/offers", headers=vol.headers)
    assert resp.status == 200
    (stored,) = (await resp.json())["items"]
    assert pushed == stored
    assert pushed["aed"]["id"] == responder["aed_id"]
    # It was rendered from the event: the event carries what the phone shows.
    data = json.loads(
        await pg.fetchval("SELECT data::text FROM outbox WHERE type = 'offer.created'")
    )
    assert data["distance_m"] == stored["distance_m"]
    assert datetime.fromisoformat(data["expires_at"]) == datetime.fromisoformat(
        stored["expires_at"]
    )


async def test_an_event_without_what_the_phone_shows_is_read_back(
    wired: Wired, pg: asyncpg.Connection
) -> None:
    """An offer.created of an older version (no distance, no expiry) still reaches the phone,
    read from PostgreSQL."""
    event = Event(
        id="evt_old",
        type="offer.created",
        key="inc_1",
        at=datetime.now(UTC),
        data={"offer_id": "off_1", "incident_id": "inc_1", "volunteer_id": "vol_1",
              "role": "cpr", "wave": 1, "eta_s": 60, "aed_id": None, "exercise": False},
    )  # fmt: skip
    assert fanout.created_offer(event, None) is None
    fresh = Event(
        id="evt_new",
        type="offer.created",
        key="inc_1",
        at=event.at,
        data={**event.data, "distance_m": 70, "expires_at": event.at.isoformat()},
    )
    offer = fanout.created_offer(fresh, None)
    assert offer is not None and offer["state"] == "open" and offer["aed"] is None
    # An AED offer needs the AED from the index: without one it is read back.
    with_aed = Event(
        id="evt_aed", type="offer.created", key="inc_1", at=event.at,
        data={**fresh.data, "role": "aed", "aed_id": "aed_1"},
    )  # fmt: skip
    assert fanout.created_offer(with_aed, None) is None


async def test_an_alerts_events_are_published_by_the_worker_that_stored_it(
    wired: Wired, pg: asyncpg.Connection, redis: Redis
) -> None:
    """The alert's statement claims its outbox rows and its worker XADDs them after the
    commit: no relay is woken to claim them, each is on the stream once, all get stamped."""
    api = await wired()
    c = await center(api)
    await volunteer(api, pg, offset(PATIENT, north_m=60))
    bus = api.app[bus_key]
    before = bus.stats.published_by_producer
    plan = await raise_alert(api, c)
    rows = await pg.fetch(
        "SELECT event_id FROM outbox WHERE key = $1 ORDER BY id", plan["incident_id"]
    )
    assert len(rows) == 2  # incident.created, one offer.created
    await wait_until(
        lambda: bus.stats.published_by_producer - before == 2, what="published by the producer"
    )
    stamped = f"SELECT bool_and({PUBLISHED}) FROM outbox WHERE key = $1"
    await wait_until(lambda: pg.fetchval(stamped, plan["incident_id"]), what="stamped")
    on_stream = [fields["id"] for _, fields in await redis.xrange(bus.stream)]
    assert sorted(i for i in on_stream if i in {r["event_id"] for r in rows}) == sorted(
        r["event_id"] for r in rows
    )
