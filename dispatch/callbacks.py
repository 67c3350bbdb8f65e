"""Callbacks to the 120 center: every incident event, signed, delivered in order, retried.

This module queues them: the bus group "callbacks" records each incident event's delivery in
PostgreSQL (`webhook_deliveries`, idempotent by event id, written once; `webhook_pending`
while it is not delivered nor given up, see migration 014). An alert's and an escalation wave's
events are the exception: their own statement queues their deliveries (NewDeliveries, in
dispatch.queries.INSERT_ALERT and ESCALATE_WAVE) and its worker sends them (the alert's at
once, the wave's through its delivery loop), and the group, told so by the events' stream
entries, only records them (rescue.bus.Bus.publish_committed's `done`).
dispatch.callback_sender delivers them; dispatch.callback_routes lists them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import groupby
from typing import Any

import asyncpg
from aiohttp import web

from dispatch.callback_sender import CHANNEL, LEASE_S, CallbackSender, queue_pending
from rescue import db, jsonio
from rescue.bus import BatchContext, BatchHandler, Event
from rescue.ids import new_id
from rescue.typedefs import background_key, bus_key, foreground_key, settings_key

logger = logging.getLogger(__name__)

GROUP = "callbacks"
# This worker's sender: the alert's statement queues its callbacks for it (NewDeliveries).
callback_sender_key = web.AppKey("callback_sender", CallbackSender)
# The delivery loop's connections per worker (its statements are short; attempts wait on HTTP).
SENDER_CONNECTIONS = 4
CALLBACK_PREFIXES = ("incident.", "offer.", "responder.", "guidance.")


# A batch's deliveries in one statement, in the batch's order (seq follows it). Each event's
# incident gives its center and URL (the alert's own, else its center's) and, where the event
# has none, its external id; an event of no URL is skipped, of an unknown incident returned.
#
# When $8 (the caller's sender has a free slot), an incident whose creation this statement
# queues has its events of the batch queued claimed ($9 the lease), as CLAIM_DUE would claim
# them, and returned as one run for the caller to send: nothing can be queued before an
# incident's creation, and only the statement that inserts the creation's delivery (its event
# id is unique) claims the incident's run. What is queued unclaimed is left to the caller's own
# delivery loop when $8 (it wakes it), else announced (NOTIFY) to every worker's: a NOTIFY
# wakes every loop, and all but one claim nothing (two statements each).
_INSERT = """
INSERT INTO webhook_deliveries
    (id, event_id, event_type, event_at, stage, incident_id, center_id, url, payload)
SELECT t.id, t.event_id, t.event_type, t.event_at, t.stage, t.incident_id, t.center_id, t.url,
       t.payload
FROM targets t
WHERE {which}
ORDER BY t.ord
ON CONFLICT (event_id) DO NOTHING
RETURNING id, event_id, incident_id, center_id, url, payload, event_at, stage, seq
"""

# The pending rows of what was inserted, the runs' claimed for the lease $9.
_QUEUED = queue_pending(
    "queued",
    "inserted s LEFT JOIN runs r ON r.incident_id = s.incident_id",
    claimed="r.incident_id IS NOT NULL",
    lease="$9",
)

QUEUE_DELIVERIES = f"""
WITH batch AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::int[],
                         $6::text[], $7::text[])
         WITH ORDINALITY AS u(id, event_id, event_type, event_at, stage, incident_id, payload,
                              ord)
), targets AS (
    SELECT b.id, b.event_id, b.event_type, b.event_at, b.stage, b.incident_id, b.ord,
           i.center_id, COALESCE(i.callback_url, c.callback_url) AS url,
           CASE WHEN b.payload::jsonb ? 'external_id' THEN b.payload::jsonb
                ELSE b.payload::jsonb || jsonb_build_object('external_id', i.external_id)
           END AS payload
    FROM batch b
    JOIN incidents i ON i.id = b.incident_id
    JOIN dispatch_centers c ON c.id = i.center_id
    WHERE COALESCE(i.callback_url, c.callback_url) IS NOT NULL
), created AS (
    {_INSERT.format(which="t.event_type = 'incident.created'")}
), runs AS (
    SELECT DISTINCT incident_id FROM created WHERE $8
), others AS (
    {_INSERT.format(which="t.event_type <> 'incident.created'")}
), inserted AS (
    SELECT * FROM created UNION ALL SELECT * FROM others
), {_QUEUED}
SELECT (SELECT coalesce(array_agg(id), '{{}}') FROM inserted) AS ids,
       (SELECT coalesce(array_agg(b.event_id ORDER BY b.ord), '{{}}') FROM batch b
        WHERE NOT EXISTS (SELECT 1 FROM incidents i WHERE i.id = b.incident_id)) AS unknown,
       EXISTS (SELECT 1 FROM queued WHERE attempts = 0) AS waiting,
       (SELECT count(*) FROM (SELECT pg_notify('{CHANNEL}', '')
                              FROM queued WHERE attempts = 0 AND NOT $8 LIMIT 1) AS n) AS told,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'id', i.id, 'event_id', i.event_id, 'incident_id', i.incident_id,
                   'url', i.url, 'payload', i.payload, 'attempts', q.attempts,
                   'webhook_secret', c.webhook_secret)
                ORDER BY i.incident_id, i.event_at, i.stage, i.seq), '[]')
        FROM inserted i JOIN queued q ON q.id = i.id
        JOIN dispatch_centers c ON c.id = i.center_id
        WHERE q.attempts = 1) AS claimed
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


