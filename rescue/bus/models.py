"""The bus's types: events, what a handler is given, subscriptions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from redis.asyncio import Redis

from rescue import jsonio
from rescue.bus.constants import F_AT, F_DATA, F_DONE, F_ID, F_KEY, F_TYPE


@dataclass(frozen=True)
class Event:
    """One event: a unique id, a type, JSON data, when it happened (UTC) and an optional key.

    `done` names the groups whose work on it the producer's commit did (see
    Bus.publish_committed); only an entry the producer published itself carries them."""

    id: str
    type: str
    data: dict[str, Any]
    at: datetime
    key: str | None = None
    done: frozenset[str] = frozenset()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def to_fields(
    *,
    event_id: str,
    type: str,
    key: str | None,
    data_json: str,
    at: datetime,
    done: Sequence[str] = (),
) -> dict[str, str]:
    """The stream entry of an event (the data stays as the JSON text stored in the outbox)."""
    fields = {F_ID: event_id, F_TYPE: type, F_DATA: data_json, F_AT: at.isoformat()}
    if key is not None:
        fields[F_KEY] = key
    if done:
        fields[F_DONE] = " ".join(done)
    return fields


def from_fields(fields: Mapping[Any, Any]) -> Event:
    """The event in a stream entry; ValueError/KeyError when the entry is malformed."""
    values = {_text(k): _text(v) for k, v in fields.items()}
    data = jsonio.loads(values[F_DATA])
    if not isinstance(data, dict):
        raise ValueError("event data is not a JSON object")
    at = datetime.fromisoformat(values[F_AT])
    if at.tzinfo is None:
        raise ValueError("event time has no time zone")
    done = frozenset(values[F_DONE].split()) if F_DONE in values else frozenset()
    return Event(
        id=values[F_ID], type=values[F_TYPE], data=data, at=at, key=values.get(F_KEY), done=done
    )


@dataclass
class HandlerContext:
    """What a handler gets besides the event: resources, the delivery count, the group."""

    pool: asyncpg.Pool
    redis: Redis
    attempt: int
    group: str
    consumer: str
    event_id: str
    entry_id: str
    _conn: asyncpg.Connection | None = field(default=None, repr=False)
    _claimed: bool = field(default=False, repr=False)

    @property
    def conn(self) -> asyncpg.Connection:
        """The connection of the bus-held transaction (subscribe with transactional=True)."""
        if self._conn is None:
            raise RuntimeError(
                f"group {self.group!r}: ctx.conn exists only for subscribe(..., "
                "transactional=True); otherwise open a transaction and call ctx.claim(conn)"
            )
        return self._conn

    @property
    def transactional(self) -> bool:
        """Whether the bus runs the handler inside a transaction (ctx.conn)."""
        return self._conn is not None

    async def claim(self, conn: asyncpg.Connection) -> bool:
        """Record this event as processed by the group in the caller's transaction.

        True when this call recorded it (go ahead with the effects); False when it was already
        processed (do nothing). The bus then does not record it again after the handler.
        """
        from rescue.bus.outbox import mark_processed

        recorded = await mark_processed(conn, group=self.group, event_id=self.event_id)
        self._claimed = True
        return recorded


Handler = Callable[[Event, HandlerContext], Awaitable[None]]


@dataclass(frozen=True)
class BatchContext:
    """What a batch handler gets besides the events: resources, the group, the consumer."""

    pool: asyncpg.Pool
    redis: Redis
    group: str
    consumer: str


# Takes the events of one read (stream order, new to the group, of its types) at once.
BatchHandler = Callable[[Sequence[Event], BatchContext], Awaitable[None]]


@dataclass(frozen=True)
class Subscription:
    """A consumer group, its handler and the event types it takes (None: every type).

    Exactly one of handler (one event per call) and batch_handler (a read's events per call).
    """

    group: str
    handler: Handler | None
    types: frozenset[str] | None
    transactional: bool
    batch_handler: BatchHandler | None = None


@dataclass
class BusStats:
    """Counters of one bus (this process), for tests and diagnostics."""

    published: int = 0
    published_by_producer: int = 0  # of those, rows the producer's commit claimed (no relay claim)
    replayed: int = 0
    replays: int = 0
    relay_errors: int = 0
    relay_passes: int = 0  # passes of this bus's relay that ended without an error
    consumer_errors: int = 0
    handled: int = 0
    served: int = 0  # events a group recorded unhandled: the producer's commit did its work
    duplicates: int = 0
    skipped: int = 0
    failed: int = 0
    dead: int = 0
    cleaned: int = 0
