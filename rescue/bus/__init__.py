"""The event bus: a transactional outbox in PostgreSQL relayed onto a Redis Stream.

Producing: `await emit(conn, type=..., data=..., key=...)` inside the caller's transaction. It
writes an `outbox` row, its `outbox_pending` row (the event is unpublished while it has one) and
a NOTIFY in one statement and never touches Redis, so an incident commits while Redis is down;
a rolled-back transaction leaves no event. The event's row is never updated.

Relaying: one relay wakes on the NOTIFY at commit (the holder of a session advisory lock on its
LISTEN connection; another takes it over when that connection ends) and every relay polls every
`poll_interval_s` as a fallback; a relay claims unpublished events for a lease (one UPDATE of
their pending rows ... FOR UPDATE SKIP LOCKED ... RETURNING, safe in every worker at once),
XADDs them in id order in one MULTI/EXEC (approximate MAXLEN), and stamps them published
(deletes their pending rows) in the statement of its next claim (a relay that dies in between
leaves its claim to expire, and the events are published again).
A producer may instead claim its events in its own statement (pending rows with
`claimed_until` = now() + `bus.claim_lease`, no NOTIFY) and hand them to
`bus.publish_committed(outbox_rows(events), ids)` after the commit: its worker XADDs them at
once, without a relay's claim, and its relay stamps them; if the XADD fails the claim is given
back, if the worker dies the lease runs out, and a relay publishes them as any other row
(dispatch's alert statement does this). Such a producer may also name the groups whose work on
the events its commit did (`done=`): their entries say so, and those groups record and ack them
without calling the handler; a relay's publication of the same rows says nothing, so the
handler runs and must find its work done (idempotent).
Redis keeps a marker key (`<stream>:epoch`); when it is missing (Redis restarted empty, FLUSHDB)
one relay (advisory lock) recreates every known group (`bus_groups`) at '0' and re-publishes
the events of the retention window (24 h) that a group taking their type has not recorded in
`bus_processed`; the marker reads 'replaying:...' meanwhile and is completed by compare-and-set,
so a flush during the replay triggers another.
Published rows no group owes are deleted after the retention window (all of them after
`purge_after`, 7 days) by the relays now and then.

Consuming: `bus.subscribe(group, handler, types=...)` before `start()`; each worker runs one
XREADGROUP consumer per group (consumer name unique per process), so the workers share a group's
events. Delivery is at least once: an event is recorded in `bus_processed (group_name, event_id)`
and then XACKed; a redelivery of a recorded event is acked without calling the handler. For
effects and record to commit together, either subscribe with `transactional=True` and use
`ctx.conn` (the bus's open transaction), or open a transaction yourself and start it with
`if not await ctx.claim(conn): return`. `bus.subscribe_batch(group, handler, types=...)` hands
an idempotent handler each read's new events at once (one query, one pipeline for the lot),
acked when it returns and recorded within `record_delay_s`, several reads in one INSERT. A
handler that raises, or a consumer that dies before the ack, leaves the entry pending; after
`claim_idle_ms` any consumer of the group XAUTOCLAIMs it (`ctx.attempt` is the delivery count).
After `max_deliveries` it goes to `<stream>:dead`, is recorded as 'dead' and acked. Redis down:
relay and consumers log once, retry with capped backoff and never crash the worker; a consumer
recreates its group on NOGROUP.

Wiring in the app (rescue/app.py), the bus exists before startup so packages can subscribe in
their setup(), and is bound and started by its cleanup context:

    install_bus(app)                       # after app[settings_key]/app[metrics_key] are set
    app.cleanup_ctx.append(bus_ctx)        # after postgres_ctx and redis_ctx
    ...
    app[bus_key].subscribe("phones", push_offers, types={"offer.created"})   # in a setup()

`bus_ctx` builds the bus's own Redis client (its socket timeout exceeds the XREADGROUP block),
binds app[db_key], starts the bus only when app[background_key] is true and stops it on
shutdown. One outbox feeds one stream.
"""

from __future__ import annotations

from rescue.bus.bus import Bus, default_consumer_name
from rescue.bus.constants import STREAM
from rescue.bus.models import (
    BatchContext,
    BatchHandler,
    BusStats,
    Event,
    Handler,
    HandlerContext,
)
from rescue.bus.outbox import emit, mark_processed, processed
from rescue.bus.setup import bus_ctx, create_bus_redis, install_bus

__all__ = [
    "STREAM",
    "BatchContext",
    "BatchHandler",
    "Bus",
    "BusStats",
    "Event",
    "Handler",
    "HandlerContext",
    "bus_ctx",
    "create_bus_redis",
    "default_consumer_name",
    "emit",
    "install_bus",
    "mark_processed",
    "processed",
]