def _payload(event: Event, at: datetime) -> dict[str, Any]:
    """The callback's envelope; without an external id in the event, QUEUE_DELIVERIES adds the
    incident's."""
    data = dict(event.data)
    payload = {
        "id": event.id,
        "type": event.type,
        "incident_id": str(data["incident_id"]),
        "at": at.isoformat(),
        "data": data,
    }
    if "external_id" in data:
        payload["external_id"] = data["external_id"]
    return payload


def _encode(payload: Mapping[str, Any]) -> str:
    return jsonio.dumps_text(payload)


@dataclass(frozen=True, slots=True)
class NewDeliveries:
    """The callbacks of new events queued by the statement that stores them (an alert's,
    dispatch.queries.INSERT_ALERT; a wave's, ESCALATE_WAVE) rather than by this group: one
    statement and one commit fewer, and no wait for the group's read. `params` are that
    statement's (ids, event ids, types, stages, payloads as JSON text). An alert's are claimed
    (`claim`) for this worker's sender when it has a free slot, and sent by it as one run after
    the commit; a wave's, or an alert's when the sender has no slot, are queued unclaimed: its
    own loop is woken for them, or, with no slot there (`announce`), every worker's (NOTIFY).
    Without a sender in this process nothing is queued here, and the group queues them."""

    sender: CallbackSender | None
    ids: list[str]
    events: list[Event]
    payloads: list[dict[str, Any]]
    claim: bool
    announce: bool

    @classmethod
    def of(
        cls, events: Sequence[Event], sender: CallbackSender | None, *, claim: bool
    ) -> NewDeliveries:
        """The deliveries of these new events (those the center hears about), in order;
        claimed for `sender` if `claim` and it has a free slot."""
        if sender is None:
            return cls(sender=None, ids=[], events=[], payloads=[], claim=False, announce=False)
        free = sender.can_take()
        wanted = [e for e in events if is_callback_event(e.type, e.data)]
        return cls(
            sender=sender,
            ids=[new_id("whd") for _ in wanted],
            events=wanted,
            payloads=[_payload(e, event_time(e.at)) for e in wanted],
            claim=claim and free,
            announce=not free,
        )

    @property
    def done(self) -> tuple[str, ...]:
        """The bus groups whose work on the events the statement did (publish_committed)."""
        return (GROUP,) if self.ids else ()

    def params(
        self,
    ) -> tuple[list[str], list[str], list[str], list[int], list[str], bool, float, bool]:
        """The statement's parameters of the deliveries, the claim, its lease and whether to
        announce what is left unclaimed."""
        return (
            self.ids,
            [e.id for e in self.events],
            [e.type for e in self.events],
            [event_stage(e.type) for e in self.events],
            [_encode(p) for p in self.payloads],
            self.claim,
            LEASE_S,
            self.announce,
        )

    def committed(self, row: Mapping[str, Any]) -> None:
        """After the statement's commit (`row`, its result): the claimed run to the sender,
        or its loop woken for what was queued unclaimed and not announced."""
        if self.sender is None or not row["callbacks"]:
            return
        if self.claim:
            self.sender.send_run(self._run(url=row["callback_url"], secret=row["webhook_secret"]))
        elif not self.announce:
            self.sender.wake()  # its own loop sends them, in the incident's order

    def _run(self, *, url: str, secret: str) -> list[dict[str, Any]]:
        """The claimed run, as QUEUE_DELIVERIES returns one, for CallbackSender.send_run."""
        return [
            {
                "id": delivery_id,
                "event_id": event.id,
                "incident_id": str(event.data["incident_id"]),
                "url": url,
                "payload": payload,
                "attempts": 1,
                "webhook_secret": secret,
            }
            for delivery_id, event, payload in zip(
                self.ids, self.events, self.payloads, strict=True
            )
        ]


