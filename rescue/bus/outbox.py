"""The PostgreSQL side of the bus: emitting into the outbox and recording processed events."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, TypeAlias

import asyncpg

from rescue.bus import queries
from rescue.bus.models import Event
from rescue.ids import new_id

Executor: TypeAlias = asyncpg.Connection | asyncpg.Pool


def encode_data(data: dict[str, Any]) -> str:
    """The event data as compact JSON; a TypeError/ValueError names what cannot be encoded."""
    if not isinstance(data, dict):
        raise TypeError(f"event data must be a dict, not {type(data).__name__}")
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


async def emit(
    conn: asyncpg.Connection,
    *,
    type: str,
    data: dict[str, Any],
    key: str | None = None,
    at: datetime | None = None,
) -> Event:
    """Put an event in the outbox within the caller's transaction; relayed once it commits."""
    if not type:
        raise ValueError("event type must not be empty")
    if at is None:
        at = datetime.now(UTC)
    elif at.tzinfo is None:
        raise ValueError("event time must be timezone-aware")
    else:
        at = at.astimezone(UTC)
    encoded = encode_data(data)
    event = Event(id=new_id("evt"), type=type, data=json.loads(encoded), at=at, key=key)
    await conn.execute(queries.EMIT, event.id, type, key, encoded, at)
    return event


async def processed(conn: Executor, *, group: str, event_id: str) -> bool:
    """Whether the group has recorded the event as processed."""
    return bool(await conn.fetchval(queries.PROCESSED, group, event_id))


async def mark_processed(conn: Executor, *, group: str, event_id: str) -> bool:
    """Record the event as processed by the group; True only when this call recorded it."""
    return bool(await conn.fetchval(queries.MARK_PROCESSED, group, event_id, "done"))


async def mark_dead(conn: Executor, *, group: str, event_id: str) -> bool:
    """Record that the group gave up on the event (it went to the dead-letter stream)."""
    return bool(await conn.fetchval(queries.MARK_PROCESSED, group, event_id, "dead"))
