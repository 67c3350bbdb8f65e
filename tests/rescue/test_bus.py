"""The event bus: outbox, relay, consumer groups, idempotency (real PostgreSQL and Redis)."""

from __future__ import annotations

import asyncio
import json
import math
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import pytest
from redis.asyncio import Redis

from rescue.bus import Bus, Event, HandlerContext, emit, mark_processed, processed
from rescue.bus import relay as relay_module
from rescue.bus.outbox import emit_many, new_event, outbox_rows
from rescue.bus.queries import CLAIM_UNPUBLISHED
from tests.helpers import PUBLISHED
from tests.rescue.bus_support import (
    MakeBus,
    bus_pool_fixture,  # noqa: F401 (a fixture)
    emit_committed,
    first_pass_done,
    make_bus_fixture,  # noqa: F401 (a fixture)
    wait_until,
)


class Recorder:
    """A handler that records what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[Event, HandlerContext]] = []
        self.handled_at: dict[str, datetime] = {}

    async def __call__(self, event: Event, ctx: HandlerContext) -> None:
        self.calls.append((event, ctx))
        self.handled_at.setdefault(event.id, datetime.now(UTC))

    def ids(self) -> list[str]:
        return [event.id for event, _ in self.calls]


# Each event row's place and the transaction that wrote it: an update would change both.
ROW_VERSIONS = "SELECT id, ctid::text, xmin::text FROM outbox ORDER BY id"


async def pending(redis: Redis, bus: Bus, group: str) -> int:
    return int((await redis.xpending(bus.stream, group))["pending"])


async def test_committed_event_reaches_consumer(make_bus: MakeBus, pg: asyncpg.Connection) -> None:
    got = Recorder()
    bus = make_bus()
    bus.subscribe("phones", got)
    await bus.start()
    at = datetime(2025, 3, 1, 8, 30, tzinfo=timezone(timedelta(hours=8)))
    sent = await emit_committed(
        pg, type="offer.created", data={"offer": "off_1", "n": [1, 2]}, key="inc_1", at=at
    )
    await wait_until(lambda: got.calls, what="delivery")
    event, ctx = got.calls[0]
    assert event == sent
    assert event.at == datetime(2025, 3, 1, 0, 30, tzinfo=UTC)
    assert sent.id.startswith("evt_")
    assert (ctx.attempt, ctx.group, ctx.consumer) == (1, "phones", bus.consumer_name)
    await wait_until(lambda: processed(pg, group="phones", event_id=sent.id), what="record")
    # The consumer may see the entry before the relay's commit stamps it.
    written = await pg.fetch(ROW_VERSIONS)
    await wait_until(lambda: pg.fetchval(f"SELECT {PUBLISHED} FROM outbox"), what="stamp")
    # Claimed and stamped without a new version of the event's row (migration 012).
    assert await pg.fetch(ROW_VERSIONS) == written
    data = await pg.fetchval("SELECT data::text FROM outbox")
    assert json.loads(data) == {"offer": "off_1", "n": [1, 2]}


async def test_rolled_back_event_is_never_delivered(
    make_bus: MakeBus, pg: asyncpg.Connection
) -> None:
    got = Recorder()
    bus = make_bus()
    bus.subscribe("phones", got)
    await bus.start()
    with pytest.raises(RuntimeError):
        async with pg.transaction():
            await emit(pg, type="offer.created", data={"n": "rolled back"})
            raise RuntimeError("incident failed")
    sentinel = await emit_committed(pg, type="offer.created", data={"n": "sentinel"})
    await wait_until(lambda: sentinel.id in got.ids(), what="sentinel")
    assert [e.data["n"] for e, _ in got.calls] == ["sentinel"]
    assert await pg.fetchval("SELECT count(*) FROM outbox") == 1


async def test_relay_wakes_on_commit_not_on_poll(
    make_bus: MakeBus, pg: asyncpg.Connection, redis: Redis
) -> None:
    got = Recorder()
    # The poll fallback is an hour away: only the NOTIFY at commit can deliver in time.
    bus = make_bus(poll_interval_s=3600)
    bus.subscribe("phones", got)
    await bus.start()
    await wait_until(lambda: bus.listening, what="LISTEN")
    await wait_until(lambda: first_pass_done(redis, bus), what="first pass")
    for n in range(3):
        sent = await emit_committed(pg, type="offer.created", data={"n": n})
        await wait_until(lambda e=sent: e.id in got.ids(), what=f"event {n}", timeout=5)
    await wait_until(lambda: bus.stats.published == 3, what="relay's count")


async def test_emit_outside_a_transaction_commits_and_notifies(
    make_bus: MakeBus, pg: asyncpg.Connection
) -> None:
    got = Recorder()
    bus = make_bus(poll_interval_s=3600)
    bus.subscribe("phones", got)
    await bus.start()
    await wait_until(lambda: bus.listening, what="LISTEN")
    sent = await emit(pg, type="aed.updated", data={})
    await wait_until(lambda: sent.id in got.ids(), what="delivery", timeout=5)


async def test_emit_rejects_bad_input_and_stores_nothing(pg: asyncpg.Connection) -> None:
    async with pg.transaction():
        with pytest.raises(TypeError):
            await emit(pg, type="x", data={"when": datetime.now(UTC)})
        with pytest.raises(ValueError):
            await emit(pg, type="x", data={"v": math.nan})
        with pytest.raises(TypeError):
            await emit(pg, type="x", data=["not", "a", "dict"])  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            await emit(pg, type="x", data={}, at=datetime(2025, 1, 1))
        with pytest.raises(ValueError):
            await emit(pg, type="", data={})
    assert await pg.fetchval("SELECT count(*) FROM outbox") == 0


async def test_two_workers_share_a_group_and_each_event_is_handled_once(
    make_bus: MakeBus, pg: asyncpg.Connection, redis: Redis
) -> None:
    handled: Counter[tuple[str, str]] = Counter()
    consumers: dict[str, set[str]] = {"g": set(), "h": set()}
    holding: set[str] = set()
    release = asyncio.Event()

    def handler(group: str) -> Callable[[Event, HandlerContext], Awaitable[None]]:
        async def handle(event: Event, ctx: HandlerContext) -> None:
            handled[(group, event.id)] += 1
            consumers[group].add(ctx.consumer)
            if group == "g" and event.data.get("hold"):
                holding.add(ctx.consumer)
                await release.wait()

        return handle

    # Reclaiming is out of the picture: this is normal operation.
    workers = [make_bus(claim_idle_ms=60_000), make_bus(claim_idle_ms=60_000)]
    for bus in workers:
        bus.subscribe("g", handler("g"))
        bus.subscribe("h", handler("h"))
        await bus.start()
    await wait_until(lambda: first_pass_done(redis, workers[0]), what="first pass")
    assert workers[0].consumer_name != workers[1].consumer_name
    # The worker busy with the first held event cannot take the second: the other one does.
    sent = [await emit_committed(pg, type="t", data={"hold": True})]
    await wait_until(lambda: len(holding) == 1, what="first held")
    sent.append(await emit_committed(pg, type="t", data={"hold": True}))
    await wait_until(lambda: len(holding) == 2, what="both workers busy")
    release.set()
    for batch in range(8):
        async with pg.transaction():
            for n in range(5):
                sent.append(await emit(pg, type="t", data={"batch": batch, "n": n}))

    expected = {(group, e.id) for group in ("g", "h") for e in sent}
    await wait_until(lambda: set(handled) == expected, what="every event in both groups")
    await wait_until(
        lambda: all(w.stats.handled for w in workers) and _settled(redis, workers[0]),
        what="acks",
    )
    assert set(handled.values()) == {1}
    assert consumers["g"] == {w.consumer_name for w in workers}
    # Two relays ran concurrently: each event was published once.
    assert await redis.xlen(workers[0].stream) == len(sent)
    await wait_until(
        lambda: sum(w.stats.published for w in workers) == len(sent), what="relay commits"
    )
    assert sum(w.stats.duplicates for w in workers) == 0


async def _settled(redis: Redis, bus: Bus) -> bool:
    return await pending(redis, bus, "g") == 0 and await pending(redis, bus, "h") == 0


async def test_other_types_are_acked_without_the_handler(
    make_bus: MakeBus, pg: asyncpg.Connection, redis: Redis
) -> None:
    got = Recorder()
    bus = make_bus()
    bus.subscribe("callbacks", got, types=["incident.closed"])
    await bus.start()
    await emit_committed(pg, type="offer.created", data={})
    wanted = await emit_committed(pg, type="incident.closed", data={})
    await wait_until(lambda: bus.stats.skipped == 1 and got.calls, what="both events")
    assert got.ids() == [wanted.id]
    await wait_until(lambda: _no_pending(redis, bus, "callbacks"), what="acks")
    types = await pg.fetchval("SELECT types FROM bus_groups WHERE name = 'callbacks'")
    assert types == ["incident.closed"]


async def _no_pending(redis: Redis, bus: Bus, group: str) -> bool:
    return await pending(redis, bus, group) == 0


async def test_redelivered_processed_event_is_not_handled_twice(
    make_bus: MakeBus, pg: asyncpg.Connection, redis: Redis
) -> None:
    got = Recorder()
    bus = make_bus()
    bus.subscribe("phones", got)
    await bus.start()
    sent = await emit_committed(pg, type="offer.created", data={"n": 1})
    await wait_until(lambda: processed(pg, group="phones", event_id=sent.id), what="record")
    # The same event again, as after a relay that published it but crashed before its commit.
    [(_, fields)] = await redis.xrange(bus.stream)
    await redis.xadd(bus.stream, fields)
    await wait_until(lambda: bus.stats.duplicates == 1, what="duplicate seen")
    assert got.ids() == [sent.id]
    await wait_until(lambda: _no_pending(redis, bus, "phones"), what="acks")


async def test_transactional_handler_commits_effects_with_the_record(
    make_bus: MakeBus, pg: asyncpg.Connection
) -> None:
    await pg.execute("CREATE TABLE IF NOT EXISTS bus_test_effects (event_id text, attempt int)")
    attempts: list[int] = []

    async def handler(event: Event, ctx: HandlerContext) -> None:
        attempts.append(ctx.attempt)
        assert ctx.transactional
        await ctx.conn.execute(
            "INSERT INTO bus_test_effects VALUES ($1, $2)", event.id, ctx.attempt
        )
        if ctx.attempt == 1:
            raise RuntimeError("fails after its effect")

    bus = make_bus()
    bus.subscribe("timeline", handler, transactional=True)
    await bus.start()
    try:
        sent = await emit_committed(pg, type="t", data={})
        await wait_until(lambda: bus.stats.handled == 1, what="second attempt")
        assert attempts == [1, 2]
        rows = await pg.fetch("SELECT event_id, attempt FROM bus_test_effects")
        assert [tuple(r) for r in rows] == [(sent.id, 2)]
        assert await processed(pg, group="timeline", event_id=sent.id)
    finally:
        await bus.stop()
        await pg.execute("DROP TABLE bus_test_effects")


async def test_handler_claims_in_its_own_transaction(
    make_bus: MakeBus, pg: asyncpg.Connection
) -> None:
    claims: list[bool] = []
    conn_errors: list[str] = []

    async def handler(event: Event, ctx: HandlerContext) -> None:
        try:
            ctx.conn  # noqa: B018 - not a transactional subscription
        except RuntimeError as exc:
            conn_errors.append(str(exc))
        async with ctx.pool.acquire() as conn, conn.transaction():
            claims.append(await ctx.claim(conn))
            claims.append(await ctx.claim(conn))

    bus = make_bus()
    bus.subscribe("callbacks", handler)
    await bus.start()
    sent = await emit_committed(pg, type="t", data={})
    await wait_until(lambda: bus.stats.handled == 1, what="handled")
    assert claims == [True, False]
    assert conn_errors and "transactional=True" in conn_errors[0]
    assert await processed(pg, group="callbacks", event_id=sent.id)


async def test_processed_and_mark_processed(pg: asyncpg.Connection) -> None:
    assert not await processed(pg, group="g", event_id="evt_1")
    async with pg.transaction():
        assert await mark_processed(pg, group="g", event_id="evt_1") is True
        assert await mark_processed(pg, group="g", event_id="evt_1") is False
    assert await processed(pg, group="g", event_id="evt_1")
    assert not await processed(pg, group="other", event_id="evt_1")
    # Recorded in the caller's transaction: rolled back with it.
    with pytest.raises(asyncpg.DivisionByZeroError):
        async with pg.transaction():
            await mark_processed(pg, group="g", event_id="evt_3")
            await pg.execute("SELECT 1/0")
    assert not await processed(pg, group="g", event_id="evt_3")


async def test_subscription_rules(make_bus: MakeBus) -> None:
    bus = make_bus()
    bus.subscribe("phones", Recorder())
    with pytest.raises(ValueError):
        bus.subscribe("phones", Recorder())
    with pytest.raises(ValueError):
        bus.subscribe("bad name", Recorder())
    with pytest.raises(TypeError):
        bus.subscribe("typed", Recorder(), types="offer.created")
    await bus.start()
    assert bus.running
    with pytest.raises(RuntimeError):
        bus.subscribe("late", Recorder())
    with pytest.raises(RuntimeError):
        await bus.start()
    await bus.stop()
    assert not bus.running
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("bus-")]


async def test_unbound_bus_refuses_to_run() -> None:
    bus = Bus.unbound(claim_idle_ms=200)
    bus.subscribe("phones", Recorder())
    with pytest.raises(RuntimeError, match="not bound"):
        await bus.start()
    assert bus.groups == ["phones"]
    await bus.stop()


async def test_emit_many_keeps_order_in_one_statement(
    make_bus: MakeBus, pg: asyncpg.Connection
) -> None:
    got = Recorder()
    bus = make_bus(read_count=1)
    bus.subscribe("timeline", got)
    await bus.start()
    events = [new_event(type="t", data={"n": n}, key="inc_1") for n in range(5)]
    async with pg.transaction():
        assert await emit_many(pg, events) == events
        assert await emit_many(pg, []) == []
    await wait_until(lambda: len(got.calls) == 5, what="all five")
    assert [e for e, _ in got.calls] == events


async def test_a_dead_relays_claim_expires_and_the_rows_are_published(
    make_bus: MakeBus, pg: asyncpg.Connection, redis: Redis
) -> None:
    got = Recorder()
    bus = make_bus(poll_interval_s=0.2)
    bus.subscribe("phones", got)
    await bus.start()
    await wait_until(lambda: first_pass_done(redis, bus), what="first pass")
    # A relay of a worker that then died: it claimed the row for 1 s and never published it
    # (claimed in the emitting transaction, so the live relay's wake-up finds it claimed).
    async with pg.transaction():
        sent = new_event(type="offer.created", data={"n": 1})
        await emit_many(pg, [sent])
        claimed = await pg.fetch(CLAIM_UNPUBLISHED, 100, timedelta(seconds=1), [])
    assert [r["event_id"] for r in claimed] == [sent.id]
    assert await pg.fetch(CLAIM_UNPUBLISHED, 100, timedelta(seconds=1), []) == []  # held
    lease_end = await pg.fetchval(
        "SELECT claimed_until FROM outbox_pending WHERE id = $1", claimed[0]["id"]
    )
    await wait_until(lambda: sent.id in got.ids(), what="published after the lease", timeout=5)
    # Published by the live relay only once the dead relay's lease was over (one clock: the
    # server's and the handler's are this machine's).
    assert got.handled_at[sent.id] >= lease_end
    stamped = f"SELECT {PUBLISHED} FROM outbox WHERE event_id = $1"
    await wait_until(lambda: pg.fetchval(stamped, sent.id), what="stamped published")


async def test_a_pass_stamps_the_last_one_with_its_claim(
    make_bus: MakeBus, pg: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a stream of commits each relay pass is one statement: its claim also stamps what
    the previous pass published. What is left is stamped when the relay stops."""
    monkeypatch.setattr(relay_module, "STAMP_DELAY_S", 60.0)
    got = Recorder()
    bus = make_bus(poll_interval_s=60.0)
    bus.subscribe("phones", got)
    await bus.start()
    await wait_until(lambda: bus.listening, what="the relay listens")
    # After a pass that began listening: the next pass is the first event's NOTIFY.
    passes = bus.stats.relay_passes
    await wait_until(lambda: bus.stats.relay_passes > passes, what="a pass while listening")
    first = await emit_committed(pg, type="offer.created", data={"n": 1})
    await wait_until(lambda: first.id in got.ids(), what="first delivered")
    stamped = f"SELECT {PUBLISHED} FROM outbox WHERE event_id = $1"
    assert not await pg.fetchval(stamped, first.id)  # deferred to the next claim
    second = await emit_committed(pg, type="offer.created", data={"n": 2})
    await wait_until(lambda: second.id in got.ids(), what="second delivered")
    # Nothing else stamps within the minute (STAMP_DELAY_S, poll_interval_s): the claim of
    # the second, which holds it still, stamped the first.
    await wait_until(lambda: pg.fetchval(stamped, first.id), what="first stamped")
    claimed = "SELECT claimed_until > now() FROM outbox_pending p JOIN outbox o USING (id) "
    assert await pg.fetchval(claimed + "WHERE o.event_id = $1", second.id)
    await bus.stop()
    assert await pg.fetchval(stamped, second.id)


