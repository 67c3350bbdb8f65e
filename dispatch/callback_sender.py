"""Delivery of the queued callbacks (dispatch.callbacks): each worker claims due deliveries,
POSTs them signed, records every attempt and retries with backoff; an incident's events go out
in order.

An incident's events come in runs: an alert's statement queues its creation and its offers
together and claims them as one run for its own worker (dispatch.callbacks.NewDeliveries), as
the callbacks group's statement does for a new incident whose events it queues. A run is
POSTed event after event; one statement then records the whole run as delivered and claims the
incident's next event, if one is due, as the next run. So the alert's callbacks cost one
statement of their own, where a claim per event by the delivery loop would take its own round
trips and wake-ups. The delivery loop claims runs too: each due head with the
events queued behind it (an escalation wave's, a backlog's). A run stops at its first failure:
that event is retried with backoff, and the run's unsent events are released unattempted.

Order is the order of what is queued when a run is claimed: an event queued late (its batch
read after a later event's) that sorts before events already claimed goes out after them, as
it would after events already delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Mapping, Sequence
from itertools import groupby
from operator import itemgetter
from typing import Any

import aiohttp
import asyncpg

from dispatch.signing import signed_headers
from rescue.foreground import Foreground
from rescue.settings import Settings

logger = logging.getLogger(__name__)

# NOTIFY channel of a newly queued delivery (sent by the statement that queues it).
CHANNEL = "rescue_callbacks"
REQUEST_TIMEOUT_S = 5.0
# An attempt in flight holds its delivery this long; past it another worker may retry it.
LEASE_S = 30.0
POLL_S = 5.0
CONCURRENCY = 16
# The most events of one incident the delivery loop claims as one run.
RUN_MAX = 20
USER_AGENT = "rescue-callbacks/1"


# A delivery not yet delivered nor given up has a row in webhook_pending (migration 014): its
# place in the incident's order, its attempts and when it is next due (while an attempt is in
# flight, the end of that attempt's lease). The delivery's own row is written once; recording a
# delivery deletes its pending row and finishes its attempt's row.


def queue_pending(name: str, source: str, *, claimed: str, lease: str) -> str:
    """The CTEs `name` and `name_logged` of a statement that inserts deliveries: their pending
    rows (`source`: a FROM clause whose `s` is the inserted deliveries, with id, incident_id,
    event_at, stage and seq), claimed for the lease (`lease`, seconds) where `claimed` (SQL) is
    true, their first attempts logged; `name` returns each one's id and attempts (0: queued
    unclaimed, 1: claimed)."""
    return f"""{name} AS (
    INSERT INTO webhook_pending (id, incident_id, event_at, stage, seq, attempts, next_attempt_at)
    SELECT s.id, s.incident_id, s.event_at, s.stage, s.seq, CASE WHEN {claimed} THEN 1 ELSE 0 END,
           CASE WHEN {claimed} THEN now() + make_interval(secs => {lease}) ELSE now() END
    FROM {source}
    RETURNING id, attempts
),
{name}_logged AS (
    INSERT INTO webhook_attempts (delivery_id, attempt)
    SELECT id, attempts FROM {name} WHERE attempts = 1
)"""


# Only the earliest pending delivery of an incident is eligible: events go out in order. The
# heads are found in one ordered pass over the pending rows (DISTINCT ON), and the claim takes
# the first due ones from an array computed once (an InitPlan): linear in the backlog whatever
# the planner believes. Asked per candidate (NOT EXISTS an earlier pending one), or joined, a
# planner misled by statistics that lagged a burst (they said one pending row) compared every
# candidate with every pending delivery: a backlog of 17,500 took a claim 10 to 25 s, a larger
# one passed the statement timeout and delivery stopped. Every other statement finds its
# pending rows by key (tests/dispatch/test_callback_plans.py counts the rows each one reads).
_HEADS = """
SELECT DISTINCT ON (incident_id) id, next_attempt_at, seq
FROM webhook_pending
ORDER BY incident_id, event_at, stage, seq
"""

# What a claim returns of each delivery it claimed: the delivery's row, its attempt, the secret.
_CLAIMED = """
SELECT d.id, d.event_id, d.incident_id, d.center_id, d.url, d.payload, claimed.attempts,
       d.event_at, d.stage, d.seq, c.webhook_secret
