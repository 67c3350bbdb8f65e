"""The bus consumer handles the batch it reads: one lookup, one record, one ack per batch."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
from redis.asyncio import Redis

from rescue.bus import BatchContext, Bus, Event, HandlerContext, mark_processed
from rescue.bus.outbox import emit_many, new_event
from rescue.foreground import Foreground
from tests.helpers import PUBLISHED
from tests.rescue.bus_support import (
    MakeBus,
    bus_pool_fixture,  # noqa: F401 (a fixture)
    emit_committed,
    first_pass_done,
    make_bus_fixture,  # noqa: F401 (a fixture)
    wait_until,
)


class GatedRecorder:
    """Records events; holds the 'gate' event until released, so the rest queue up as a batch."""

    def __init__(self, *, fail_on: int | None = None) -> None:
        self.calls: list[Event] = []
        self.gate = asyncio.Event()
        self.holding = asyncio.Event()  # the gate event arrived and is held
        self.fail_on = fail_on

    async def __call__(self, event: Event, ctx: HandlerContext) -> None:
        if event.type == "gate":
            self.holding.set()
            await self.gate.wait()
        self.calls.append(event)
        if self.fail_on is not None and event.data.get("n") == self.fail_on:
            raise RuntimeError("phone push failed")


async def _queue_batch(
    pg: asyncpg.Connection, bus: Bus, handler: GatedRecorder | GatedBatches, events: list[Event]
) -> None:
    """Block the consumer on a gate event, publish the events, then let it read them at once."""
    await emit_committed(pg, type="gate", data={})
    # The consumer holds the gate: what follows queues up behind it and is read at once.
    await wait_until(handler.holding.is_set, what="gate held")
    async with pg.transaction():
        await emit_many(pg, events)
    published = f"SELECT count(*) = {len(events) + 1} FROM outbox WHERE {PUBLISHED}"
    await wait_until(lambda: pg.fetchval(published), what="all published")
    handler.gate.set()


async def _recorded(pg: asyncpg.Connection, group: str) -> set[str]:
    rows = await pg.fetch("SELECT event_id FROM bus_processed WHERE group_name = $1", group)
    return {row["event_id"] for row in rows}


async def _has_recorded(pg: asyncpg.Connection, group: str, ids: set[str]) -> bool:
    return await _recorded(pg, group) >= ids


async def test_batch_is_handled_once_recorded_and_acked(
    make_bus: MakeBus, pg: asyncpg.Connection, redis: Redis
) -> None:
    handler = GatedRecorder()
    bus = make_bus(read_count=100)
    bus.subscribe("phones", handler)
    await bus.start()
    events = [new_event(type="offer.created", data={"n": n}) for n in range(50)]
    await _queue_batch(pg, bus, handler, events)
    await wait_until(lambda: bus.stats.handled == 51, what="all handled")
    assert [e.id for e in handler.calls[1:]] == [e.id for e in events]
    assert await _recorded(pg, "phones") >= {e.id for e in events}
    assert len(await _recorded(pg, "phones")) == 51
    assert (await redis.xpending(bus.stream, "phones"))["pending"] == 0
    assert (bus.stats.failed, bus.stats.duplicates, bus.stats.dead) == (0, 0, 0)


async def test_failing_handler_leaves_only_its_event_pending(
    make_bus: MakeBus, pg: asyncpg.Connection, redis: Redis
) -> None:
    handler = GatedRecorder(fail_on=7)
    # No reclaim during the test: the failed entry stays pending with this consumer.
    bus = make_bus(read_count=100, claim_idle_ms=60_000)
    bus.subscribe("phones", handler)
    await bus.start()
    events = [new_event(type="offer.created", data={"n": n}) for n in range(20)]
    await _queue_batch(pg, bus, handler, events)
    await wait_until(lambda: bus.stats.handled == 20, what="the others handled")
    assert [e.id for e in handler.calls[1:]] == [e.id for e in events]
    assert bus.stats.failed == 1
    recorded = await _recorded(pg, "phones")
    assert events[7].id not in recorded
    assert {e.id for e in events if e is not events[7]} <= recorded
    pending = await redis.xpending_range(bus.stream, "phones", "-", "+", 10)
    assert len(pending) == 1
    entries = await redis.xrange(bus.stream, pending[0]["message_id"], pending[0]["message_id"])
    assert entries[0][1]["id"] == events[7].id


async def test_batch_skips_recorded_events_and_other_types(
    make_bus: MakeBus, pg: asyncpg.Connection, redis: Redis
) -> None:
    handler = GatedRecorder()
    bus = make_bus(read_count=100)
    bus.subscribe("phones", handler, types=["gate", "offer.created"])
    await bus.start()
    events = [
        new_event(type="offer.created" if n % 3 else "incident.closed", data={"n": n})
        for n in range(12)
    ]
    done_before = events[1]
    await mark_processed(pg, group="phones", event_id=done_before.id)
    await _queue_batch(pg, bus, handler, events)
    wanted = [e for e in events if e.type == "offer.created" and e is not done_before]
    await wait_until(lambda: bus.stats.handled == len(wanted) + 1, what="handled")
    await wait_until(lambda: bus.stats.skipped == 4, what="skipped")
    assert [e.id for e in handler.calls[1:]] == [e.id for e in wanted]
    assert bus.stats.duplicates == 1
    assert (await redis.xpending(bus.stream, "phones"))["pending"] == 0


class GatedBatches:
    """A batch handler: records each call's events; holds the call with the gate event."""

    def __init__(
        self, *, failures: int = 0, before_failing: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self.calls: list[list[Event]] = []
        self.gate = asyncio.Event()
        self.holding = asyncio.Event()  # the gate event arrived and is held
        self.failures = failures
        self.before_failing = before_failing

    async def __call__(self, events: Sequence[Event], ctx: BatchContext) -> None:
        if any(e.type == "gate" for e in events):
            self.holding.set()
            await self.gate.wait()
        self.calls.append(list(events))
        if self.failures and any(e.type != "gate" for e in events):
            self.failures -= 1
            if self.before_failing is not None:
                await self.before_failing()
            raise RuntimeError("publish failed")

    def handled(self) -> int:
        """Events handed to the handler, over every call."""
        return sum(len(call) for call in self.calls)


async def test_batch_handler_gets_a_read_at_once_in_order(
    make_bus: MakeBus, pg: asyncpg.Connection, redis: Redis
) -> None:
    handler = GatedBatches()
    bus = make_bus(read_count=100)
    bus.subscribe_batch("phones", handler, types=["gate", "offer.created"])
    await bus.start()
    events = [
        new_event(type="offer.created" if n % 4 else "incident.closed", data={"n": n})
        for n in range(40)
    ]
    await _queue_batch(pg, bus, handler, events)
    wanted = [e for e in events if e.type == "offer.created"]
    await wait_until(lambda: bus.stats.handled == len(wanted) + 1, what="handled")
    # The gate's call, then the 40 queued entries as one read: one call with the wanted ones.
    assert [[e.id for e in call] for call in handler.calls[1:]] == [[e.id for e in wanted]]
    assert bus.stats.skipped == 10
    wanted_ids = {e.id for e in wanted}
    await wait_until(lambda: _has_recorded(pg, "phones", wanted_ids), what="recorded")
    assert (await redis.xpending(bus.stream, "phones"))["pending"] == 0


async def test_a_redelivered_batch_skips_what_was_recorded(
    make_bus: MakeBus, pg: asyncpg.Connection, redis: Redis
) -> None:
    events = [new_event(type="offer.created", data={"n": n}) for n in range(6)]

    async def recorded_meanwhile() -> None:  # e.g. by a consumer whose ack was lost
        await mark_processed(pg, group="phones", event_id=events[2].id)

    handler = GatedBatches(failures=1, before_failing=recorded_meanwhile)
    bus = make_bus(read_count=100, claim_idle_ms=300)
    bus.subscribe_batch("phones", handler)
    await bus.start()
    await _queue_batch(pg, bus, handler, events)
    await wait_until(lambda: bus.stats.handled == 6, what="handled after the retry")
    assert [e.id for e in handler.calls[1]] == [e.id for e in events]
    assert [e.id for e in handler.calls[2]] == [e.id for e in events if e is not events[2]]
    assert bus.stats.duplicates == 1
    assert (await redis.xpending(bus.stream, "phones"))["pending"] == 0


async def test_failed_batch_is_delivered_again_whole(
    make_bus: MakeBus, pg: asyncpg.Connection, redis: Redis
) -> None:
    handler = GatedBatches(failures=1)
    bus = make_bus(read_count=100, claim_idle_ms=300)
    bus.subscribe_batch("phones", handler)
    await bus.start()
    events = [new_event(type="offer.created", data={"n": n}) for n in range(10)]
    await _queue_batch(pg, bus, handler, events)
    await wait_until(lambda: bus.stats.handled == 11, what="handled after the retry")
    assert bus.stats.failed == 10
    failed, retried = handler.calls[1], handler.calls[2]
    assert [e.id for e in failed] == [e.id for e in retried] == [e.id for e in events]
    assert len(handler.calls) == 3
    ids = {e.id for e in events}
    await wait_until(lambda: _has_recorded(pg, "phones", ids), what="recorded")
    assert (await redis.xpending(bus.stream, "phones"))["pending"] == 0


async def test_batches_are_recorded_together_after_the_handler(
    make_bus: MakeBus, pg: asyncpg.Connection, redis: Redis
) -> None:
    """A batch handler's events are acked at once and recorded later, several reads in one
    INSERT (one transaction: one processed_at)."""
    handler = GatedBatches()
    handler.gate.set()
    bus = make_bus(read_count=100, record_delay_s=3.0)
    bus.subscribe_batch("phones", handler)
    await bus.start()
    await wait_until(lambda: first_pass_done(redis, bus), what="first pass")
    first = [new_event(type="offer.created", data={"n": n}) for n in range(3)]
    second = [new_event(type="offer.created", data={"n": n}) for n in range(3, 5)]
    async with pg.transaction():
        await emit_many(pg, first)
    await wait_until(lambda: handler.handled() == 3, what="first events handled")
    async with pg.transaction():
        await emit_many(pg, second)
    await wait_until(lambda: handler.handled() == 5, what="second events handled")
    ids = {e.id for e in first + second}
    await wait_until(lambda: _has_recorded(pg, "phones", ids), what="recorded", timeout=10)
    stamps = await pg.fetch(
        "SELECT DISTINCT processed_at FROM bus_processed WHERE event_id = ANY($1::text[])",
        list(ids),
    )
    assert len(stamps) == 1
    assert (await redis.xpending(bus.stream, "phones"))["pending"] == 0


async def test_stopping_records_what_was_handled(
    make_bus: MakeBus, pg: asyncpg.Connection, redis: Redis
) -> None:
    handler = GatedBatches()
    handler.gate.set()
    bus = make_bus(read_count=100, record_delay_s=30.0)
    bus.subscribe_batch("phones", handler)
    await bus.start()
    await wait_until(lambda: first_pass_done(redis, bus), what="first pass")
    events = [new_event(type="offer.created", data={"n": n}) for n in range(4)]
    async with pg.transaction():
        await emit_many(pg, events)
    await wait_until(lambda: handler.handled() == 4, what="handled")
    await bus.stop()
    assert await _recorded(pg, "phones") >= {e.id for e in events}


async def test_events_committed_together_reach_a_batch_handler_together(
    make_bus: MakeBus, pg: asyncpg.Connection, redis: Redis
) -> None:
    """The relay publishes a claimed batch in one MULTI/EXEC, so a blocked consumer reads all
    of it at once (an alert's events: one handler call, one query), not the first XADD alone."""
    handler = GatedBatches()
    handler.gate.set()
    bus = make_bus(read_count=100)
    bus.subscribe_batch("phones", handler)
    await bus.start()
    await wait_until(lambda: first_pass_done(redis, bus), what="first pass")
    for round_ in range(3):
        events = [new_event(type="offer.created", data={"n": n}) for n in range(5)]
        async with pg.transaction():
            await emit_many(pg, events)
        expected = 5 * (round_ + 1)
        await wait_until(lambda n=expected: handler.handled() == n, what="handled")
        assert [e.id for e in handler.calls[-1]] == [e.id for e in events]
    assert len(handler.calls) == 3


async def test_a_slow_batch_is_not_reclaimed_by_its_own_consumer(
    make_bus: MakeBus, pg: asyncpg.Connection, redis: Redis
) -> None:
    """A batch that took longer than claim_idle_ms is acked before the consumer looks for
    stalled entries: its ack waits for the next read and its record may be deferred, so the
    consumer would otherwise take it over and handle it again."""
    handler = GatedBatches()
    bus = make_bus(read_count=100, claim_idle_ms=200)
    bus.subscribe_batch("phones", handler)
    await bus.start()
    await wait_until(lambda: first_pass_done(redis, bus), what="first pass")
    await emit_committed(pg, type="gate", data={})
    await wait_until(handler.holding.is_set, what="gate held")

    async def idle_past_claim() -> bool:
        rows = await redis.xpending_range(bus.stream, "phones", "-", "+", 10)
        return bool(rows) and rows[0]["time_since_delivered"] > 400

    await wait_until(idle_past_claim, what="idle past claim_idle_ms")
    handler.gate.set()
    await wait_until(lambda: bus.stats.handled >= 1, what="handled")
    await wait_until(lambda: _nothing_pending(redis, bus), what="nothing pending")
    assert len(handler.calls) == 1
    assert (bus.stats.handled, bus.stats.duplicates) == (1, 0)


async def _nothing_pending(redis: Redis, bus: Bus) -> bool:
    return int((await redis.xpending(bus.stream, "phones"))["pending"]) == 0


async def test_a_read_waits_for_the_workers_alerts_in_flight(
    make_bus: MakeBus, pg: asyncpg.Connection
) -> None:
    foreground = Foreground(max_wait_s=60)
    handled = asyncio.Event()

    async def handler(event: Event, ctx: HandlerContext) -> None:
        handled.set()

    bus = make_bus(foreground=foreground)
    bus.subscribe("phones", handler)
    await bus.start()
    with foreground.busy():
        # Held by the alert in flight (its bound is far away)...
        await emit_committed(pg, type="offer.created", data={})
        published = f"SELECT count(*) = 1 FROM outbox WHERE {PUBLISHED}"
        await wait_until(lambda: pg.fetchval(published), what="published")
        done, _ = await asyncio.wait({asyncio.create_task(handled.wait())}, timeout=0.2)
        assert not done
    # ...and handled as soon as it is done.
    await asyncio.wait_for(handled.wait(), timeout=10)
