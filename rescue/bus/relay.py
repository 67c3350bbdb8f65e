"""The relay: moves committed outbox rows onto the Redis Stream; refills a Redis that lost it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import asyncpg

from rescue.bus import queries
from rescue.bus.constants import LISTEN_LOCK, NOTIFY_CHANNEL, REPLAY_LOCK
from rescue.bus.models import to_fields
from rescue.bus.outbox import OutboxRows
from rescue.bus.retry import Backoff, Outage, last_try, raise_if_cancelling
from rescue.ids import new_id

if TYPE_CHECKING:
    from rescue.bus.bus import Bus

logger = logging.getLogger(__name__)

# The epoch marker holds this prefix while a replay is under way.
_REPLAYING = "replaying:"
# Compare-and-set: the replay is complete only if its 'replaying' mark survived it.
_FINISH_REPLAY = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2])
    return 1
end
return 0
"""

# How long to poll only, after the LISTEN connection could not be opened, before trying again.
_LISTEN_RETRY_S = 5.0
# A relay's claim on the rows it is publishing: past it (the relay died between the XADD and the
# stamp) another relay publishes them again.
CLAIM_LEASE = timedelta(seconds=15)
# The epoch marker is read at most this often, not on every wake-up: events published to a Redis
# that lost the bus meanwhile are not recorded by any group, so the replay still brings them.
_EPOCH_CHECK_S = 1.0
# A pass that published something runs again this soon (to stamp it with its claim) if no
# commit wakes the relay first; far inside CLAIM_LEASE.
STAMP_DELAY_S = 0.2
# How long a stopping relay waits for the producers' publications in flight.
_DIRECT_STOP_S = 1.0