FROM claimed
JOIN webhook_deliveries d ON d.id = claimed.id
JOIN dispatch_centers c ON c.id = d.center_id
"""

# Each due head comes with the events queued behind it, as one run (up to $3 more, in order,
# up to the first one not due): a wave's or a backlog's events then cost the loop one claim
# and one record, not one of each per event. Nobody else holds the followers of a due head
# (an incident in flight has its head in flight, not due), so they are locked, not skipped.
CLAIM_DUE = f"""
WITH due AS (
    SELECT p.id, p.incident_id, p.event_at, p.stage, p.seq FROM webhook_pending p
    WHERE p.id = ANY (ARRAY(
            SELECT h.id FROM ({_HEADS}) h
            WHERE h.next_attempt_at <= now()
            ORDER BY h.next_attempt_at, h.seq
            LIMIT $1))
      AND p.next_attempt_at <= now()
    ORDER BY p.next_attempt_at, p.seq
    FOR UPDATE SKIP LOCKED
), followers AS (
    SELECT f.id FROM (
        SELECT b.id, bool_and(b.next_attempt_at <= now())
                         OVER (PARTITION BY due.id ORDER BY b.event_at, b.stage, b.seq) AS ready
        FROM due CROSS JOIN LATERAL (
            SELECT w.id, w.next_attempt_at, w.event_at, w.stage, w.seq
            FROM webhook_pending w
            WHERE w.incident_id = due.incident_id
              AND (w.event_at, w.stage, w.seq) > (due.event_at, due.stage, due.seq)
            ORDER BY w.event_at, w.stage, w.seq
            LIMIT $3
            FOR UPDATE
        ) b
    ) f
    WHERE f.ready
), claimed AS (
    UPDATE webhook_pending w
    SET attempts = w.attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
    WHERE w.id = ANY (ARRAY(SELECT id FROM due UNION ALL SELECT id FROM followers))
    RETURNING w.id, w.attempts
), logged AS (
    INSERT INTO webhook_attempts (delivery_id, attempt) SELECT id, attempts FROM claimed
)
{_CLAIMED}
ORDER BY d.incident_id, d.event_at, d.stage, d.seq
"""

NEXT_DUE_IN = f"""
SELECT EXTRACT(EPOCH FROM min(h.next_attempt_at) - now())::float8 FROM ({_HEADS}) h
"""

# An attempt's own row is always finished; its delivery is retried later, or given up (its
# pending row deleted), only while the attempt still holds it (attempts = $2): past its lease
# another worker may have claimed it. The state it is left in; none when it was not held.
MARK_FAILED = """
WITH finished AS (
    UPDATE webhook_attempts
    SET status_code = $3, error = $4, duration_ms = $5, finished_at = now()
    WHERE delivery_id = $1 AND attempt = $2
), given_up AS (
    DELETE FROM webhook_pending WHERE id = $1 AND attempts = $2 AND attempts >= $6
    RETURNING 'failed'::text AS state
), retried AS (
    UPDATE webhook_pending SET next_attempt_at = now() + make_interval(secs => $7)
    WHERE id = $1 AND attempts = $2 AND attempts < $6
    RETURNING 'pending'::text AS state
)
SELECT state FROM given_up UNION ALL SELECT state FROM retried
"""

# A run of one incident's events delivered ($1 ids, $2 attempts, $3 status codes, $4 durations),
# as MARK_FAILED marks one, and, when $6, the incident's next event claimed as CLAIM_DUE would
# claim it, in the same statement. Its CTEs share one snapshot, in which the run is still
# pending: the next event is the incident's earliest pending one but those this statement
# delivers, claimed only if it is due (none skips it; the UPDATE re-checks that on the row it
# locks, should another worker claim it first).
DELIVERED_CLAIM_NEXT = f"""
WITH run AS (
    SELECT * FROM unnest($1::text[], $2::int[], $3::int[], $4::int[])
        AS u(id, attempt, status, duration)
), finished AS (
    UPDATE webhook_attempts a
    SET status_code = r.status, error = NULL, duration_ms = r.duration, finished_at = now()
    FROM run r WHERE a.delivery_id = r.id AND a.attempt = r.attempt
), delivered AS (
    DELETE FROM webhook_pending p USING run r
    WHERE p.id = ANY ($1::text[]) AND p.id = r.id AND p.attempts = r.attempt
    RETURNING p.id, p.incident_id
), following AS (
    SELECT p.id FROM webhook_pending p
    WHERE $6 AND p.incident_id = (SELECT incident_id FROM delivered LIMIT 1)
      AND p.id NOT IN (SELECT id FROM delivered)
    ORDER BY p.event_at, p.stage, p.seq
    LIMIT 1
), claimed AS (
    UPDATE webhook_pending w
    SET attempts = w.attempts + 1, next_attempt_at = now() + make_interval(secs => $5)
    FROM following
    WHERE w.id = following.id AND w.next_attempt_at <= now()
    RETURNING w.id, w.attempts
), logged AS (
    INSERT INTO webhook_attempts (delivery_id, attempt) SELECT id, attempts FROM claimed
)
{_CLAIMED}
"""

# The events of a run after one that failed go back unattempted ($1 ids, $2 attempts): their
# claim is undone (their attempt's row deleted), and they wait behind the failed one, due as
# soon as it is delivered.
RELEASE = """
WITH run AS (
    SELECT * FROM unnest($1::text[], $2::int[]) AS u(id, attempt)
), unlogged AS (
    DELETE FROM webhook_attempts a USING run r
    WHERE a.delivery_id = r.id AND a.attempt = r.attempt
)
UPDATE webhook_pending p
SET attempts = p.attempts - 1, next_attempt_at = now()
FROM run r
WHERE p.id = ANY ($1::text[]) AND p.id = r.id AND p.attempts = r.attempt
"""

# A row of a claimed delivery, as CLAIM_DUE returns it (an asyncpg record or a mapping).
Claimed = Mapping[str, Any]


def backoff_s(attempt: int, *, base_s: float, max_s: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(max, base * 2^(attempt-1))]."""
    return rng.uniform(0.0, min(max_s, base_s * 2.0 ** min(attempt - 1, 60)))


