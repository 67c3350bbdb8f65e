"""Callbacks to the 120 center: every incident event, signed, delivered in order, retried."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from dispatch.signing import signed_headers
from rescue.auth import Role, principal_of, requires
from rescue.bus import BatchContext, BatchHandler, Event
from rescue.errors import not_found
from rescue.http import decode_cursor, json_response, page, page_limit
from rescue.ids import new_id
from rescue.settings import Settings
from rescue.typedefs import background_key, bus_key, db_key, settings_key

logger = logging.getLogger(__name__)

GROUP = "callbacks"
CHANNEL = "rescue_callbacks"
CALLBACK_PREFIXES = ("incident.", "offer.", "responder.", "guidance.")
REQUEST_TIMEOUT_S = 5.0
# An attempt in flight holds its delivery this long; past it another worker may retry it.
LEASE_S = 30.0
POLL_S = 5.0
CONCURRENCY = 16
USER_AGENT = "rescue-callbacks/1"


# The targets of a batch's incidents (one query for a read of the stream).
RESOLVE_TARGETS = """
SELECT i.id, i.center_id, i.external_id, COALESCE(i.callback_url, c.callback_url) AS url
FROM incidents i JOIN dispatch_centers c ON c.id = i.center_id
WHERE i.id = ANY($1::text[])
"""

# A batch's deliveries in one statement, in the batch's order (seq follows it).
INSERT_DELIVERIES = f"""
WITH inserted AS (
    INSERT INTO webhook_deliveries
        (id, event_id, event_type, event_at, stage, incident_id, center_id, url, payload)
    SELECT u.id, u.event_id, u.event_type, u.event_at, u.stage, u.incident_id, u.center_id,
           u.url, u.payload::jsonb
    FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::int[], $6::text[],
                $7::text[], $8::text[], $9::text[])
         WITH ORDINALITY AS u(id, event_id, event_type, event_at, stage, incident_id,
                              center_id, url, payload, ord)
    ORDER BY u.ord
    ON CONFLICT (event_id) DO NOTHING
    RETURNING id
)
SELECT coalesce(array_agg(id), '{{}}') AS ids,
       CASE WHEN count(*) > 0 THEN pg_notify('{CHANNEL}', '') END
FROM inserted
"""

# Only the earliest pending delivery of an incident is eligible: events go out in order.
_HEAD = """
NOT EXISTS (
    SELECT 1 FROM webhook_deliveries e
    WHERE e.incident_id = d.incident_id AND e.state = 'pending'
      AND (e.event_at, e.stage, e.seq) < (d.event_at, d.stage, d.seq))
"""

CLAIM_DUE = f"""
WITH due AS (
    SELECT d.id FROM webhook_deliveries d
    WHERE d.state = 'pending' AND d.next_attempt_at <= now() AND {_HEAD}
    ORDER BY d.next_attempt_at, d.seq
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE webhook_deliveries w
    SET attempts = w.attempts + 1, last_attempt_at = now(),
        next_attempt_at = now() + make_interval(secs => $2)
    FROM due WHERE w.id = due.id
    RETURNING w.id, w.event_id, w.incident_id, w.center_id, w.url, w.payload, w.attempts
), logged AS (
    INSERT INTO webhook_attempts (delivery_id, attempt) SELECT id, attempts FROM claimed
)
SELECT claimed.*, c.webhook_secret
FROM claimed JOIN dispatch_centers c ON c.id = claimed.center_id
"""

NEXT_DUE_IN = f"""
SELECT EXTRACT(EPOCH FROM min(d.next_attempt_at) - now())::float8
FROM webhook_deliveries d WHERE d.state = 'pending' AND {_HEAD}
"""

FINISH_ATTEMPT = """
UPDATE webhook_attempts SET status_code = $3, error = $4, duration_ms = $5
WHERE delivery_id = $1 AND attempt = $2
"""

MARK_DELIVERED = """
UPDATE webhook_deliveries
SET state = 'delivered', delivered_at = now(), last_status_code = $3, last_error = NULL
WHERE id = $1 AND attempts = $2 AND state = 'pending'
RETURNING state
"""

MARK_FAILED = """
UPDATE webhook_deliveries
SET state = CASE WHEN attempts >= $5 THEN 'failed' ELSE 'pending' END,
    next_attempt_at = now() + make_interval(secs => $6),
    last_status_code = $3, last_error = $4
WHERE id = $1 AND attempts = $2 AND state = 'pending'
RETURNING state
"""

# An incident of another dispatch center is not found, as for GET /v1/incidents/{incident_id}.
INCIDENT_VISIBLE = "SELECT 1 FROM incidents WHERE id = $1 AND ($2::text IS NULL OR center_id = $2)"

LIST_DELIVERIES = """
SELECT d.* FROM webhook_deliveries d
WHERE d.incident_id = $1
  AND ($2::text IS NULL OR (d.event_at, d.stage, d.seq) > (
      SELECT c.event_at, c.stage, c.seq FROM webhook_deliveries c
      WHERE c.id = $2 AND c.incident_id = $1))