@dataclass(frozen=True, slots=True)
class Queued:
    """What a batch queued: the new deliveries' ids, the runs claimed for the caller to send
    (each one incident's events, in order), and whether any wait for a delivery loop."""

    ids: list[str]
    runs: list[list[dict[str, Any]]]
    waiting: bool


async def record_events(conn: asyncpg.Connection, events: Sequence[Event]) -> list[str]:
    """Queue the callbacks of a batch of events, for the delivery loops; the new deliveries'
    ids (see queue_events)."""
    return (await queue_events(conn, events, claim=False)).ids


async def queue_events(conn: asyncpg.Connection, events: Sequence[Event], *, claim: bool) -> Queued:
    """Queue the callbacks of a batch of events in one statement (QUEUE_DELIVERIES); with
    `claim`, a new incident's events come back claimed, as a run for the caller to send.

    Events of no incident, of an unknown incident or of an incident with no callback URL are
    skipped; an event already queued is not queued again.
    """
    wanted = [e for e in events if is_callback_event(e.type, e.data)]
    if not wanted:
        return Queued(ids=[], runs=[], waiting=False)
    columns: list[list[Any]] = [[] for _ in range(7)]
    for event in wanted:
        at = event_time(event.at)
        row = (
            new_id("whd"),
            event.id,
            event.type,
            at,
            event_stage(event.type),
            str(event.data["incident_id"]),
            _encode(_payload(event, at)),
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    queued = await conn.fetchrow(QUEUE_DELIVERIES, *columns, claim, LEASE_S)
    if queued["unknown"]:
        unknown = set(queued["unknown"])
        for event in wanted:
            if event.id in unknown:
                logger.warning(
                    "callback for %s %s: incident %s not found",
                    event.type,
                    event.id,
                    event.data["incident_id"],
                )
    claimed = queued["claimed"]
    if isinstance(claimed, str):  # a connection without the pool's JSON codecs
        claimed = json.loads(claimed)
    runs = [list(run) for _, run in groupby(claimed, key=lambda row: row["incident_id"])]
    return Queued(ids=list(queued["ids"]), runs=runs, waiting=queued["waiting"])


def make_handler(sender: CallbackSender | None) -> BatchHandler:
    """The batch handler of group "callbacks": queue the events' callbacks, send the new
    incidents' runs on this worker's sender, wake it for the rest.

    A read's events cost one statement whatever their number; the deliveries are idempotent
    (unique event_id), so a batch delivered again queues nothing twice.
    """

    async def handle(events: Sequence[Event], ctx: BatchContext) -> None:
        if not any(is_callback_event(e.type, e.data) for e in events):
            return
        # With a free slot here, this worker sends what it queues: the new incidents' runs at
        # once, the rest through its own loop; else the statement's NOTIFY wakes every worker's.
        claim = sender is not None and sender.can_take()
        # Committed before the sending.
        async with ctx.pool.acquire() as conn:
            queued = await queue_events(conn, events, claim=claim)
        if sender is not None:
            for run in queued.runs:
                sender.send_run(run)
            if queued.waiting:
                sender.wake()

    return handle


def setup_callbacks(app: web.Application) -> None:
    """Subscribe the callbacks handler on the bus and run a delivery loop on this worker."""
    sender = CallbackSender(app[settings_key], foreground=app.get(foreground_key))
    app[callback_sender_key] = sender

    async def callbacks_ctx(app: web.Application) -> AsyncIterator[None]:
        if not app[background_key]:
            yield
            return
        # Its own few connections, on which its statements are planned once (generic plans)
        # rather than at every call: their planning cost more than their work (~0.25 ms).
        pool = await db.create_pool(
            app[settings_key].database_url,
            min_size=1,
            max_size=SENDER_CONNECTIONS,
            server_settings={"plan_cache_mode": "force_generic_plan"},
        )
        await sender.start(pool)
        yield
        await sender.stop()
        await pool.close()

    app[bus_key].subscribe_batch(GROUP, make_handler(sender))
    app.cleanup_ctx.append(callbacks_ctx)