def callback_body(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes POSTed (and signed) for a delivery's payload."""
    keys = ("id", "type", "incident_id", "external_id", "at", "data")
    return json.dumps({k: payload.get(k) for k in keys}, ensure_ascii=False).encode()


class CallbackSender:
    """One worker's delivery loop: claims due deliveries and POSTs them, signed."""

    def __init__(
        self,
        settings: Settings,
        *,
        concurrency: int = CONCURRENCY,
        foreground: Foreground | None = None,
    ) -> None:
        self._settings = settings
        self._concurrency = concurrency
        # The worker's alerts in flight, which each POST waits for (rescue.foreground).
        self._foreground = foreground
        self._wake = asyncio.Event()
        self._rng = random.Random()
        self._inflight: set[asyncio.Task[bool]] = set()
        # The loop's last look found every slot taken.
        self._starved = False
        self._pool: asyncpg.Pool | None = None
        self._session: aiohttp.ClientSession | None = None
        self._listener: asyncpg.Connection | None = None
        self._listen_tried = -POLL_S
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def wake(self) -> None:
        """Look for due deliveries now (a new one was queued)."""
        self._wake.set()

    def can_take(self) -> bool:
        """Whether this worker's loop runs and has a free slot for a run claimed elsewhere."""
        return (
            self._task is not None
            and not self._stopping
            and len(self._inflight) < self._concurrency
        )

    def send_run(self, run: Sequence[Claimed]) -> None:
        """Deliver a run already claimed (one incident's events, in order) in a slot of its own."""
        if run:
            self._spawn(run)

    async def start(self, pool: asyncpg.Pool) -> None:
        """Start the loop on this worker."""
        self._pool = pool
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
            headers={"User-Agent": USER_AGENT},
        )
        self._task = asyncio.create_task(self._run(), name="callbacks")

    async def stop(self) -> None:
        """Stop the loop; attempts in flight get their request timeout to finish."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._inflight:
            _, pending = await asyncio.wait(self._inflight, timeout=REQUEST_TIMEOUT_S + 1)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        if self._listener is not None:
            try:
                await self._listener.close(timeout=2)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                self._listener.terminate()

    async def _run(self) -> None:
        assert self._pool is not None
        while not self._stopping:
            self._wake.clear()
            free = self._concurrency - len(self._inflight)
            self._starved = free <= 0
            wait_s = POLL_S
            try:
                await self._listen()
                # With every slot busy, a finishing attempt wakes the loop.
                if free > 0:
                    async with self._pool.acquire() as conn:
                        rows = await conn.fetch(CLAIM_DUE, free, LEASE_S, RUN_MAX - 1)
                        runs = [list(run) for _, run in groupby(rows, itemgetter("incident_id"))]
                        for run in runs:
                            self._spawn(run)
                        if runs and len(runs) == free:
                            continue
                        due_in = await conn.fetchval(NEXT_DUE_IN)
                    if due_in is not None:
                        wait_s = min(POLL_S, max(due_in, 0.02))
            except Exception as exc:
                # PostgreSQL down or the like: never let the loop die; try again shortly.
                logger.warning("callback delivery loop: %r", exc)
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await self._wake.wait()

    async def _listen(self) -> None:
        """LISTEN for new deliveries of every worker; polling covers the time it is down."""
        if self._listener is not None and not self._listener.is_closed():
            return
        now = time.monotonic()
        if now - self._listen_tried < POLL_S:
            return
        self._listen_tried = now
        try:
            # Kept before add_listener so that stop() closes it even if cancelled in between.
            self._listener = await asyncpg.connect(self._settings.database_url, timeout=2)
            await self._listener.add_listener(CHANNEL, lambda *_: self._wake.set())
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            logger.warning("callbacks cannot LISTEN (polling instead): %r", exc)
            if self._listener is not None:
                self._listener.terminate()

    def _spawn(self, run: Sequence[Claimed]) -> None:
        task = asyncio.create_task(self._attempt(run), name=f"callback {run[0]['id']}")
        self._inflight.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[bool]) -> None:
        self._inflight.discard(task)
        crashed = not task.cancelled() and task.exception() is not None
        if crashed:
            logger.error("callback attempt crashed", exc_info=task.exception())
        # The loop looks again when it may have left due work for want of a slot, or to learn
        # when a failed event is due again. A run that ended well claimed its incident's next
        # due event itself: the loop has nothing to learn from it.
        if self._starved or task.cancelled() or crashed or task.result():
            self._wake.set()

    async def _attempt(self, run: Sequence[Claimed]) -> bool:
        """Deliver a claimed run in order, then the incident's next events while they are due;
        whether it ended on a failed attempt."""
        while run:
            delivered: list[tuple[Claimed, int, int]] = []
            for n, row in enumerate(run):
                if self._foreground is not None:
                    await self._foreground.idle()
                status, error, duration_ms = await self._post(row)
                if status is None or not 200 <= status < 300:
                    await self._failed(delivered, row, status, error, duration_ms, run[n + 1 :])
                    return True
                delivered.append((row, status, duration_ms))
            run = await self._delivered(delivered, claim_next=not self._stopping)
        return False

    async def _post(self, row: Claimed) -> tuple[int | None, str | None, int]:
        """POST one claimed event, signed: the status (None if no answer), error, duration."""
        assert self._session is not None
        status: int | None = None
        error: str | None = None
        started = time.monotonic()
        try:
            body = callback_body(row["payload"])
            headers = signed_headers(row["webhook_secret"], row["event_id"], int(time.time()), body)
            headers["Content-Type"] = "application/json"
            async with self._session.post(
                row["url"], data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                if not 200 <= status < 300:
                    snippet = (await response.content.read(200)).decode(errors="replace")
                    error = f"HTTP {status}: {snippet}" if snippet else f"HTTP {status}"
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        return status, error, round((time.monotonic() - started) * 1000)

    async def _delivered(
        self, delivered: Sequence[tuple[Claimed, int, int]], *, claim_next: bool
    ) -> list[Claimed]:
        """Record a run as delivered; the incident's next event, claimed (claim_next)."""
        assert self._pool is not None
        if not delivered:
            return []
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                DELIVERED_CLAIM_NEXT,
                [r["id"] for r, _, _ in delivered],
                [r["attempts"] for r, _, _ in delivered],
                [status for _, status, _ in delivered],
                [duration for _, _, duration in delivered],
                LEASE_S,
                claim_next,
            )
        return [row] if row is not None else []

    async def _failed(
        self,
        delivered: Sequence[tuple[Claimed, int, int]],
        row: Claimed,
        status: int | None,
        error: str | None,
        duration_ms: int,
        unsent: Sequence[Claimed],
    ) -> None:
        """Record a run that failed at `row`: what went before delivered, `row` to be retried
        with backoff (or given up), the unsent rest released."""
        assert self._pool is not None
        await self._delivered(delivered, claim_next=False)
        settings = self._settings
        attempt = row["attempts"]
        delay = backoff_s(
            attempt,
            base_s=settings.callback_backoff_base_s,
            max_s=settings.callback_backoff_max_s,
            rng=self._rng,
        )
        async with self._pool.acquire() as conn:
            state = await conn.fetchval(
                MARK_FAILED,
                row["id"],
                attempt,
                status,
                error,
                duration_ms,
                settings.callback_max_attempts,
                delay,
            )
            if unsent:
                await conn.execute(
                    RELEASE, [r["id"] for r in unsent], [r["attempts"] for r in unsent]
                )
        if state == "failed":
            logger.warning(
                "gave up on callback %s of incident %s to %s after %d attempts: %s",
                row["event_id"],
                row["incident_id"],
                row["url"],
                attempt,
                error,
            )
