"""The delivery statements read pending deliveries by key whatever PostgreSQL's statistics say
(dispatch.callback_sender). Statistics taken while nothing was pending lag a backlog (a 120
center down) until the next ANALYZE: a statement planned on them could read every pending
delivery for each run it records or claims (as they did through the partial index on
`state = 'pending'` before migration 014), or every delivery ever made to join the few it
claimed.

Each statement runs here under EXPLAIN ANALYZE, planned generic (as a statement cached by the
sender's connections ends up) and custom, on tables analysed before a backlog came; what
counts is how many rows it read, a count the machine's speed does not move."""

from __future__ import annotations

import asyncpg
import pytest

from dispatch.callback_sender import (
    CLAIM_DUE,
    DELIVERED_CLAIM_NEXT,
    LEASE_S,
    MARK_FAILED,
    RELEASE,
    RUN_MAX,
)
from tests.helpers import PLAN_MODES, rows_read

PENDING = "webhook_pending"
DELIVERIES = "webhook_deliveries"
CENTER = "ctr_plans"
URL = "http://127.0.0.1:9/callbacks"
HISTORY = 3000  # delivered, six per incident, analysed
BACKLOG = 2000  # pending after the ANALYZE, two per incident

# Deliveries (their ids, event ids and incidents from `tag` and g), queued at g milliseconds;
# pending ($8) with $6 attempts, due in $7 seconds, or else delivered long ago.
_DELIVERIES = """
WITH d AS (
    INSERT INTO webhook_deliveries (id, event_id, event_type, event_at, incident_id, center_id,
                                    url, payload)
    SELECT 'whd_' || $1 || g, 'evt_' || $1 || g, 'offer.created',
           '2026-12-06 08:00+00'::timestamptz + g * interval '1 ms',
           'inc_' || $1 || ((g - 1) / $2), $3, $4, '{}'
    FROM generate_series(1, $5) g
    RETURNING id, incident_id, event_at, stage, seq
), pending AS (
    INSERT INTO webhook_pending (id, incident_id, event_at, stage, seq, attempts,
                                 next_attempt_at)
    SELECT id, incident_id, event_at, stage, seq, $6, now() + make_interval(secs => $7)
    FROM d WHERE $8
)
INSERT INTO webhook_attempts (delivery_id, attempt, status_code, duration_ms, finished_at)
SELECT id, 1, 204, 3, now() FROM d WHERE NOT $8
"""


async def deliveries(
    conn: asyncpg.Connection,
    tag: str,
    count: int,
    *,
    per_incident: int,
    pending: bool = True,
    attempts: int = 0,
    due_in_s: float = 0.0,
) -> None:
    await conn.execute(
        _DELIVERIES, tag, per_incident, CENTER, URL, count, attempts, due_in_s, pending
    )


@pytest.fixture(params=PLAN_MODES)
async def stale(request: pytest.FixtureRequest, pg: asyncpg.Connection) -> asyncpg.Connection:
    """The test database with a delivered history, analysed while nothing was pending."""
    await pg.execute(
        """INSERT INTO dispatch_centers (id, name, api_key_hash, webhook_secret, callback_url)
           VALUES ($1, 'plans', '\\x00', 'secret', $2)""",
        CENTER,
        URL,
    )
    await deliveries(pg, "hist", HISTORY, per_incident=6, pending=False)
    await pg.execute("ANALYZE webhook_deliveries, webhook_pending, webhook_attempts")
    await pg.execute(f"SET plan_cache_mode = {request.param}")
    return pg


async def in_flight_run(conn: asyncpg.Connection) -> list[str]:
    """An incident's run of two claimed deliveries (attempts logged), a third one due behind it."""
    await deliveries(conn, "run", 2, per_incident=10, attempts=1, due_in_s=LEASE_S)
    await deliveries(conn, "next", 1, per_incident=10)
    await conn.execute(
        """UPDATE webhook_deliveries SET incident_id = 'inc_run0', event_at = event_at + '1 s'
           WHERE id = 'whd_next1';
           UPDATE webhook_pending SET incident_id = 'inc_run0', event_at = event_at + '1 s'
           WHERE id = 'whd_next1';
           INSERT INTO webhook_attempts (delivery_id, attempt)
           VALUES ('whd_run1', 1), ('whd_run2', 1)"""
    )
    return ["whd_run1", "whd_run2"]