class Relay:
    """One worker's relay; every worker runs one and they share the outbox (SKIP LOCKED)."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._listener: asyncpg.Connection | None = None
        self._listen_retry_at = 0.0
        self._leading = False
        self._listen_outage = Outage(logger, "bus relay LISTEN")
        self._outage = Outage(logger, "bus relay")
        self._backoff = Backoff(base_s=bus.backoff_base_s, cap_s=bus.backoff_max_s)
        self._next_cleanup = time.monotonic() + bus.cleanup_interval_s
        self._next_epoch_check = 0.0
        # Rows published by this relay, stamped with its next claim.
        self._unstamped: set[int] = set()
        # Publications of rows a producer's own commit claimed (publish_committed).
        self._direct: set[asyncio.Task[None]] = set()
        self._stamp_scheduled = False

    @property
    def listening(self) -> bool:
        """Whether this relay listens (it holds the leader lock on a live connection)."""
        return self._leading and self._listener is not None and not self._listener.is_closed()

    def wake(self) -> None:
        """Run a pass now (also what a NOTIFY from a committed emit does)."""
        self._wake.set()

    def request_stop(self) -> None:
        """Finish the current pass, then return from run() (a cancel could leave a batch
        published to Redis but not marked, so it would be published again)."""
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        """Relay until stopped: on every NOTIFY, and every poll interval as a fallback."""
        try:
            while not self._stopping.is_set():
                raise_if_cancelling()
                await self._listen()
                self._wake.clear()
                try:
                    if time.monotonic() >= self._next_epoch_check:
                        await self.replay_if_lost()
                        self._next_epoch_check = time.monotonic() + _EPOCH_CHECK_S
                    await self.drain(defer_stamp=True)
                    if time.monotonic() >= self._next_cleanup:
                        self._next_cleanup = time.monotonic() + self._bus.cleanup_interval_s
                        await self._bus.cleanup()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._bus.stats.relay_errors += 1
                    self._outage.failed(exc)
                    await _wait(self._stopping, self._backoff.delay())
                    continue
                self._bus.stats.relay_passes += 1
                self._outage.recovered()
                self._backoff.reset()
                await _wait(
                    self._wake, STAMP_DELAY_S if self._unstamped else self._bus.poll_interval_s
                )
        finally:
            if self._direct:  # what they publish is stamped below
                await asyncio.wait(self._direct, timeout=_DIRECT_STOP_S)
            await self._stamp_on_exit()
            await self._close_listener()

    async def drain(self, *, defer_stamp: bool = False) -> int:
        """Publish every committed, unpublished outbox row; the number published.

        One statement per batch: the claim (a lease), which also stamps the batch published
        before it. With `defer_stamp` the last batch stays unstamped until the next pass's
        claim (the run loop passes within `STAMP_DELAY_S`): under a stream of commits, each
        pass costs one statement, not two. Its lease keeps it from being published again
        meanwhile; a relay that dies before the stamp only lets it be published twice.
        """
        bus = self._bus
        total = 0
        while True:
            rows = await self._claim()
            if not rows:
                break
            rows = sorted(rows, key=lambda r: r["id"])
            ids = [r["id"] for r in rows]
            try:
                await self._publish(rows)
            except BaseException:
                with contextlib.suppress(Exception):
                    await bus.pool.execute(queries.RELEASE_CLAIM, ids)
                raise
            self._unstamped.update(ids)
            total += len(rows)
            bus.stats.published += len(rows)
            if len(rows) < bus.batch_size:
                break
        if not defer_stamp:
            await self.stamp()
        return total

    def publish_committed(
        self, outbox: OutboxRows, ids: Sequence[int], done: Sequence[str] = ()
    ) -> None:
        """Publish events (`outbox_rows`, data already encoded) whose outbox rows (`ids`) the
        producer's commit claimed for CLAIM_LEASE, without the producer waiting; they are
        stamped with this relay's next claim (within STAMP_DELAY_S). If the XADD fails the
        claim is given back and a pass runs, so they are published as any other row (without
        `done`, the groups whose work the commit did: see Bus.publish_committed)."""
        entries = [
            to_fields(event_id=event_id, type=type_, key=key, data_json=data, at=at, done=done)
            for event_id, type_, key, data, at in zip(*outbox, strict=True)
        ]
        task = asyncio.create_task(self._publish_committed(entries, list(ids)))
        self._direct.add(task)
        task.add_done_callback(self._direct.discard)

    async def _publish_committed(self, entries: list[dict[str, str]], ids: list[int]) -> None:
        bus = self._bus
        try:
            await self._xadd(entries)
        except Exception as exc:
            logger.warning("bus: publishing %d committed events failed: %r", len(ids), exc)
            with contextlib.suppress(Exception):
                await bus.pool.execute(queries.RELEASE_CLAIM, ids)
            self._wake.set()
            return
        self._unstamped.update(ids)
        bus.stats.published += len(ids)
        bus.stats.published_by_producer += len(ids)
        if not self._stamp_scheduled:
            self._stamp_scheduled = True
            asyncio.get_running_loop().call_later(STAMP_DELAY_S, self._stamp_soon)

    def _stamp_soon(self) -> None:
        self._stamp_scheduled = False
        self._wake.set()

    async def stamp(self) -> None:
        """Stamp the published rows not stamped yet."""
        if self._unstamped:
            ids = list(self._unstamped)
            await self._bus.pool.execute(queries.MARK_PUBLISHED, ids)
            self._unstamped.difference_update(ids)

    async def _claim(self) -> list[asyncpg.Record]:
        """Claim the next batch, stamping the last one in the same statement."""
        bus = self._bus
        stamped = list(self._unstamped)
        rows = await bus.pool.fetch(queries.CLAIM_UNPUBLISHED, bus.batch_size, CLAIM_LEASE, stamped)
        # Only once the statement ran: a failure keeps them for the next try.
        self._unstamped.difference_update(stamped)
        return list(rows)

    async def replay_if_lost(self) -> int | None:
        """If Redis lost the bus (no epoch marker), re-publish what some group still owes.

        Returns the number replayed, or None when Redis still had the bus (or another relay
        is replaying it right now).
        """
        bus = self._bus
        if _complete(await bus.redis.get(bus.epoch_key)):
            return None
        async with bus.pool.acquire() as conn, conn.transaction():
            # The lock also tells a 'replaying' marker left by a relay that died (lock free)
            # from one still at work (lock held).
            if not await conn.fetchval(queries.TRY_REPLAY_LOCK, REPLAY_LOCK, bus.stream):
                return None
            if _complete(await bus.redis.get(bus.epoch_key)):
                return None
            epoch = new_id("epo")
            # Marked before publishing: a flush during the replay deletes the mark, so the
            # final compare-and-set fails and the next pass replays again.
            await bus.redis.set(bus.epoch_key, _REPLAYING + epoch)
            # The groups must exist before the replay, reading from the start of the stream,
            # so that nothing added since Redis came back empty is skipped by a group created
            # later at '$'.
            for record in await conn.fetch(queries.GROUP_NAMES):
                await bus.ensure_group(record["name"], start="0")
            count = 0
            last_id = 0
            while True:
                rows = await conn.fetch(queries.REPLAYABLE, bus.retention, last_id, bus.batch_size)
                if not rows:
                    break
                await self._publish(rows)
                await conn.execute(queries.MARK_REPLAYED, [r["id"] for r in rows])
                count += len(rows)
                last_id = rows[-1]["id"]
            finished = await bus.redis.eval(
                _FINISH_REPLAY, 1, bus.epoch_key, _REPLAYING + epoch, epoch
            )
        bus.stats.replays += 1
        bus.stats.replayed += count
        logger.info(
            "bus: no epoch marker in redis (first start, restart or flush): replayed %d events "
            "onto %s%s",
            count,
            bus.stream,
            "" if finished else "; redis lost them again meanwhile, replaying once more",
        )
        return count

    async def _publish(self, rows: Sequence[asyncpg.Record]) -> None:
        await self._xadd([_entry(row) for row in rows])

    async def _xadd(self, entries: Sequence[dict[str, str]]) -> None:
        bus = self._bus
        # MULTI/EXEC: a consumer blocked in XREADGROUP is served after the EXEC, so it reads
        # the batch at once (an alert's events in one handler call), not after the first XADD.
        async with bus.redis.pipeline(transaction=True) as pipe:
            for entry in entries:
                pipe.xadd(
                    bus.stream,
                    entry,  # type: ignore[arg-type]
                    maxlen=bus.maxlen,
                    approximate=True,
                )
            await pipe.execute()

    async def _stamp_on_exit(self) -> None:
        """Best effort when stopping: an unstamped row is published again after its lease."""
        if self._unstamped:
            what = f"{len(self._unstamped)} published outbox rows unstamped"
            await last_try(self.stamp, logger, what)

    async def _listen(self) -> None:
        """Keep a connection; LISTEN on it while it holds the relays' leader lock.

        One relay per database listens (a session advisory lock on its connection, released
        when the connection ends): a commit wakes that one relay, not one per worker that would
        find nothing left to claim. The others poll every `poll_interval_s` and take the lock
        over when its holder's connection is gone.
        """
        conn = self._listener
        if conn is not None and conn.is_closed():
            conn = self._listener = None
            self._leading = False
            logger.info("bus relay: LISTEN connection lost; reconnecting (polling meanwhile)")
        if self._leading:
            return
        if conn is None and time.monotonic() < self._listen_retry_at:
            return
        try:
            if conn is None:
                conn = await asyncpg.connect(self._bus.dsn, timeout=5)
                self._listener = conn
            if not await conn.fetchval(queries.TRY_LISTEN_LOCK, LISTEN_LOCK, self._bus.stream):
                return  # another relay listens; this one polls
            await conn.add_listener(NOTIFY_CHANNEL, self._notified)
        except asyncio.CancelledError:
            self._drop_listener()
            raise
        except Exception as exc:
            self._drop_listener()
            self._listen_outage.failed(exc)
            self._listen_retry_at = time.monotonic() + _LISTEN_RETRY_S
            return
        self._listen_outage.recovered()
        self._leading = True

    def _drop_listener(self) -> None:
        conn, self._listener = self._listener, None
        self._leading = False
        if conn is not None:
            conn.terminate()

    def _notified(self, conn: Any, pid: int, channel: str, payload: object) -> None:
        self._wake.set()

    async def _close_listener(self) -> None:
        conn, self._listener = self._listener, None
        self._leading = False
        if conn is None or conn.is_closed():
            return
        try:
            async with asyncio.timeout(1.0):
                await conn.close()
        except Exception:
            conn.terminate()
        except asyncio.CancelledError:
            conn.terminate()
            raise


def _complete(epoch: str | bytes | None) -> bool:
    if isinstance(epoch, bytes):
        epoch = epoch.decode()
    return epoch is not None and not epoch.startswith(_REPLAYING)


async def _wait(event: asyncio.Event, timeout_s: float) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        pass


def _entry(row: asyncpg.Record) -> dict[str, str]:
    return to_fields(
        event_id=row["event_id"],
        type=row["type"],
        key=row["key"],
        data_json=row["data"],
        at=row["occurred_at"],
    )
