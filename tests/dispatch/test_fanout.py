"""Offers reach the volunteer's phone socket through the event bus (group "phones")."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from aiohttp import ClientWebSocketResponse, web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from dispatch import fanout
from dispatch.models import DispatchConfig
from rescue.app import create_app
from rescue.bus import bus_ctx, install_bus
from rescue.settings import Settings
from rescue.typedefs import bus_key, dispatch_key
from tests.dispatch.support import PATIENT, center, offset, raise_alert, volunteer
from tests.helpers import wait_until

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