async def state(conn: asyncpg.Connection, delivery_id: str) -> tuple[str, int]:
    row = await conn.fetchrow(
        "SELECT state, attempts FROM webhook_delivery_states WHERE id = $1", delivery_id
    )
    return row["state"], row["attempts"]


async def test_a_run_recorded_reads_its_incident_not_the_backlog(stale: asyncpg.Connection) -> None:
    # The backlog is due (its center is back), as the delivery loop would be claiming it.
    await deliveries(stale, "backlog", BACKLOG, per_incident=2)
    run = await in_flight_run(stale)
    await stale.execute(
        f"PREPARE delivered(text[], int[], int[], int[], float8, bool) AS {DELIVERED_CLAIM_NEXT}"
    )
    args = f"(ARRAY{run}, ARRAY[1, 1], ARRAY[204, 204], ARRAY[3, 3], {LEASE_S}, true)"
    assert await rows_read(stale, PENDING, "delivered", args) <= 20
    assert await rows_read(stale, DELIVERIES, "delivered", args) <= 1  # the next one's
    # It did its work: the run delivered, the incident's next event claimed.
    assert [await state(stale, d) for d in run] == [("delivered", 1)] * 2
    assert await state(stale, "whd_next1") == ("pending", 1)


async def test_an_attempt_failed_or_released_reads_its_deliveries_alone(
    stale: asyncpg.Connection,
) -> None:
    await deliveries(stale, "backlog", BACKLOG, per_incident=2, due_in_s=3600)
    first, second = await in_flight_run(stale)
    await stale.execute(f"PREPARE failed(text, int, int, text, int, int, float8) AS {MARK_FAILED}")
    await stale.execute(f"PREPARE release(text[], int[]) AS {RELEASE}")
    assert (
        await rows_read(stale, PENDING, "failed", f"('{first}', 1, 503, 'HTTP 503', 4, 8, 1.0)")
        <= 5
    )
    assert await rows_read(stale, PENDING, "release", f"(ARRAY['{second}'], ARRAY[1])") <= 5
    assert await state(stale, first) == ("pending", 1)
    assert await state(stale, second) == ("pending", 0)


@pytest.mark.parametrize("heads", [1, 10])
async def test_a_claim_reads_the_backlog_once_not_once_per_head(
    stale: asyncpg.Connection, heads: int
) -> None:
    # The center is back: the whole backlog is due. Finding the heads is one pass over the
    # pending deliveries, by design; each head's run is then read through its incident.
    await deliveries(stale, "backlog", BACKLOG, per_incident=2)
    await stale.execute(f"PREPARE claim(int, float8, int) AS {CLAIM_DUE}")
    args = f"({heads}, {LEASE_S}, {RUN_MAX - 1})"
    read = await rows_read(stale, PENDING, "claim", args)
    assert BACKLOG <= read <= BACKLOG + 100
    claimed = await stale.fetchval("SELECT count(*) FROM webhook_pending WHERE attempts = 1")
    assert claimed == 2 * heads  # each head with the event behind it


async def test_a_claim_reads_the_deliveries_it_claimed_not_the_history(
    stale: asyncpg.Connection,
) -> None:
    # What a claim returns comes from the claimed deliveries' rows, read by key: joined, on
    # statistics that know only the history, a hash join could read every delivery ever made.
    await deliveries(stale, "backlog", BACKLOG, per_incident=2)
    await stale.execute(f"PREPARE claim(int, float8, int) AS {CLAIM_DUE}")
    args = f"(10, {LEASE_S}, {RUN_MAX - 1})"
    assert await rows_read(stale, DELIVERIES, "claim", args) == 20
