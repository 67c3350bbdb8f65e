"""One consumer group's consumer in this worker: read, reclaim the stalled, handle, ack."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from redis.exceptions import ResponseError

from rescue.bus import queries
from rescue.bus.models import BatchContext, Event, HandlerContext, Subscription, from_fields
from rescue.bus.outbox import mark_dead, mark_processed
from rescue.bus.retry import Backoff, Outage, last_try, raise_if_cancelling

if TYPE_CHECKING:
    from rescue.bus.bus import Bus

logger = logging.getLogger(__name__)

_ERROR_CHARS = 1000


def _group_gone(exc: ResponseError) -> bool:
    # NOGROUP: the stream or group does not exist; UNBLOCKED: the stream was deleted while
    # this consumer was blocked on it (FLUSHDB, a Redis restart).
    message = str(exc)
    return message.startswith("NOGROUP") or message.startswith("UNBLOCKED")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# (entry id, fields, delivery count) of one stream entry to deliver.
Delivery: TypeAlias = tuple[str, Mapping[Any, Any], int]


@dataclass
class _Batch:
    """What a batch owes once its handlers ran: records to write, entries to ack, counts."""

    record: list[str] = field(default_factory=list)
    ack: list[str] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    # Event ids already recorded or handled: a repeat in the batch is a duplicate.
    done: set[str] = field(default_factory=set)
    # A batch handler's events, handled together after the read's other entries.
    pending: list[tuple[str, Mapping[Any, Any], int, Event]] = field(default_factory=list)

    def acked(self, entry_id: str, outcome: str) -> None:
        """Ack the entry at the next flush and count its outcome then."""
        self.ack.append(entry_id)
        self.outcomes.append(outcome)


class Consumer:
    """Runs one subscription: XREADGROUP for new entries, XAUTOCLAIM for stalled ones."""

    def __init__(self, bus: Bus, subscription: Subscription) -> None:
        self._bus = bus
        self._sub = subscription
        self._outage = Outage(logger, f"bus consumer {subscription.group!r}")
        self._backoff = Backoff(base_s=bus.backoff_base_s, cap_s=bus.backoff_max_s)
        self._claim_cursor = "0-0"
        self._next_claim = 0.0
        # The last batch's acks and their outcomes, sent with the next XREADGROUP (one round
        # trip for both); counted once sent, so a counted event is an acked one.
        self._acks: list[str] = []
        self._outcomes: list[str] = []
        # A batch handler's handled events not yet recorded, and when they are due.
        self._unrecorded: list[str] = []
        self._record_due = 0.0

    async def run(self) -> None:
        """Consume until cancelled; an entry being handled when cancelled stays pending."""
        try:
            await self._consume()
        finally:
            await self._record_on_exit()

    async def _consume(self) -> None:
        bus = self._bus
        while True:
            raise_if_cancelling()
            try:
                if time.monotonic() >= self._next_claim:
                    await self._reclaim()
                    # Half the idle time: a stalled entry waits at most 1.5x claim_idle_ms.
                    self._next_claim = time.monotonic() + bus.claim_idle_ms / 2000
                reply = await self._ack_and_read()
                await self._deliver_batch([(i, f, 1) for i, f in _entries(reply)])
                if self._unrecorded and time.monotonic() >= self._record_due:
                    await self._write_records()
            except asyncio.CancelledError:
                raise
            except ResponseError as exc:
                if _group_gone(exc):
                    await self._recreate_group(exc)
                    continue
                bus.stats.consumer_errors += 1
                self._outage.failed(exc)
                await self._backoff.sleep()
                continue
            except Exception as exc:
                bus.stats.consumer_errors += 1
                self._outage.failed(exc)
                await self._backoff.sleep()
                continue
            self._outage.recovered()
            self._backoff.reset()

    async def _ack_and_read(self) -> Any:
        """XACK the last batch (if any) and XREADGROUP the next, in one pipeline."""
        bus = self._bus
        group = self._sub.group
        acks, outcomes = self._take_acks()
        block_ms = bus.block_ms
        if self._unrecorded:
            # Wake for the deferred records even when nothing new comes.
            due_ms = int((self._record_due - time.monotonic()) * 1000)
            block_ms = max(1, min(block_ms, due_ms))
        read = {"count": bus.read_count, "block": block_ms}
        if not acks:
            return await bus.redis.xreadgroup(group, bus.consumer_name, {bus.stream: ">"}, **read)
        # A failure loses these acks: the entries come back by XAUTOCLAIM and are recognised as
        # duplicates where recorded (a batch handler's deferred record may not be yet: it is
        # idempotent).
        async with bus.redis.pipeline(transaction=False) as pipe:
            pipe.xack(bus.stream, group, *acks)
            pipe.xreadgroup(group, bus.consumer_name, {bus.stream: ">"}, **read)
            _, reply = await pipe.execute()
        self._count_outcomes(outcomes)
        return reply

    def _take_acks(self) -> tuple[list[str], list[str]]:
        """The acks the last batch left for the next read, and their outcomes; now owed by
        the caller."""
        taken = self._acks, self._outcomes
        self._acks, self._outcomes = [], []
        return taken

    async def _recreate_group(self, exc: ResponseError) -> None:
        logger.info("bus: group %r is gone from redis (%s); recreating it", self._sub.group, exc)
        try:
            # '$': a group that is new to this stream starts at its end; after a flush the relay
            # recreates every known group at '0' before it replays the outbox.
            await self._bus.ensure_group(self._sub.group, start="$")
        except asyncio.CancelledError:
            raise
        except Exception as err:
            self._bus.stats.consumer_errors += 1
            self._outage.failed(err)
            await self._backoff.sleep()

    async def _reclaim(self) -> None:
        """Take over entries idle longer than claim_idle_ms (their consumer died or failed)."""
        bus = self._bus
        group = self._sub.group
        if self._acks:
            # This consumer's own handled entries first: their acks wait for the next read,
            # and their records may be deferred, so reclaiming them would handle them again.
            acks, outcomes = self._take_acks()
            await bus.redis.xack(bus.stream, group, *acks)
            self._count_outcomes(outcomes)
        while True:
            reply = await bus.redis.xautoclaim(
                bus.stream,
                group,
                bus.consumer_name,
                min_idle_time=bus.claim_idle_ms,
                start_id=self._claim_cursor,
                count=bus.batch_size,
            )
            self._claim_cursor = _text(reply[0])
            claimed = [(_text(i), f) for i, f in reply[1] if i is not None]
            if claimed:
                counts = await self._delivery_counts([i for i, _ in claimed])
                await self._deliver_batch([(i, f, counts.get(i, 2)) for i, f in claimed])
            if self._claim_cursor in ("0-0", "0"):
                return

    async def _delivery_counts(self, entry_ids: list[str]) -> dict[str, int]:
        bus = self._bus
        async with bus.redis.pipeline(transaction=False) as pipe:
            for entry_id in entry_ids:
                pipe.xpending_range(bus.stream, self._sub.group, entry_id, entry_id, 1)
            replies = await pipe.execute()
        counts: dict[str, int] = {}
        for reply in replies:
            for item in reply:
                counts[_text(item["message_id"])] = int(item["times_delivered"])
        return counts

    async def _deliver_batch(self, entries: Sequence[Delivery]) -> None:
        """Handle entries in stream order; record, then ack the handled ones together."""
        if not entries:
            return
        bus = self._bus
        if bus.foreground is not None:
            # Background work: the worker's alerts in flight finish first (bounded).
            await bus.foreground.idle()
        sub = self._sub
        parsed: list[tuple[str, Mapping[Any, Any], int, Event | Exception]] = []
        for entry_id, fields, attempt in entries:
            try:
                parsed.append((entry_id, fields, attempt, from_fields(fields)))
            except (KeyError, ValueError, TypeError) as exc:
                parsed.append((entry_id, fields, attempt, exc))
        wanted = [
            e.id
            for _, _, attempt, e in parsed
            if isinstance(e, Event)
            and (sub.types is None or e.type in sub.types)
            and attempt <= bus.max_deliveries
        ]
        batch = _Batch()
        # Flush well before claim_idle_ms so a slow batch's handled entries are not reclaimed.
        flush_every = bus.claim_idle_ms / 2000
        flush_at = time.monotonic() + flush_every
        # A batch handler is idempotent: a first delivery is not looked up (a round trip per read
        # saved); a redelivery, which may have been handled before its ack was lost, still is.
        lookup = sub.batch_handler is None or any(attempt > 1 for _, _, attempt, _ in parsed)
        try:
            if wanted and lookup:
                rows = await bus.pool.fetch(queries.PROCESSED_AMONG, sub.group, wanted)
                batch.done.update(row["event_id"] for row in rows)
            for entry_id, fields, attempt, event in parsed:
                raise_if_cancelling()
                await self._deliver(entry_id, fields, attempt, event, batch)
                if time.monotonic() >= flush_at:
                    await self._flush(batch)
                    flush_at = time.monotonic() + flush_every
            await self._handle_pending(batch)
        except BaseException:
            # Stopped or failed mid-batch: keep what is done, only the rest is redelivered.
            with contextlib.suppress(Exception):
                await self._flush(batch)
            raise
        await self._flush(batch, ack_with_next_read=True)

    async def _deliver(
        self,
        entry_id: str,
        fields: Mapping[Any, Any],
        attempt: int,
        event: Event | Exception,
        batch: _Batch,
    ) -> None:
        bus = self._bus
        sub = self._sub
        if isinstance(event, Exception):
            await self._dead_letter(entry_id, fields, None, f"malformed entry: {event!r}", attempt)
            return
        if sub.types is not None and event.type not in sub.types:
            batch.acked(entry_id, "skipped")
            return
        if attempt > bus.max_deliveries:
            reason = f"delivered {attempt} times without being acknowledged"
            await self._dead_letter(entry_id, fields, event.id, reason, attempt)
            return
        if event.id in batch.done:
            batch.acked(entry_id, "duplicates")
            return
        if sub.group in event.done:
            # The producer's commit did this group's work (Bus.publish_committed): recorded
            # and acked as if handled, the handler not called.
            batch.done.add(event.id)
            if sub.batch_handler is not None:
                self._defer_record(event.id)
            else:
                batch.record.append(event.id)
            batch.acked(entry_id, "served")
            return
        if sub.batch_handler is not None:
            batch.done.add(event.id)
            batch.pending.append((entry_id, fields, attempt, event))
            return
        ctx = HandlerContext(
            pool=bus.pool,
            redis=bus.redis,
            attempt=attempt,
            group=sub.group,
            consumer=bus.consumer_name,
            event_id=event.id,
            entry_id=entry_id,
        )
        if sub.transactional:
            outcome = await self._handle_in_transaction(event, ctx)
        else:
            outcome = await self._handle(event, ctx)
        if isinstance(outcome, Exception):
            await self._failed(entry_id, fields, event, attempt, outcome)
            return
        batch.done.add(event.id)
        if not ctx._claimed:
            batch.record.append(event.id)
        batch.acked(entry_id, outcome)

    async def _handle_pending(self, batch: _Batch) -> None:
        """A batch handler's call: all its events recorded and acked, or all failed."""
        pending, batch.pending = batch.pending, []
        handler = self._sub.batch_handler
        if not pending or handler is None:
            return
        bus = self._bus
        ctx = BatchContext(
            pool=bus.pool, redis=bus.redis, group=self._sub.group, consumer=bus.consumer_name
        )
        try:
            await handler([event for _, _, _, event in pending], ctx)
        except Exception as exc:
            for entry_id, fields, attempt, event in pending:
                await self._failed(entry_id, fields, event, attempt, exc)
            return
        for entry_id, _, _, event in pending:
            self._defer_record(event.id)
            batch.acked(entry_id, "handled")

    def _defer_record(self, event_id: str) -> None:
        """Record a batch handler's event with the next reads' (bus.record_delay_s).

        A batch handler is idempotent: its events are acked at once and recorded together,
        so a record lost with the worker only lets an event be delivered again. A per-event
        handler's record, which dedupes redeliveries, is written before the ack, as ever.
        """
        if not self._unrecorded:
            self._record_due = time.monotonic() + self._bus.record_delay_s
        self._unrecorded.append(event_id)

    async def _write_records(self) -> None:
        """Record the batch handler's handled events (one INSERT for several batches)."""
        ids = list(self._unrecorded)
        await self._bus.pool.execute(queries.MARK_PROCESSED_MANY, self._sub.group, ids)
        # Only now: a failed INSERT keeps them for the next try.
        del self._unrecorded[: len(ids)]

    async def _record_on_exit(self) -> None:
        """Best effort when stopping: what is left unrecorded may be delivered again."""
        if self._unrecorded:
            what = f"{len(self._unrecorded)} handled events of group {self._sub.group!r} unrecorded"
            await last_try(self._write_records, logger, what)

    async def _flush(self, batch: _Batch, *, ack_with_next_read: bool = False) -> None:
        """Record the handled events (one INSERT), then ack their entries (one XACK, or with
        the next XREADGROUP at the end of a batch)."""
        bus = self._bus
        if batch.record:
            await bus.pool.execute(queries.MARK_PROCESSED_MANY, self._sub.group, batch.record)
            batch.record.clear()
        if ack_with_next_read:
            self._acks.extend(batch.ack)
            self._outcomes.extend(batch.outcomes)
            batch.ack.clear()
            batch.outcomes.clear()
            return
        if batch.ack:
            await bus.redis.xack(bus.stream, self._sub.group, *batch.ack)
            batch.ack.clear()
        self._count_outcomes(batch.outcomes)
        batch.outcomes.clear()

    async def _handle(self, event: Event, ctx: HandlerContext) -> str | Exception:
        """The handler; the batch records the event unless the handler claimed it itself."""
        assert self._sub.handler is not None
        try:
            await self._sub.handler(event, ctx)
        except Exception as exc:
            return exc
        return "handled"

    async def _handle_in_transaction(self, event: Event, ctx: HandlerContext) -> str | Exception:
        """Record and handler in one transaction: the effects and the record commit together."""
        try:
            async with self._bus.pool.acquire() as conn, conn.transaction():
                if not await mark_processed(conn, group=ctx.group, event_id=event.id):
                    return "duplicates"
                ctx._conn = conn
                ctx._claimed = True
                assert self._sub.handler is not None
                try:
                    await self._sub.handler(event, ctx)
                finally:
                    ctx._conn = None
        except Exception as exc:
            return exc
        return "handled"

    async def _failed(
        self,
        entry_id: str,
        fields: Mapping[Any, Any],
        event: Event,
        attempt: int,
        exc: Exception,
    ) -> None:
        bus = self._bus
        self._count("failed")
        if attempt >= bus.max_deliveries:
            await self._dead_letter(entry_id, fields, event.id, repr(exc), attempt, exc=exc)
            return
        logger.warning(
            "bus: group %r failed on event %s (%s), attempt %d of %d; retried after %d ms",
            self._sub.group,
            event.id,
            event.type,
            attempt,
            bus.max_deliveries,
            bus.claim_idle_ms,
            exc_info=exc,
        )

    async def _dead_letter(
        self,
        entry_id: str,
        fields: Mapping[Any, Any],
        event_id: str | None,
        reason: str,
        attempt: int,
        *,
        exc: Exception | None = None,
    ) -> None:
        """Move the entry to the dead-letter stream, record it, ack it; one error log line."""
        bus = self._bus
        group = self._sub.group
        dead = {_text(k): _text(v) for k, v in fields.items()}
        dead.update(group=group, entry=entry_id, attempts=str(attempt), error=reason[:_ERROR_CHARS])
        await bus.redis.xadd(
            bus.dead_stream,
            dead,  # type: ignore[arg-type]
            maxlen=bus.dead_maxlen,
            approximate=True,
        )
        if event_id is not None:
            await mark_dead(bus.pool, group=group, event_id=event_id)
        await bus.redis.xack(bus.stream, group, entry_id)
        self._count("dead")
        logger.error(
            "bus: group %r gave up on event %s (entry %s) after %d deliveries: %s; moved to %s",
            group,
            event_id,
            entry_id,
            attempt,
            reason,
            bus.dead_stream,
            exc_info=exc,
        )

    def _count_outcomes(self, outcomes: list[str]) -> None:
        for outcome, n in Counter(outcomes).items():
            self._count(outcome, n)

    def _count(self, result: str, n: int = 1) -> None:
        stats = self._bus.stats
        setattr(stats, result, getattr(stats, result) + n)
        metrics = self._bus.metrics
        if metrics is not None:
            metrics.events.labels(group=self._sub.group, result=result).inc(n)


def _entries(reply: Any) -> list[tuple[str, Mapping[Any, Any]]]:
    """The (entry id, fields) of an XREADGROUP reply (RESP2 list or RESP3 map)."""
    if not reply:
        return []
    streams = reply.items() if isinstance(reply, dict) else reply
    found: list[tuple[str, Mapping[Any, Any]]] = []
    for _stream, messages in streams:
        for message in messages or []:
            entry_id, fields = message[0], message[1]
            if fields is not None:
                found.append((_text(entry_id), fields))
    return found