async def test_one_relay_listens_and_another_takes_over_when_it_stops(
    make_bus: MakeBus, pg: asyncpg.Connection, redis: Redis
) -> None:
    got = Recorder()
    first, second = make_bus(poll_interval_s=3600), make_bus(poll_interval_s=0.2)
    first.subscribe("phones", got)
    await first.start()
    await wait_until(lambda: first.listening, what="the first relay listens")
    await second.start()
    await wait_until(lambda: first_pass_done(redis, first), what="first pass")
    # The second relay's passes each tried the lock (a pass starts with it).
    await wait_until(lambda: second.stats.relay_passes >= 3, what="the second relay's passes")
    assert not second.listening
    sent = await emit_committed(pg, type="offer.created", data={"n": 1})
    await wait_until(lambda: sent.id in got.ids(), what="delivered", timeout=5)

    await first.stop()
    await wait_until(lambda: second.listening, what="the second relay took over", timeout=5)


async def claimed_by_producer(
    pg: asyncpg.Connection, events: list[Event], lease: timedelta
) -> list[int]:
    """Outbox rows inserted already claimed, as a producer that publishes them itself does
    (dispatch's INSERT_ALERT); no NOTIFY. Their ids."""
    return [
        await pg.fetchval(
            "WITH e AS (INSERT INTO outbox (event_id, type, key, data, occurred_at) "
            "VALUES ($1, $2, $3, $4::jsonb, $5) RETURNING id), "
            "p AS (INSERT INTO outbox_pending (id, claimed_until) "
            "SELECT id, now() + $6::interval FROM e) SELECT id FROM e",
            e.id,
            e.type,
            e.key,
            json.dumps(e.data),
            e.at,
            lease,
        )
        for e in events
    ]