ORDER BY d.event_at, d.stage, d.seq
LIMIT $3
"""

LIST_ATTEMPTS = """
SELECT * FROM webhook_attempts WHERE delivery_id = ANY($1::text[]) ORDER BY delivery_id, attempt
"""


def is_callback_event(event_type: str, data: Mapping[str, Any]) -> bool:
    """Whether an event is one the 120 center hears about: every event of an incident."""
    return event_type.startswith(CALLBACK_PREFIXES) and bool(data.get("incident_id"))


def event_stage(event_type: str) -> int:
    """Orders events of the same instant: the incident's creation first, its end last."""
    if event_type == "incident.created":
        return 0
    if event_type in ("incident.cancelled", "incident.closed"):
        return 2
    return 1


def event_time(at: Any) -> datetime:
    """An event's `at` (datetime, RFC 3339 text or unix seconds) as an aware datetime."""
    if isinstance(at, datetime):
        value = at
    elif isinstance(at, int | float):
        value = datetime.fromtimestamp(at, UTC)
    else:
        value = datetime.fromisoformat(str(at))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def backoff_s(attempt: int, *, base_s: float, max_s: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(max, base * 2^(attempt-1))]."""
    return rng.uniform(0.0, min(max_s, base_s * 2.0 ** min(attempt - 1, 60)))


def callback_body(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes POSTed (and signed) for a delivery's payload."""
    keys = ("id", "type", "incident_id", "external_id", "at", "data")
    return json.dumps({k: payload.get(k) for k in keys}, ensure_ascii=False).encode()


async def record_event(conn: asyncpg.Connection, event: Event) -> str | None:
    """Queue the callback of one event; the new delivery's id, None if none (or already queued)."""
    ids = await record_events(conn, [event])
    return ids[0] if ids else None


def _payload(event: Event, target: Mapping[str, Any], at: datetime) -> dict[str, Any]:
    data = dict(event.data)
    return {
        "id": event.id,
        "type": event.type,
        "incident_id": str(data["incident_id"]),
        "external_id": data.get("external_id", target["external_id"]),
        "at": at.isoformat(),
        "data": data,
    }


