"""Callbacks to the 120 center: every incident event, signed, delivered in order, retried.

This module queues them: the bus group "callbacks" records each incident event's delivery in
PostgreSQL (`webhook_deliveries`, idempotent by event id). dispatch.callback_sender delivers
them; dispatch.callback_routes lists them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web

from dispatch.callback_sender import CHANNEL, CallbackSender
from rescue.bus import BatchContext, BatchHandler, Event
from rescue.ids import new_id
from rescue.typedefs import background_key, bus_key, db_key, settings_key

logger = logging.getLogger(__name__)

GROUP = "callbacks"
CALLBACK_PREFIXES = ("incident.", "offer.", "responder.", "guidance.")


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
