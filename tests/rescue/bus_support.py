"""Fixtures and helpers shared by the event-bus tests (test_bus.py, test_bus_recovery.py).

A test module imports the fixtures by their function names (bus_pool_fixture,
make_bus_fixture) and requests them by their fixture names (bus_pool, make_bus).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from rescue import db
from rescue.bus import Bus, Event, emit
from rescue.settings import Settings
from tests.helpers import wait_until  # noqa: F401 - the bus tests import it from here

MakeBus = Callable[..., Bus]


@pytest.fixture(name="bus_pool")
async def bus_pool_fixture(
    pg: asyncpg.Connection, settings: Settings
) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the (emptied) test database for the buses."""
    pool = await db.create_pool(settings.database_url, min_size=1, max_size=10)
    yield pool
    await pool.close()


@pytest.fixture(name="make_bus")
async def make_bus_fixture(
    bus_pool: asyncpg.Pool, redis: Redis, settings: Settings
) -> AsyncIterator[MakeBus]:
    """Buses (workers) on the test database and Redis, with short timings; stopped after."""
    buses: list[Bus] = []

    def make(**options: Any) -> Bus:
        options = {
            "block_ms": 100,
            "claim_idle_ms": 200,
            "poll_interval_s": 0.05,
            "backoff_base_s": 0.01,
            "backoff_max_s": 0.2,
            "redis": redis,
            **options,
        }
        bus = Bus(pool=bus_pool, dsn=settings.database_url, **options)
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        await bus.stop()


async def first_pass_done(redis: Redis, bus: Bus) -> bool:
    """Whether the bus's relay finished its first pass (a replay into an empty Redis)."""
    epoch = await redis.get(bus.epoch_key)
    return epoch is not None and epoch.startswith("epo_")


async def emit_committed(conn: asyncpg.Connection, **kwargs: Any) -> Event:
    """Emit an event in its own committed transaction."""
    async with conn.transaction():
        return await emit(conn, **kwargs)
