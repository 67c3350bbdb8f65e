"""The bus's clean-up reads the old rows it deletes, not its tables whole
(rescue.bus.queries.DELETE_OLD_OUTBOX, DELETE_OLD_PROCESSED).

Each runs under EXPLAIN ANALYZE, planned generic and custom, on a table of a few old rows
behind many recent ones, vacuumed (its statistics taken, its BRIN ranges summarised); what
counts is how many rows of the table it read. Joined back to the table by `IN (subquery)`
each read every row: a sequential scan under a hash join."""

from __future__ import annotations

import asyncpg
import pytest

from rescue.bus.queries import DELETE_OLD_OUTBOX, DELETE_OLD_PROCESSED
from tests.helpers import PLAN_MODES, rows_read

OLD = 300
RECENT = 20_000
# Rows wide enough that a BRIN block range (128 pages) holds a few hundred, not thousands.
PAD = "x" * 400


async def clean_up_reads(
    pg: asyncpg.Connection, table: str, statement: str, params: str, args: str
) -> int:
    """Rows of `table` the clean-up `statement` reads, run with `args`, after a vacuum (which
    takes the statistics and summarises the BRIN ranges, as autovacuum would have)."""
    await pg.execute(f"VACUUM (ANALYZE) {table}")
    await pg.execute(f"PREPARE clean({params}) AS {statement}")
    return await rows_read(pg, table, "clean", args)


@pytest.fixture(params=PLAN_MODES)
async def mode(request: pytest.FixtureRequest, pg: asyncpg.Connection) -> asyncpg.Connection:
    await pg.execute(f"SET plan_cache_mode = {request.param}")
    return pg


async def test_the_outbox_clean_up_reads_the_old_events(mode: asyncpg.Connection) -> None:
    pg = mode
    events = """
        INSERT INTO outbox (event_id, type, data, occurred_at, created_at)
        SELECT $1 || g, 'offer.created', jsonb_build_object('pad', $2::text), now(),
               now() - $3::text::interval
        FROM generate_series(1, $4) g"""
    await pg.execute(events, "evt_old", PAD, "3 days", OLD)
    await pg.execute(events, "evt_new", PAD, "1 minute", RECENT)
    # One recent event is still unpublished, as the relay would find it.
    await pg.execute(
        "INSERT INTO outbox_pending (id) SELECT id FROM outbox WHERE event_id = 'evt_new1'"
    )
    await pg.execute("ANALYZE outbox_pending")
    args = "(interval '24 hours', interval '7 days', 5000)"
    read = await clean_up_reads(pg, "outbox", DELETE_OLD_OUTBOX, "interval, interval, bigint", args)
    assert read < RECENT / 4
    assert await pg.fetchval("SELECT count(*) FROM outbox") == RECENT
    assert await pg.fetchval("SELECT count(*) FROM outbox WHERE event_id LIKE 'evt_old%'") == 0


async def test_the_records_clean_up_reads_the_old_records(mode: asyncpg.Connection) -> None:
    pg = mode
    records = """
        INSERT INTO bus_processed (group_name, event_id, processed_at)
        SELECT 'phones', $1 || g || $2::text, now() - $3::text::interval
        FROM generate_series(1, $4) g"""
    await pg.execute(records, "evt_old", PAD, "8 days", OLD)
    await pg.execute(records, "evt_new", PAD, "1 minute", RECENT)
    args = "(interval '7 days', 5000)"
    read = await clean_up_reads(pg, "bus_processed", DELETE_OLD_PROCESSED, "interval, bigint", args)
    assert read < RECENT / 4
    assert await pg.fetchval("SELECT count(*) FROM bus_processed") == RECENT
    left_old = "SELECT count(*) FROM bus_processed WHERE event_id LIKE 'evt_old%'"
    assert await pg.fetchval(left_old) == 0