async def record_events(conn: asyncpg.Connection, events: Sequence[Event]) -> list[str]:
    """Queue the callbacks of a batch of events in two statements; the new deliveries' ids.

    Events of no incident, of an unknown incident or of an incident with no callback URL are
    skipped; an event already queued is not queued again.
    """
    wanted = [e for e in events if is_callback_event(e.type, e.data)]
    if not wanted:
        return []
    incident_ids = sorted({str(e.data["incident_id"]) for e in wanted})
    targets = {row["id"]: row for row in await conn.fetch(RESOLVE_TARGETS, incident_ids)}
    columns: list[list[Any]] = [[] for _ in range(9)]
    for event in wanted:
        incident_id = str(event.data["incident_id"])
        target = targets.get(incident_id)
        if target is None:
            logger.warning(
                "callback for %s %s: incident %s not found", event.type, event.id, incident_id
            )
            continue
        if not target["url"]:
            continue
        at = event_time(event.at)
        row = (
            new_id("whd"),
            event.id,
            event.type,
            at,
            event_stage(event.type),
            incident_id,
            target["center_id"],
            target["url"],
            json.dumps(_payload(event, target, at), ensure_ascii=False),
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    if not columns[0]:
        return []
    return list(await conn.fetchval(INSERT_DELIVERIES, *columns))


class CallbackSender:
    """One worker's delivery loop: claims due deliveries and POSTs them, signed."""

    def __init__(self, settings: Settings, *, concurrency: int = CONCURRENCY) -> None:
        self._settings = settings
        self._concurrency = concurrency
        self._wake = asyncio.Event()
        self._rng = random.Random()
        self._inflight: set[asyncio.Task[None]] = set()
        self._pool: asyncpg.Pool | None = None
        self._session: aiohttp.ClientSession | None = None
        self._listener: asyncpg.Connection | None = None
        self._listen_tried = -POLL_S
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def wake(self) -> None:
        """Look for due deliveries now (a new one was queued)."""
        self._wake.set()

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
            wait_s = POLL_S
            try:
                await self._listen()
                # With every slot busy, a finishing attempt wakes the loop.
                if free > 0:
                    async with self._pool.acquire() as conn:
                        rows = await conn.fetch(CLAIM_DUE, free, LEASE_S)
                        for row in rows:
                            self._spawn(row)
                        if rows and len(rows) == free:
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

    def _spawn(self, row: asyncpg.Record) -> None:
        task = asyncio.create_task(self._attempt(row), name=f"callback {row['id']}")
        self._inflight.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("callback attempt crashed", exc_info=task.exception())
        # A finished head lets the incident's next event go, and frees a slot.
        self._wake.set()

    async def _attempt(self, row: asyncpg.Record) -> None:
        assert self._session is not None and self._pool is not None
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
        duration_ms = round((time.monotonic() - started) * 1000)
        ok = status is not None and 200 <= status < 300
        await self._record(row, ok=ok, status=status, error=error, duration_ms=duration_ms)

    async def _record(
        self,
        row: asyncpg.Record,
        *,
        ok: bool,
        status: int | None,
        error: str | None,
        duration_ms: int,
    ) -> None:
        assert self._pool is not None
        settings = self._settings
        attempt = row["attempts"]
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(FINISH_ATTEMPT, row["id"], attempt, status, error, duration_ms)
            if ok:
                await conn.fetchval(MARK_DELIVERED, row["id"], attempt, status)
                return
            delay = backoff_s(
                attempt,
                base_s=settings.callback_backoff_base_s,
                max_s=settings.callback_backoff_max_s,
                rng=self._rng,
            )
            state = await conn.fetchval(
                MARK_FAILED,
                row["id"],
                attempt,
                status,
                error,
                settings.callback_max_attempts,
                delay,
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


def make_handler(sender: CallbackSender | None) -> BatchHandler:
    """The batch handler of group "callbacks": queue the events' callbacks, wake the sender.

    A read's events cost two statements (targets, deliveries) whatever their number; the
    deliveries are idempotent (unique event_id), so a batch delivered again queues nothing twice.
    """

    async def handle(events: Sequence[Event], ctx: BatchContext) -> None:
        if not any(is_callback_event(e.type, e.data) for e in events):
            return
        # Committed before the wake-up; the NOTIFY in the INSERT wakes the other workers.
        async with ctx.pool.acquire() as conn:
            if await record_events(conn, events) and sender is not None:
                sender.wake()

    return handle


def setup_callbacks(app: web.Application) -> None:
    """Subscribe the callbacks handler on the bus and run a delivery loop on this worker."""
    sender = CallbackSender(app[settings_key])

    async def callbacks_ctx(app: web.Application) -> AsyncIterator[None]:
        if not app[background_key]:
            yield
            return
        await sender.start(app[db_key])
        yield
        await sender.stop()

    app[bus_key].subscribe_batch(GROUP, make_handler(sender))
    app.cleanup_ctx.append(callbacks_ctx)


routes = web.RouteTableDef()


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _render(row: asyncpg.Record, attempts: list[asyncpg.Record]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "event_id": row["event_id"],
        "type": row["event_type"],
        "event_at": _iso(row["event_at"]),
        "url": row["url"],
        "state": row["state"],
        "attempts": row["attempts"],
        "next_attempt_at": _iso(row["next_attempt_at"]) if row["state"] == "pending" else None,
        "last_status_code": row["last_status_code"],
        "last_error": row["last_error"],
        "delivered_at": _iso(row["delivered_at"]),
        "created_at": _iso(row["created_at"]),
        "payload": row["payload"],
        "attempt_log": [
            {
                "attempt": a["attempt"],
                "at": _iso(a["at"]),
                "status_code": a["status_code"],
                "error": a["error"],
                "duration_ms": a["duration_ms"],
            }
            for a in attempts
        ],
    }


@routes.get("/v1/incidents/{incident_id}/callbacks")
@requires(Role.ADMIN, Role.DISPATCH)
async def list_callbacks(request: web.Request) -> web.Response:
    """The callbacks of an incident, in delivery order, with every attempt."""
    incident_id = request.match_info["incident_id"]
    limit = page_limit(request)
    after = decode_cursor(request)
    principal = principal_of(request)
    center_id = principal.id if principal.role is Role.DISPATCH else None
    async with request.app[db_key].acquire() as conn:
        if await conn.fetchval(INCIDENT_VISIBLE, incident_id, center_id) is None:
            raise not_found("incident", incident_id)
        rows = await conn.fetch(LIST_DELIVERIES, incident_id, after, limit + 1)
        attempts = await conn.fetch(LIST_ATTEMPTS, [r["id"] for r in rows[:limit]])
    by_delivery: dict[str, list[asyncpg.Record]] = {}
    for a in attempts:
        by_delivery.setdefault(a["delivery_id"], []).append(a)
    items = [_render(r, by_delivery.get(r["id"], [])) for r in rows]
    return json_response(page(items, [r["id"] for r in rows], limit))
