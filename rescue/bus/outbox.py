"""The PostgreSQL side of the bus: emitting into the outbox and recording processed events."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeAlias

import asyncpg

from rescue import jsonio
from rescue.bus import queries
from rescue.bus.constants import NOTIFY_CHANNEL
from rescue.bus.models import Event
from rescue.ids import new_id

Executor: TypeAlias = asyncpg.Connection | asyncpg.Pool


def encode_data(data: dict[str, Any]) -> str:
    """The event data as compact JSON; a TypeError/ValueError names what cannot be encoded."""
    if not isinstance(data, dict):
        raise TypeError(f"event data must be a dict, not {type(data).__name__}")
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


# Many events in one statement (one round trip) and one wake-up. The arrays come from
# outbox_rows(); WITH ORDINALITY keeps the outbox ids (the relay's order) in the given order.
# (Kept here beside emit_many; it could join rescue/bus/queries.py.)
EMIT_MANY = f"""
WITH e AS (
    INSERT INTO outbox (event_id, type, key, data, occurred_at)
    SELECT u.event_id, u.type, u.key, u.data::jsonb, u.occurred_at
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
        WITH ORDINALITY AS u(event_id, type, key, data, occurred_at, n)
    ORDER BY u.n
    RETURNING id
), pending AS (
    {queries.pending_rows("e")}
)
SELECT pg_notify('{NOTIFY_CHANNEL}', '') FROM (SELECT 1 FROM e LIMIT 1) AS one
"""

OutboxRows: TypeAlias = tuple[list[str], list[str], list[str | None], list[str], list[datetime]]


def new_event(
    *, type: str, data: dict[str, Any], key: str | None = None, at: datetime | None = None
) -> Event:
    """A validated event, not yet emitted (its data as it will be stored and relayed)."""
    if not type:
        raise ValueError("event type must not be empty")
    if at is None:
        at = datetime.now(UTC)
    elif at.tzinfo is None:
        raise ValueError("event time must be timezone-aware")
    else:
        at = at.astimezone(UTC)
    # The standard library's decoder: an integer beyond 64 bits stays one (orjson's would not).
    data = json.loads(encode_data(data))
    return Event(id=new_id("evt"), type=type, data=data, at=at, key=key)


def outbox_rows(events: Sequence[Event]) -> OutboxRows:
    """The EMIT_MANY parameters ($1..$5) of events made by new_event, in order."""
    return (
        [e.id for e in events],
        [e.type for e in events],
        [e.key for e in events],
        # Checked and made plain JSON by new_event: the fast encoder writes the same.
        [jsonio.dumps_text(e.data) for e in events],
        [e.at for e in events],
    )


async def emit(
    conn: asyncpg.Connection,
    *,
    type: str,
    data: dict[str, Any],
    key: str | None = None,
    at: datetime | None = None,
) -> Event:
    """Put an event in the outbox within the caller's transaction; relayed once it commits."""
    event = new_event(type=type, data=data, key=key, at=at)
    await conn.execute(queries.EMIT, event.id, event.type, key, encode_data(event.data), event.at)
    return event


async def emit_many(conn: asyncpg.Connection, events: Sequence[Event]) -> list[Event]:
    """Put events made by new_event in the outbox, in order: one statement, one NOTIFY."""
    if events:
        await conn.execute(EMIT_MANY, *outbox_rows(events))
    return list(events)


async def processed(conn: Executor, *, group: str, event_id: str) -> bool:
    """Whether the group has recorded the event as processed."""
    return bool(await conn.fetchval(queries.PROCESSED, group, event_id))


async def mark_processed(conn: Executor, *, group: str, event_id: str) -> bool:
    """Record the event as processed by the group; True only when this call recorded it."""
    return bool(await conn.fetchval(queries.MARK_PROCESSED, group, event_id, "done"))


async def mark_dead(conn: Executor, *, group: str, event_id: str) -> bool:
    """Record that the group gave up on the event (it went to the dead-letter stream)."""
    return bool(await conn.fetchval(queries.MARK_PROCESSED, group, event_id, "dead"))
