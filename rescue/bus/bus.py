"""The Bus: subscriptions, the relay task and one consumer task per group in this worker."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import TypedDict, Unpack

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from rescue.bus import queries
from rescue.bus.constants import DEAD_SUFFIX, EPOCH_SUFFIX, STREAM
from rescue.bus.consumer import Consumer
from rescue.bus.models import BatchHandler, BusStats, Handler, Subscription
from rescue.bus.outbox import OutboxRows
from rescue.bus.relay import CLAIM_LEASE, Relay
from rescue.foreground import Foreground
from rescue.metrics import Metrics

logger = logging.getLogger(__name__)

# How long stop() lets the relay finish the batch it is publishing before cancelling it.
_RELAY_STOP_S = 2.0
_CANCEL_AGAIN_S = 0.5


def default_consumer_name() -> str:
    """A consumer name unique to this process and bus: host, pid and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class BusOptions(TypedDict, total=False):
    """The tuning options of a Bus (keyword arguments of Bus() and Bus.unbound()); the
    defaults are those of Bus._configure."""

    stream: str
    consumer_name: str | None
    claim_idle_ms: int
    block_ms: int
    metrics: Metrics | None
    max_deliveries: int
    poll_interval_s: float
    retention: timedelta
    purge_after: timedelta
    cleanup_interval_s: float
    maxlen: int
    dead_maxlen: int
    batch_size: int
    read_count: int
    backoff_base_s: float
    backoff_max_s: float
    record_delay_s: float
    foreground: Foreground | None