async def test_a_producer_publishes_the_rows_its_commit_claimed(
    make_bus: MakeBus, pg: asyncpg.Connection, redis: Redis
) -> None:
    """No relay claim: the worker that committed the rows XADDs them, its relay stamps them."""
    got = Recorder()
    bus = make_bus()
    bus.subscribe("phones", got)
    await bus.start()
    await wait_until(lambda: first_pass_done(redis, bus), what="first pass")
    sent = [new_event(type="offer.created", data={"n": n}, key="inc_1") for n in range(3)]
    ids = await claimed_by_producer(pg, sent, bus.claim_lease)
    written = await pg.fetch(ROW_VERSIONS)
    assert bus.publishing
    bus.publish_committed(outbox_rows(sent), ids)
    await wait_until(lambda: len(got.calls) == 3, what="delivered")
    assert [event for event, _ in got.calls] == sent  # in order, data and time intact
    assert bus.stats.published_by_producer == 3
    stamped = f"SELECT count(*) = $1 FROM outbox WHERE {PUBLISHED}"
    await wait_until(lambda: pg.fetchval(stamped, 3), what="stamped by the relay")
    assert await pg.fetch(ROW_VERSIONS) == written  # the event rows were never updated
    assert await redis.xlen(bus.stream) == 3  # published once: no relay claimed them too


