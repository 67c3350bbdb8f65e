"""What the migrations leave in PostgreSQL beyond the tables the other tests use."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from rescue import db
from tests.helpers import insert_volunteer

QUEUE_TABLES = ("incidents", "offers", "outbox_pending", "webhook_pending")


@contextlib.asynccontextmanager
async def before_migration(pg: asyncpg.Connection, number: int) -> AsyncIterator[str]:
    """The migrations before `number` applied in a schema of their own (`m<number>`, the
    connection's search path), in a transaction rolled back at the end; yields that
    migration's SQL, for the test to apply on what it wrote there."""
    files = db.migration_files()
    transaction = pg.transaction()
    await transaction.start()
    try:
        await pg.execute(f"CREATE SCHEMA m{number:03d}; SET LOCAL search_path TO m{number:03d}")
        for applied, _, sql in files:
            if applied < number:
                await pg.execute(sql)
        [migration] = [sql for applied, _, sql in files if applied == number]
        yield migration
    finally:
        await transaction.rollback()


async def test_the_work_queues_are_vacuumed_after_a_fixed_share_of_changes(
    pg: asyncpg.Connection,
) -> None:
    rows = await pg.fetch(
        "SELECT relname, reloptions FROM pg_class "
        "WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' AND reloptions IS NOT NULL"
    )
    options = {r["relname"]: dict(o.split("=", 1) for o in r["reloptions"]) for r in rows}
    # Exactly the queues: a table that is written once and kept keeps PostgreSQL's defaults.
    assert sorted(options) == sorted(QUEUE_TABLES)
    for table in QUEUE_TABLES:
        assert options[table] == {
            "autovacuum_vacuum_scale_factor": "0.01",
            "autovacuum_vacuum_threshold": "1000",
            "autovacuum_analyze_scale_factor": "0.01",
            "autovacuum_analyze_threshold": "1000",
        }, table


async def test_a_server_without_autovacuum_is_reported(
    pg: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    # autovacuum is a server-wide setting: whichever way this server has it, the report follows.
    off = not await pg.fetchval("SELECT current_setting('autovacuum')::boolean")
    with caplog.at_level(logging.WARNING, logger="rescue.db"):
        assert await db.warn_without_autovacuum(pg) is off
    warned = [r for r in caplog.records if "autovacuum is off" in r.getMessage()]
    assert len(warned) == (1 if off else 0)


async def test_a_volunteer_is_never_deleted(pg: asyncpg.Connection) -> None:
    # Offers name their volunteer without a foreign key (migration 010): the rule keeps them.
    kept, _ = await insert_volunteer(pg)
    with pytest.raises(asyncpg.RestrictViolationError, match="never deleted"):
        await pg.execute("DELETE FROM volunteers WHERE id = $1", kept)
    with pytest.raises(asyncpg.RestrictViolationError):
        await pg.execute("DELETE FROM volunteers")
    assert await pg.fetchval("SELECT count(*) FROM volunteers WHERE id = $1", kept) == 1


async def test_a_volunteer_is_never_renumbered(pg: asyncpg.Connection) -> None:
    kept, _ = await insert_volunteer(pg)
    with pytest.raises(asyncpg.RestrictViolationError, match="renumbered"):
        await pg.execute("UPDATE volunteers SET id = 'vol_other' WHERE id = $1", kept)
    # Anything else about them changes as before, the id written back unchanged included.
    await pg.execute("UPDATE volunteers SET id = id, status = 'suspended' WHERE id = $1", kept)
    assert await pg.fetchval("SELECT status FROM volunteers WHERE id = $1", kept) == "suspended"


async def test_events_unpublished_before_012_stay_unpublished_with_their_lease(
    pg: asyncpg.Connection,
) -> None:
    """Migration 012 moves the unpublished mark and the relay's lease off the event rows: an
    event unpublished before it (claimed or free) is pending after it, with its lease; a
    published one is not."""
    async with before_migration(pg, 12) as migration:
        await pg.execute(
            "INSERT INTO outbox (event_id, type, data, occurred_at, published_at, claimed_until)"
            " VALUES ('published', 't', '{}', now(), now(), now() - interval '1 minute'),"
            " ('free', 't', '{}', now(), NULL, NULL),"
            " ('claimed', 't', '{}', now(), NULL, '2030-01-01T00:00:00Z')"
        )
        await pg.execute(migration)
        pending = await pg.fetch(
            "SELECT o.event_id, p.claimed_until AS lease"
            " FROM outbox_pending p JOIN outbox o USING (id) ORDER BY o.event_id"
        )
        assert [tuple(r) for r in pending] == [
            ("claimed", datetime(2030, 1, 1, tzinfo=UTC)),
            ("free", None),
        ]
        assert await pg.fetchval("SELECT count(*) FROM outbox") == 3
        columns = await pg.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = 'm012' AND table_name = 'outbox'"
        )
        assert {"published_at", "claimed_until"}.isdisjoint(r["column_name"] for r in columns)


async def test_deliveries_keep_their_progress_across_014(pg: asyncpg.Connection) -> None:
    """Migration 014 moves a pending delivery's queue state to a row of its own and derives
    the rest from the attempts: every delivery reads the same through webhook_delivery_states
    as it did from its own row before."""
    due = datetime(2030, 1, 1, tzinfo=UTC)
    at = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    async with before_migration(pg, 14) as migration:
        await pg.execute(
            "INSERT INTO dispatch_centers (id, name, api_key_hash, webhook_secret)"
            " VALUES ('ctr_m014', 'm014', '\\x00', 'secret')"
        )
        # id, state, attempts, next attempt, last status, last error, delivered at; attempts
        # as (attempt, status, error, duration).
        before = {
            "whd_new": ("pending", 0, due, None, None, None, []),
            "whd_flight": ("pending", 1, due, None, None, None, [(1, None, None, None)]),
            "whd_retry": (
                "pending", 2, due, 503, "HTTP 503", None,
                [(1, None, "ConnectError: refused", 5), (2, 503, "HTTP 503", 7)],
            ),
            "whd_done": (
                "delivered", 2, at, 204, None, at, [(1, 500, "HTTP 500", 4), (2, 204, None, 3)],
            ),
            "whd_failed": ("failed", 1, at, 410, "HTTP 410", None, [(1, 410, "HTTP 410", 6)]),
        }  # fmt: skip
        for n, (delivery_id, row) in enumerate(before.items()):
            state, attempts, next_at, status, error, delivered_at, tried = row
            await pg.execute(
                "INSERT INTO webhook_deliveries (id, event_id, event_type, event_at, incident_id,"
                " center_id, url, payload, state, attempts, next_attempt_at, last_status_code,"
                " last_error, delivered_at)"
                " VALUES ($1, $1, 'offer.created', $2, 'inc_m014', 'ctr_m014', 'http://x/cb',"
                " '{}', $3, $4, $5, $6, $7, $8)",
                delivery_id, at.replace(second=n), state, attempts, next_at, status, error,
                delivered_at,
            )  # fmt: skip
            for attempt, code, message, duration in tried:
                await pg.execute(
                    "INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, error,"
                    " duration_ms) VALUES ($1, $2, $3, $4, $5, $6)",
                    delivery_id, attempt, at, code, message, duration,
                )  # fmt: skip
        await pg.execute(migration)
        rows = await pg.fetch(
            "SELECT id, state, attempts, next_attempt_at, last_status_code, last_error,"
            " delivered_at FROM webhook_delivery_states ORDER BY id"
        )
        after = {r["id"]: tuple(r)[1:] for r in rows}
        expected = {
            delivery_id: (state, attempts, next_at if state == "pending" else None, status, error,
                          delivered_at)
            for delivery_id, (state, attempts, next_at, status, error, delivered_at, _)
            in before.items()
        }  # fmt: skip
        assert after == expected
        pending = await pg.fetch("SELECT id, attempts FROM webhook_pending ORDER BY id")
        assert [tuple(r) for r in pending] == [("whd_flight", 1), ("whd_new", 0), ("whd_retry", 2)]
        columns = await pg.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = 'm014' AND table_name = 'webhook_deliveries'"
        )
        assert {"state", "attempts", "next_attempt_at", "delivered_at"}.isdisjoint(
            r["column_name"] for r in columns
        )
