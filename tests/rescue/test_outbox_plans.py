"""The relay's claim reads the outbox by the ids it claimed, whatever PostgreSQL's statistics
say (rescue.bus.queries.CLAIM_UNPUBLISHED). Statistics taken during a backlog (Redis down, the
events piling up unpublished) promise a large claim long after it is gone, and a claim joined
to the outbox could then be planned as a pass over every event of the retention window.

The claim runs under EXPLAIN ANALYZE, planned generic and custom, on pending rows analysed
during a backlog, then published but a few, behind an outbox that kept growing; what counts
is how many events it read."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest

from rescue.bus.queries import CLAIM_UNPUBLISHED
from tests.helpers import PLAN_MODES, rows_read

BACKLOG = 3000  # pending when analysed
LEFT = 5  # still pending at the claim
LATER = 4000  # events published since

_EVENTS = """
WITH e AS (
    INSERT INTO outbox (event_id, type, data, occurred_at)
    SELECT 'evt_' || $1 || g, 'offer.created', '{"n": 1}', now()
    FROM generate_series(1, $2) g
    RETURNING id
)
INSERT INTO outbox_pending (id) SELECT id FROM e
"""


@pytest.fixture(params=PLAN_MODES)
async def stale(request: pytest.FixtureRequest, pg: asyncpg.Connection) -> asyncpg.Connection:
    await pg.execute(_EVENTS, "backlog", BACKLOG)
    await pg.execute("ANALYZE outbox, outbox_pending")
    await pg.execute(
        "DELETE FROM outbox_pending WHERE id NOT IN "
        "(SELECT id FROM outbox_pending ORDER BY id DESC LIMIT $1)",
        LEFT,
    )
    await pg.execute(_EVENTS, "later", LATER)
    await pg.execute(
        "DELETE FROM outbox_pending WHERE id IN "
        "(SELECT id FROM outbox WHERE event_id LIKE 'evt_later%')"
    )
    await pg.execute(f"SET plan_cache_mode = {request.param}")
    return pg


async def test_a_claim_reads_only_the_events_it_claims(stale: asyncpg.Connection) -> None:
    await stale.execute(f"PREPARE claim(bigint, interval, bigint[]) AS {CLAIM_UNPUBLISHED}")
    read = await rows_read(stale, "outbox", "claim", "(100, interval '15 seconds', '{}')")
    assert read == LEFT
    # It did its work: the events left are claimed, and nothing else is pending.
    claimed = await stale.fetchval(
        "SELECT count(*) FROM outbox_pending WHERE claimed_until > now() + $1::interval",
        timedelta(seconds=10),
    )
    assert claimed == LEFT
    assert await stale.fetchval("SELECT count(*) FROM outbox_pending") == LEFT