async def test_groups_whose_work_the_producer_did_record_its_events_unhandled(
    make_bus: MakeBus, pg: asyncpg.Connection, redis: Redis
) -> None:
    """publish_committed(done=...): those groups (per-event or batch) record and ack the
    events without calling their handler; the others handle them as ever."""
    served, served_batch, other = Recorder(), [], Recorder()

    async def batch(events: list[Event], ctx: object) -> None:
        served_batch.extend(events)

    bus = make_bus(record_delay_s=0.01)
    bus.subscribe("callbacks", served)
    bus.subscribe_batch("ledger", batch)
    bus.subscribe("phones", other)
    await bus.start()
    await wait_until(lambda: first_pass_done(redis, bus), what="first pass")
    sent = [new_event(type="offer.created", data={"n": n}, key="inc_1") for n in range(3)]
    ids = await claimed_by_producer(pg, sent, bus.claim_lease)
    bus.publish_committed(outbox_rows(sent), ids, done=("callbacks", "ledger"))

    await wait_until(lambda: len(other.calls) == 3, what="handled by the other group")
    assert [event.done for event, _ in other.calls] == [frozenset({"callbacks", "ledger"})] * 3
    recorded = "SELECT count(*) = 3 FROM bus_processed WHERE group_name = $1"

    async def settled(group: str) -> bool:
        return bool(await pg.fetchval(recorded, group)) and await pending(redis, bus, group) == 0

    for group in ("callbacks", "ledger", "phones"):
        await wait_until(lambda g=group: settled(g), what=f"{group} recorded and acked")
    assert served.calls == [] and served_batch == []
    # Counted once their acks went out, with the next read (which may block a while).
    await wait_until(lambda: bus.stats.served == 6, what="counted as served")
    await wait_until(lambda: bus.stats.handled == 3, what="the other group's counted")