class Bus:
    """The event bus of one worker: a relay plus a consumer per subscribed group."""

    def __init__(
        self, *, pool: asyncpg.Pool, redis: Redis, dsn: str, **options: Unpack[BusOptions]
    ) -> None:
        self._configure(**options)
        self.bind(pool=pool, redis=redis, dsn=dsn)

    @classmethod
    def unbound(cls, **options: Unpack[BusOptions]) -> Bus:
        """A bus to subscribe on now and bind() later (install_bus); options as for Bus()."""
        bus = cls.__new__(cls)
        bus._configure(**options)
        return bus

    def _configure(
        self,
        *,
        stream: str = STREAM,
        consumer_name: str | None = None,
        claim_idle_ms: int = 30_000,
        block_ms: int = 1000,
        metrics: Metrics | None = None,
        max_deliveries: int = 10,
        poll_interval_s: float = 1.0,
        retention: timedelta = timedelta(hours=24),
        purge_after: timedelta = timedelta(days=7),
        cleanup_interval_s: float = 600.0,
        maxlen: int = 100_000,
        dead_maxlen: int = 10_000,
        batch_size: int = 100,
        read_count: int = 100,
        backoff_base_s: float = 0.1,
        backoff_max_s: float = 5.0,
        record_delay_s: float = 0.5,
        foreground: Foreground | None = None,
    ) -> None:
        if claim_idle_ms <= 0 or block_ms <= 0 or max_deliveries <= 0:
            raise ValueError("claim_idle_ms, block_ms and max_deliveries must be positive")
        if batch_size <= 0 or read_count <= 0 or poll_interval_s <= 0:
            raise ValueError("batch_size, read_count and poll_interval_s must be positive")
        self.stream = stream
        self.dead_stream = stream + DEAD_SUFFIX
        self.epoch_key = stream + EPOCH_SUFFIX
        self.consumer_name = consumer_name or default_consumer_name()
        self.claim_idle_ms = claim_idle_ms
        self.block_ms = block_ms
        self.metrics = metrics
        self.max_deliveries = max_deliveries
        self.poll_interval_s = poll_interval_s
        self.retention = retention
        self.purge_after = max(purge_after, retention)
        self.cleanup_interval_s = cleanup_interval_s
        self.maxlen = maxlen
        self.dead_maxlen = dead_maxlen
        self.batch_size = batch_size
        self.read_count = read_count
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        # A batch handler's events are recorded this long after it returns, several reads in
        # one INSERT (see Consumer).
        self.record_delay_s = record_delay_s
        # The worker's alerts in flight, which each read's handling waits for (rescue.foreground).
        self.foreground = foreground
        self.stats = BusStats()
        self.dsn = ""
        self._pool: asyncpg.Pool | None = None
        self._redis: Redis | None = None
        self._subscriptions: dict[str, Subscription] = {}
        self._relay: Relay | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False

    def bind(self, *, pool: asyncpg.Pool, redis: Redis, dsn: str) -> None:
        """Attach the PostgreSQL pool, the Redis client and the DSN (for LISTEN)."""
        if self._started:
            raise RuntimeError("cannot rebind a running bus")
        self._pool = pool
        self._redis = redis
        self.dsn = dsn

    @property
    def pool(self) -> asyncpg.Pool:
        """The PostgreSQL pool."""
        if self._pool is None:
            raise RuntimeError("the bus is not bound to a pool yet (bus_ctx binds it)")
        return self._pool

    @property
    def redis(self) -> Redis:
        """The bus's Redis client."""
        if self._redis is None:
            raise RuntimeError("the bus is not bound to Redis yet (bus_ctx binds it)")
        return self._redis

    @property
    def groups(self) -> list[str]:
        """The subscribed consumer groups."""
        return list(self._subscriptions)

    @property
    def running(self) -> bool:
        """Whether start() ran and stop() has not."""
        return self._started

    @property
    def listening(self) -> bool:
        """Whether the relay's LISTEN connection is up (commits wake it at once)."""
        return self._relay is not None and self._relay.listening

    def subscribe(
        self,
        group: str,
        handler: Handler,
        *,
        types: Iterable[str] | None = None,
        transactional: bool = False,
    ) -> None:
        """Register a consumer group's handler, before start().

        Events of types not in `types` are acknowledged without calling the handler. With
        `transactional=True` the bus opens a transaction, records the event as processed in it,
        passes it as `ctx.conn` and commits it with the handler's effects.
        """
        self._add(
            Subscription(
                group=group,
                handler=handler,
                types=self._types(types),
                transactional=transactional,
            )
        )

    def subscribe_batch(
        self, group: str, handler: BatchHandler, *, types: Iterable[str] | None = None
    ) -> None:
        """Register a handler that takes the events of each read at once, before start().

        For handlers whose effects are idempotent and cheaper together (one query for a batch,
        one pipeline of publishes): the handler gets the batch's events of its types in stream
        order (on a first delivery without looking up whether an event was recorded already: a
        relay that died before stamping an event may have published it twice, and the handler
        takes that in its stride); when it returns they are recorded (one INSERT) and acked;
        when it raises, none is, and each is delivered again after `claim_idle_ms` (and
        dead-lettered after `max_deliveries`) like a failed event of a per-event handler.
        """
        self._add(
            Subscription(
                group=group,
                handler=None,
                types=self._types(types),
                transactional=False,
                batch_handler=handler,
            )
        )

    @staticmethod
    def _types(types: Iterable[str] | None) -> frozenset[str] | None:
        if isinstance(types, str):
            raise TypeError("types must be an iterable of type names, not one string")
        return None if types is None else frozenset(types)

    def _add(self, subscription: Subscription) -> None:
        group = subscription.group
        if self._started:
            raise RuntimeError("subscribe() must be called before the bus starts")
        if not group or len(group) > 200 or any(c.isspace() for c in group):
            raise ValueError(f"bad consumer group name {group!r}")
        if group in self._subscriptions:
            raise ValueError(f"consumer group {group!r} is already subscribed")
        self._subscriptions[group] = subscription

    async def start(self) -> None:
        """Register the groups, then start the relay and one consumer task per group."""
        if self._started:
            raise RuntimeError("the bus is already running")
        async with self.pool.acquire() as conn:
            await conn.executemany(
                queries.REGISTER_GROUP,
                [
                    (s.group, None if s.types is None else sorted(s.types))
                    for s in self._subscriptions.values()
                ],
            )
        for group in self._subscriptions:
            try:
                await self.ensure_group(group, start="$")
            except Exception as exc:
                logger.warning(
                    "bus: cannot create group %r in redis yet (%r); its consumer will retry",
                    group,
                    exc,
                )
        self._started = True
        self._relay = Relay(self)
        self._tasks = [asyncio.create_task(self._relay.run(), name="bus-relay")]
        for sub in self._subscriptions.values():
            consumer = Consumer(self, sub)
            self._tasks.append(asyncio.create_task(consumer.run(), name=f"bus-{sub.group}"))
        logger.info(
            "bus started: stream %s, consumer %s, groups %s",
            self.stream,
            self.consumer_name,
            ", ".join(self._subscriptions) or "(relay only)",
        )

    async def stop(self) -> None:
        """Cancel and await the relay and the consumers; an entry mid-handling stays pending."""
        tasks, self._tasks = self._tasks, []
        if self._relay is not None and tasks:
            self._relay.request_stop()
            relay_task = tasks[0]  # start() creates it first
            await asyncio.wait([relay_task], timeout=_RELAY_STOP_S)
        running = set(tasks)
        while running:
            # Again until done: a cancellation can be swallowed inside a library call.
            for task in running:
                task.cancel()
            _, running = await asyncio.wait(running, timeout=_CANCEL_AGAIN_S)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for task, result in zip(tasks, results, strict=True):
            if isinstance(result, Exception):
                logger.error("bus task %s ended with %r", task.get_name(), result)
        if self._started:
            await self._forget_consumer()
        self._relay = None
        self._started = False

    @property
    def publishing(self) -> bool:
        """Whether this worker's relay runs (publish_committed would publish)."""
        return self._relay is not None

    @property
    def claim_lease(self) -> timedelta:
        """The claim a producer takes on outbox rows it will publish itself."""
        return CLAIM_LEASE

    def publish_committed(
        self, outbox: OutboxRows, outbox_ids: Sequence[int], *, done: Sequence[str] = ()
    ) -> None:
        """Publish now, from this worker, events (`outbox_rows`, as the producer inserted them:
        the data already encoded) whose outbox rows (`outbox_ids`) the producer's commit
        claimed for `claim_lease` (rather than notifying the relays); the relay stamps them.
        The producer does not wait. Without a running relay nothing happens here: another
        worker's relay publishes the rows once the claim is over.

        `done` names groups whose work on these events the same commit did (dispatch's alert
        statement queues their callbacks): those groups record and ack them without calling
        their handler. Only these entries say so; should a relay publish the rows instead (the
        XADD failed, the worker died), every group's handler gets them, and must find its
        work done (it is idempotent)."""
        if self._relay is not None:
            self._relay.publish_committed(outbox, outbox_ids, done)

    def wake(self) -> None:
        """Make the relay run a pass now (an emit's NOTIFY does this across processes)."""
        if self._relay is not None:
            self._relay.wake()

    async def relay_once(self) -> int:
        """Publish the committed, unpublished outbox rows now; the number published."""
        return await (self._relay or Relay(self)).drain()

    async def replay_if_lost(self) -> int | None:
        """Replay the outbox if Redis lost the bus; the number replayed or None."""
        return await (self._relay or Relay(self)).replay_if_lost()

    async def cleanup(self) -> int:
        """Delete published outbox rows no group owes past retention; the number deleted."""
        deleted = 0
        async with self.pool.acquire() as conn:
            while True:
                status = await conn.execute(
                    queries.DELETE_OLD_OUTBOX, self.retention, self.purge_after, 5000
                )
                count = int(status.split()[-1])
                deleted += count
                if count < 5000:
                    break
            while True:
                status = await conn.execute(queries.DELETE_OLD_PROCESSED, self.purge_after, 5000)
                if int(status.split()[-1]) < 5000:
                    break
        self.stats.cleaned += deleted
        if deleted:
            logger.info("bus: deleted %d old outbox rows", deleted)
        return deleted

    async def ensure_group(self, group: str, *, start: str = "$") -> bool:
        """Create the consumer group (and the stream) if missing; True when created."""
        try:
            await self.redis.xgroup_create(self.stream, group, id=start, mkstream=True)
        except ResponseError as exc:
            if str(exc).startswith("BUSYGROUP"):
                return False
            raise
        return True

    async def _forget_consumer(self) -> None:
        """Remove this process's consumers that hold no pending entries (keeps XINFO tidy)."""
        try:
            async with asyncio.timeout(1.0):
                for group in self._subscriptions:
                    pending = await self.redis.xpending_range(
                        self.stream, group, "-", "+", 1, consumername=self.consumer_name
                    )
                    if not pending:
                        await self.redis.xgroup_delconsumer(self.stream, group, self.consumer_name)
        except Exception as exc:
            logger.debug("bus: could not remove consumer %s: %r", self.consumer_name, exc)
