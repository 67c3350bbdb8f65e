"""The service's PostgreSQL pool keeps its connections and prepared statements through a quiet
spell: a city's alerts come minutes or hours apart, and each would otherwise pay for a new
connection or a statement prepared again (rescue.db.create_pool)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from rescue import db

# Longer than asyncpg's default lifetimes (300 s for an idle connection and for a statement).
QUIET_S = 3600.0
PROBE = "SELECT pg_backend_pid() AS pid, $1::text AS probe"


async def _prepared(conn: asyncpg.Connection) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1", PROBE
        )
    )


async def test_an_hour_of_quiet_keeps_the_connection_and_its_prepared_statements(
    schema: str, pg: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = await db.create_pool(schema, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            before = await conn.fetchrow(PROBE, "before")
            assert await _prepared(conn) == 1
        # An hour passes on the loop's clock: the timers asyncpg set then come due.
        loop = asyncio.get_running_loop()
        real_time = loop.time
        monkeypatch.setattr(loop, "time", lambda: real_time() + QUIET_S)
        await pg.fetchval("SELECT 1")  # a round trip elsewhere: the loop runs what is due
        async with pool.acquire() as conn:
            assert await _prepared(conn) == 1
            after = await conn.fetchrow(PROBE, "after")
        assert after["pid"] == before["pid"]
    finally:
        await pool.close()