async def test_a_producer_publication_that_fails_gives_the_claim_back(
    make_bus: MakeBus, pg: asyncpg.Connection, redis: Redis
) -> None:
    bus = make_bus()
    await bus.start()
    await wait_until(lambda: first_pass_done(redis, bus), what="first pass")
    await redis.set(bus.stream, "not a stream")  # every XADD fails (WRONGTYPE)
    sent = [new_event(type="offer.created", data={"n": n}) for n in range(2)]
    ids = await claimed_by_producer(pg, sent, timedelta(minutes=10))
    bus.publish_committed(outbox_rows(sent), ids)
    released = "SELECT count(*) = 2 FROM outbox_pending WHERE claimed_until IS NULL"
    await wait_until(lambda: pg.fetchval(released), what="claim given back")
    assert bus.stats.published_by_producer == 0
    await redis.delete(bus.stream)
    # The relay publishes them as any unclaimed row, well before the 10 minutes.
    await wait_until(lambda: redis.exists(bus.stream), what="relay published")
    stamped = f"SELECT count(*) = 2 FROM outbox WHERE {PUBLISHED}"
    await wait_until(lambda: pg.fetchval(stamped), what="stamped")
    entries = await redis.xrange(bus.stream)
    assert sorted(fields["id"] for _, fields in entries) == sorted(e.id for e in sent)
