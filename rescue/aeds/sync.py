"""Each worker's in-memory AED index, kept in step with PostgreSQL across workers.

Every AED write publishes the AED's id on a Redis pub/sub channel (RELOAD_ALL after a large
import); each worker's subscriber re-reads those AEDs and upserts or removes them. The writing
worker also refreshes its own index at once. A periodic full reload covers messages missed while
Redis was unreachable. The index holds every non-retired AED; `IndexedAed.payload` is a dict
with what a plan shows: id, name, address, lat, lng, level, access_note, opening_hours, indoor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import AsyncIterator, Iterable, Sequence

import asyncpg
from aiohttp import web
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from geo import AedIndex
from rescue.aeds import constants, queries
from rescue.aeds.models import indexed_aed
from rescue.metrics import Metrics
from rescue.typedefs import (
    aed_index_key,
    aed_sync_key,
    background_key,
    db_key,
    metrics_key,
    redis_key,
    settings_key,
)

logger = logging.getLogger(__name__)

_MAX_BATCH = 500
# AEDs compared and applied by the full reload between two turns of the event loop (~2 ms).
RELOAD_SLICE = 250


class AedSync:
    """Applies PostgreSQL's AEDs to one worker's index, one refresh at a time."""

    def __init__(self, *, pool: asyncpg.Pool, index: AedIndex, metrics: Metrics) -> None:
        self.pool = pool
        self.index = index
        self.metrics = metrics
        # Reads and their application are serialized, so the index applies them in read order
        # and an older snapshot never overwrites a newer one.
        self._lock = asyncio.Lock()
        # Loops also check this flag: a cancellation swallowed inside a client library must not
        # keep a worker from shutting down.
        self.stopping = asyncio.Event()
        # Names the subscriber's Redis connection (CLIENT LIST) as this worker's.
        self.client_name = f"rescue-aed-sync-{os.getpid()}-{id(self):x}"

    def _put(self, row: asyncpg.Record) -> None:
        try:
            self.index.upsert(indexed_aed(row))
        except ValueError as exc:  # bad stored data must not stop the others from loading
            logger.error("AED %s left out of the index: %s", row["id"], exc)
            self.index.remove(row["id"])

    async def load_all(self) -> None:
        """Make the index hold exactly the non-retired AEDs (in place: others hold it).

        The rows are compared and applied a slice at a time, letting the worker's other work
        (an alert) run between slices: in one pass, 20,000 AEDs (province scale) held the event
        loop ~85 ms, every minute, in every worker, and the alerts that came meanwhile waited.
        Each AED is replaced whole, so a search between slices sees every AED either as it was
        or as it is now, as when change messages are applied.
        """
        async with self._lock:
            async with self.pool.acquire() as conn:
                rows = await conn.fetch(queries.INDEXABLE_AEDS)
            fresh = {row["id"] for row in rows}
            for aed_id in [aed.id for aed in self.index if aed.id not in fresh]:
                self.index.remove(aed_id)
            for start in range(0, len(rows), RELOAD_SLICE):
                await asyncio.sleep(0)
                for row in rows[start : start + RELOAD_SLICE]:
                    current = self.index.get(row["id"])
                    if current is None or current != indexed_aed(row):
                        self._put(row)
            self.metrics.aed_index_size.set(len(self.index))

    async def refresh(self, ids: Iterable[str]) -> None:
        """Re-read some AEDs into the index (a retired or deleted one leaves it)."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return
        async with self._lock:
            async with self.pool.acquire() as conn:
                rows = await conn.fetch(queries.AEDS_BY_IDS, wanted)
            found = {row["id"]: row for row in rows}
            for aed_id in wanted:
                row = found.get(aed_id)
                if row is None or row["status"] == "retired":
                    self.index.remove(aed_id)
                else:
                    self._put(row)
            self.metrics.aed_index_size.set(len(self.index))

    async def apply(self, messages: Sequence[str]) -> None:
        """Apply change messages (ids, or RELOAD_ALL)."""
        if constants.RELOAD_ALL in messages:
            await self.load_all()
        else:
            await self.refresh(messages)

    async def subscribe_forever(self, redis_url: str) -> None:
        """Follow the change channel; reconnect with backoff while Redis is down."""
        delay = constants.BACKOFF_INITIAL_S
        while not self.stopping.is_set():
            client = Redis.from_url(
                redis_url,
                decode_responses=True,
                socket_connect_timeout=1.0,
                health_check_interval=15,
                client_name=self.client_name,
                retry=Retry(NoBackoff(), 0),
            )
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(channel_of(client))
                # Changes made while not subscribed were missed: catch up once subscribed.
                await self._apply_logged([constants.RELOAD_ALL])
                if delay > constants.BACKOFF_INITIAL_S:
                    logger.info("AED change subscriber reconnected to Redis")
                delay = constants.BACKOFF_INITIAL_S
                while not self.stopping.is_set():
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=constants.POLL_S
                    )
                    if message is None:
                        continue
                    batch = [message["data"]]
                    while len(batch) < _MAX_BATCH:
                        more = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0)
                        if more is None:
                            break
                        batch.append(more["data"])
                    await self._apply_logged(batch)
            except (RedisError, OSError) as exc:
                logger.warning(
                    "AED change subscriber: Redis unavailable (%r), retrying in %.1f s", exc, delay
                )
                await self._pause(delay)
                delay = min(delay * 2, constants.BACKOFF_MAX_S)
            except Exception:  # never let the subscriber die: the index would go stale
                logger.exception("AED change subscriber failed, restarting in %.1f s", delay)
                await self._pause(delay)
                delay = min(delay * 2, constants.BACKOFF_MAX_S)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                with contextlib.suppress(Exception):
                    await client.aclose()

    async def reload_forever(self, interval_s: float = constants.FULL_RELOAD_INTERVAL_S) -> None:
        """The safety net: reload the whole index periodically."""
        while not self.stopping.is_set():
            # Jittered, so that the workers, started together, do not all reload at once.
            await self._pause(interval_s * random.uniform(0.8, 1.2))
            if not self.stopping.is_set():
                await self._apply_logged([constants.RELOAD_ALL])

    async def _pause(self, seconds: float) -> None:
        """Sleep, waking early when the worker stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def stop(self, tasks: Sequence[asyncio.Task[None]]) -> None:
        """Stop the background tasks and wait for them to end."""
        self.stopping.set()
        pending = set(tasks)
        while pending:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=1.0)

    async def _apply_logged(self, messages: Sequence[str]) -> None:
        try:
            await self.apply(messages)
        except (TimeoutError, asyncpg.PostgresError, OSError) as exc:
            logger.warning("AED index refresh failed (%r); the next reload retries", exc)
        except Exception:
            logger.exception("AED index refresh failed; the next reload retries")


def channel_of(redis: Redis) -> str:
    """The change channel for the Redis database this client uses."""
    return constants.changes_channel(int(redis.connection_pool.connection_kwargs.get("db", 0)))


async def publish(redis: Redis, ids: Sequence[str]) -> None:
    """Tell every worker these AEDs changed (best effort: the periodic reload is the net)."""
    if not ids:
        return
    messages = [constants.RELOAD_ALL] if len(ids) > constants.MAX_IDS_PER_ANNOUNCE else ids
    channel = channel_of(redis)
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for message in messages:
                pipe.publish(channel, message)
            await pipe.execute()
    except (RedisError, OSError) as exc:
        logger.warning("could not publish %d AED change(s): %r", len(ids), exc)


async def publish_once(redis_url: str, ids: Sequence[str]) -> None:
    """Publish changes from outside the service (the CLI import)."""
    client = Redis.from_url(
        redis_url, decode_responses=True, socket_connect_timeout=1.0, socket_timeout=2.0
    )
    try:
        await publish(client, ids)
    finally:
        await client.aclose()


async def aeds_changed(app: web.Application, ids: Sequence[str]) -> None:
    """After an AED write: refresh this worker's index now, then tell the other workers."""
    try:
        await app[aed_sync_key].refresh(ids)
    except (TimeoutError, asyncpg.PostgresError, OSError) as exc:
        logger.warning("AED index refresh after a write failed: %r", exc)
    await publish(app[redis_key], ids)


async def aed_index_ctx(app: web.Application) -> AsyncIterator[None]:
    """The AED index, loaded from PostgreSQL and followed across workers (cleanup context)."""
    index = AedIndex()
    sync = AedSync(pool=app[db_key], index=index, metrics=app[metrics_key])
    app[aed_index_key] = index
    app[aed_sync_key] = sync
    await sync.load_all()
    logger.info("AED index loaded: %d AEDs", len(index))
    tasks: list[asyncio.Task[None]] = []
    if app[background_key]:
        tasks = [
            asyncio.create_task(sync.subscribe_forever(app[settings_key].redis_url)),
            asyncio.create_task(sync.reload_forever()),
        ]
    yield
    await sync.stop(tasks)
