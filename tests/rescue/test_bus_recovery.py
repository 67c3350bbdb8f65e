"""The event bus when things go wrong: failing handlers, dead consumers, Redis lost or down."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from redis.asyncio import Redis

from rescue import db
from rescue.bus import (
    Bus,
    Event,
    HandlerContext,
    bus_ctx,
    create_bus_redis,
    emit,
    install_bus,
    mark_processed,
    processed,
)
from rescue.metrics import Metrics
from rescue.settings import Settings
from rescue.typedefs import background_key, bus_key, db_key, metrics_key, settings_key
from tests.helpers import PUBLISHED
from tests.rescue.bus_support import (
    MakeBus,
    bus_pool_fixture,  # noqa: F401 (a fixture)
    emit_committed,
    first_pass_done,
    make_bus_fixture,  # noqa: F401 (a fixture)
    wait_until,
)


async def ignore(event: Event, ctx: HandlerContext) -> None:
    """A handler with nothing to do (a second group that must not be blocked)."""


async def pending(redis: Redis, bus: Bus, group: str) -> dict[str, Any]:
    return dict(await redis.xpending(bus.stream, group))


async def test_failed_handler_is_retried_after_the_claim_idle_time(
    make_bus: MakeBus, pg: asyncpg.Connection, redis: Redis
) -> None:
    attempts: list[int] = []

    async def handler(event: Event, ctx: HandlerContext) -> None:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise RuntimeError("gateway refused")

    bus = make_bus()
    bus.subscribe("phones", handler)
    await bus.start()
    sent = await emit_committed(pg, type="offer.created", data={})
    await wait_until(lambda: attempts == [1], what="first attempt")
    await wait_until(lambda: processed(pg, group="phones", event_id=sent.id), what="retry")
    assert attempts == [1, 2]
    assert bus.stats.failed == 1
    await wait_until(lambda: _pending_count(redis, bus, "phones", 0), what="ack after the retry")


async def _pending_count(redis: Redis, bus: Bus, group: str, count: int) -> bool:
    return (await pending(redis, bus, group))["pending"] == count


async def test_consumer_cancelled_mid_event_leaves_it_pending_for_another(
    make_bus: MakeBus, pg: asyncpg.Connection, redis: Redis
) -> None:
    started: list[str] = []
    finished: list[tuple[str, int]] = []
    never = asyncio.Event()

    async def stuck(event: Event, ctx: HandlerContext) -> None:
        started.append(ctx.consumer)
        await never.wait()
        finished.append((ctx.consumer, ctx.attempt))

    async def healthy(event: Event, ctx: HandlerContext) -> None:
        finished.append((ctx.consumer, ctx.attempt))

    dying = make_bus()
    dying.subscribe("escalation", stuck)
    await dying.start()
    sent = await emit_committed(pg, type="offer.created", data={})
    await wait_until(lambda: started, what="handler started")
    await dying.stop()
    summary = await pending(redis, dying, "escalation")
    assert summary["pending"] == 1
    assert summary["consumers"] == [{"name": dying.consumer_name, "pending": 1}]

    survivor = make_bus()
    survivor.subscribe("escalation", healthy)
    await survivor.start()
    await wait_until(lambda: finished, what="reclaimed")
    assert finished == [(survivor.consumer_name, 2)]
    await wait_until(lambda: _pending_count(redis, survivor, "escalation", 0), what="ack")
    assert await processed(pg, group="escalation", event_id=sent.id)


async def test_reader_that_never_acks_is_reclaimed(
    make_bus: MakeBus, pg: asyncpg.Connection, redis: Redis
) -> None:
    relay = make_bus()  # relay only, no groups
    await relay.start()
    await wait_until(lambda: first_pass_done(redis, relay), what="relay ready")
    await redis.xgroup_create(relay.stream, "callbacks", id="$", mkstream=True)
    sent = await emit_committed(pg, type="incident.closed", data={"n": 1})
    zombie = await wait_until(
        lambda: redis.xreadgroup("callbacks", "zombie", {relay.stream: ">"}, count=10),
        what="zombie read",
    )
    assert zombie[0][1][0][1]["id"] == sent.id
    await relay.stop()

    calls: list[tuple[str, int]] = []

    async def handler(event: Event, ctx: HandlerContext) -> None:
        calls.append((event.id, ctx.attempt))

    worker = make_bus()
    worker.subscribe("callbacks", handler)
    await worker.start()
    await wait_until(lambda: calls, what="reclaimed")
    assert calls == [(sent.id, 2)]
    await wait_until(lambda: _pending_count(redis, worker, "callbacks", 0), what="ack")


async def test_event_failing_every_time_goes_to_the_dead_letter_stream(
    make_bus: MakeBus, pg: asyncpg.Connection, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: list[int] = []

    async def handler(event: Event, ctx: HandlerContext) -> None:
        attempts.append(ctx.attempt)
        raise ValueError(f"bad payload {event.data['n']}")

    bus = make_bus(max_deliveries=3)
    bus.subscribe("callbacks", handler)
    await bus.start()
    sent = await emit_committed(pg, type="incident.closed", data={"n": 7}, key="inc_1")
    await wait_until(lambda: bus.stats.dead == 1, what="dead-lettered, recorded and acked")
    dead = await redis.xrange(bus.dead_stream)
    assert attempts == [1, 2, 3]
    [(_, fields)] = dead
    assert fields["id"] == sent.id
    assert fields["key"] == "inc_1"
    assert fields["group"] == "callbacks"
    assert fields["attempts"] == "3"
    assert "bad payload 7" in fields["error"]
    outcome = await pg.fetchval(
        "SELECT outcome FROM bus_processed WHERE group_name = 'callbacks' AND event_id = $1",
        sent.id,
    )
    assert outcome == "dead"
    assert await _pending_count(redis, bus, "callbacks", 0)
    assert any("gave up on event " + sent.id in r.getMessage() for r in caplog.records)


async def test_entry_past_max_deliveries_is_dead_lettered_without_the_handler(
    make_bus: MakeBus, pg: asyncpg.Connection, redis: Redis
) -> None:
    calls: list[int] = []

    async def handler(event: Event, ctx: HandlerContext) -> None:
        calls.append(ctx.attempt)

    bus = make_bus(max_deliveries=2)
    await redis.xgroup_create(bus.stream, "phones", id="$", mkstream=True)
    await redis.xadd(
        bus.stream, {"id": "evt_x", "type": "t", "data": "{}", "at": "2025-01-01T00:00:00+00:00"}
    )
    # A consumer that crashed twice while holding it (each reclaim counts a delivery).
    await redis.xreadgroup("phones", "crash-1", {bus.stream: ">"})
    entry = (await redis.xrange(bus.stream))[0][0]
    await redis.xclaim(bus.stream, "phones", "crash-2", 0, [entry])
    bus.subscribe("phones", handler)
    await bus.start()
    await wait_until(lambda: redis.xlen(bus.dead_stream), what="dead letter")
    assert calls == []
    [(_, fields)] = await redis.xrange(bus.dead_stream)
    assert fields["error"] == "delivered 3 times without being acknowledged"


async def test_redis_flush_replays_what_a_group_has_not_processed(
    make_bus: MakeBus, pg: asyncpg.Connection, redis: Redis
) -> None:
    calls: list[str] = []
    failing = {"yes": True}

    async def handler(event: Event, ctx: HandlerContext) -> None:
        calls.append(event.id)
        if event.data["n"] == 2 and failing["yes"]:
            raise RuntimeError("not yet")

    # No reclaiming during the test: only the replay can bring the failed event back.
    bus = make_bus(claim_idle_ms=60_000)
    bus.subscribe("phones", handler)
    bus.subscribe("timeline", ignore)
    await bus.start()
    await wait_until(lambda: bus.stats.replays == 1, what="the first pass (an empty replay)")
    first = await emit_committed(pg, type="t", data={"n": 1})
    second = await emit_committed(pg, type="t", data={"n": 2})
    await wait_until(lambda: bus.stats.failed == 1, what="second event failed once")
    await wait_until(lambda: bus.stats.handled == 3, what="the rest handled")
    assert not await processed(pg, group="phones", event_id=second.id)
    replays = bus.stats.replays

    failing["yes"] = False
    await redis.flushdb()  # Redis restarted empty
    await wait_until(
        lambda: processed(pg, group="phones", event_id=second.id), what="replayed event"
    )
    assert calls == [first.id, second.id, second.id]
    await wait_until(lambda: bus.stats.replays == replays + 1, what="replay counted")
    assert bus.stats.replayed == 1
    assert bus.stats.published == 2
    replayed = [fields["id"] for _, fields in await redis.xrange(bus.stream)]
    assert first.id not in replayed  # processed by every group
    assert second.id in replayed
    assert await redis.exists(bus.epoch_key)

    # The consumers recreated their groups and take new events.
    third = await emit_committed(pg, type="t", data={"n": 3})
    await wait_until(lambda: third.id in calls, what="new event after the flush")
    await wait_until(
        lambda: processed(pg, group="timeline", event_id=third.id), what="other group too"
    )
    assert calls.count(first.id) == 1


async def test_replay_left_unfinished_by_a_dead_relay_is_redone(
    make_bus: MakeBus, pg: asyncpg.Connection, redis: Redis
) -> None:
    calls: list[str] = []

    async def handler(event: Event, ctx: HandlerContext) -> None:
        calls.append(event.id)

    bus = make_bus()
    bus.subscribe("phones", handler)
    await bus.start()
    await wait_until(lambda: bus.stats.replays == 1, what="first pass")
    sent = await emit_committed(pg, type="t", data={})
    await wait_until(lambda: processed(pg, group="phones", event_id=sent.id), what="delivery")
    # Unprocessed but already published, and a relay died halfway through a replay.
    await pg.execute("DELETE FROM bus_processed")
    await redis.set(bus.epoch_key, "replaying:epo_dead")
    await wait_until(lambda: bus.stats.replays == 2, what="replay redone")
    await wait_until(lambda: calls == [sent.id, sent.id], what="redelivery")
    epoch = await redis.get(bus.epoch_key)
    assert epoch.startswith("epo_") and epoch != "epo_dead"


async def test_replay_passes_over_a_row_another_relay_holds(
    make_bus: MakeBus, bus_pool: asyncpg.Pool, pg: asyncpg.Connection
) -> None:
    """A replay never waits for a row lock: it holds its own until it commits, so waiting for
    another relay's (whose claim may wait for the replay's) could deadlock them both."""
    calls: list[str] = []

    async def handler(event: Event, ctx: HandlerContext) -> None:
        calls.append(event.id)

    held = await emit_committed(pg, type="t", data={"n": 1})
    other = await emit_committed(pg, type="t", data={"n": 2})
    bus = make_bus()
    bus.subscribe("phones", handler)
    async with bus_pool.acquire() as holder, holder.transaction():
        # Another relay's claim or stamp of this unpublished row, not yet committed.
        await holder.execute(
            "SELECT 1 FROM outbox_pending p JOIN outbox o USING (id) WHERE o.event_id = $1 "
            "FOR UPDATE OF p",
            held.id,
        )
        await bus.start()
        # The first start finds no epoch marker: the replay publishes both rows and finishes
        # with the lock still held, marking the row it could mark.
        await wait_until(lambda: bus.stats.replays == 1, what="the replay, past the lock")
        await wait_until(lambda: sorted(calls) == sorted([held.id, other.id]), what="both")
        published = dict(await pg.fetch(f"SELECT event_id, {PUBLISHED} FROM outbox"))
        assert published == {other.id: True, held.id: False}
    # Once the lock is gone the relay publishes the row it passed over, and it is marked.
    await wait_until(
        lambda: pg.fetchval(f"SELECT {PUBLISHED} FROM outbox WHERE event_id = $1", held.id),
        what="the row passed over, published once free",
    )
    assert bus.stats.replayed == 2


async def test_unpublished_events_wait_for_redis_and_the_bus_survives(
    make_bus: MakeBus, pg: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    dead_redis = create_bus_redis("redis://127.0.0.1:1/15", block_ms=100)
    calls: list[str] = []

    async def handler(event: Event, ctx: HandlerContext) -> None:
        calls.append(event.id)

    try:
        down = make_bus(redis=dead_redis)
        down.subscribe("phones", handler)
        with caplog.at_level(logging.DEBUG, logger="rescue.bus"):
            await down.start()
            sent = await emit_committed(pg, type="alert.created", data={"n": 1})
            await wait_until(
                lambda: down.stats.relay_errors >= 3 and down.stats.consumer_errors >= 3,
                what="several failed attempts",
            )
            assert down.running
            await down.stop()
        warnings = [
            r
            for r in caplog.records
            if r.levelno >= logging.WARNING and r.name.startswith("rescue.bus")
        ]
        # Once per loop (relay, consumer) plus the group that could not be created at start.
        assert len(warnings) == 3, [r.getMessage() for r in warnings]
        assert all("redis" in r.getMessage() for r in warnings)
    finally:
        await dead_redis.aclose()
    assert calls == []
    assert not await pg.fetchval(f"SELECT {PUBLISHED} FROM outbox")

    up = make_bus()
    up.subscribe("phones", handler)
    await up.start()
    await wait_until(lambda: calls == [sent.id], what="relayed once redis is back")


async def test_stream_is_trimmed_approximately(
    make_bus: MakeBus, pg: asyncpg.Connection, redis: Redis
) -> None:
    bus = make_bus(maxlen=10, batch_size=50)
    await bus.start()
    await wait_until(lambda: first_pass_done(redis, bus), what="first pass")
    async with pg.transaction():
        for n in range(500):
            await emit(pg, type="position", data={"n": n})
    await wait_until(lambda: bus.stats.published == 500, what="published")
    assert await redis.xlen(bus.stream) < 500
    last = (await redis.xrevrange(bus.stream, count=1))[0][1]
    assert json.loads(last["data"]) == {"n": 499}


async def test_cleanup_deletes_old_rows_no_group_owes(
    make_bus: MakeBus, pg: asyncpg.Connection
) -> None:
    bus = make_bus(retention=timedelta(hours=24), purge_after=timedelta(days=7))
    await pg.execute(
        "INSERT INTO bus_groups (name, types) VALUES ('a', NULL), ('b', ARRAY['only.b'])"
    )
    rows = {
        # name: (type, age, published, processed by)
        "done": ("t", "2 days", True, ["a"]),  # b does not take type t
        "owed": ("t", "2 days", True, []),
        "everyone": ("only.b", "2 days", True, ["a", "b"]),
        "recent": ("t", "1 hour", True, ["a"]),
        "unpublished": ("t", "2 days", False, ["a"]),
        "ancient": ("t", "8 days", True, []),
    }
    for name, (type_, age, published, groups) in rows.items():
        await pg.execute(
            "WITH e AS (INSERT INTO outbox (event_id, type, data, occurred_at, created_at)"
            " VALUES ($1, $2, '{}', now(), now() - $3::text::interval) RETURNING id)"
            " INSERT INTO outbox_pending (id) SELECT id FROM e WHERE NOT $4",
            name,
            type_,
            age,
            published,
        )
        for group in groups:
            await mark_processed(pg, group=group, event_id=name)
    await pg.execute(
        "UPDATE bus_processed SET processed_at = now() - interval '8 days'"
        " WHERE event_id = 'everyone'"
    )
    assert await bus.cleanup() == 3
    left = {r["event_id"] for r in await pg.fetch("SELECT event_id FROM outbox")}
    assert left == {"owed", "recent", "unpublished"}
    assert not await processed(pg, group="a", event_id="everyone")
    assert await processed(pg, group="a", event_id="done")


async def test_app_wiring_subscribes_before_startup_and_stops_on_cleanup(
    pg: asyncpg.Connection, redis: Redis, settings: Settings
) -> None:
    app = web.Application()
    app[settings_key] = settings.replace(bus_claim_idle_ms=250)
    app[metrics_key] = Metrics()
    app[background_key] = True
    bus = install_bus(app, block_ms=100, poll_interval_s=0.05)
    assert app[bus_key] is bus and bus.claim_idle_ms == 250
    calls: list[str] = []

    async def handler(event: Event, ctx: HandlerContext) -> None:
        calls.append(event.id)

    app[bus_key].subscribe("phones", handler)

    async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
        app[db_key] = await db.create_pool(settings.database_url, min_size=1, max_size=4)
        yield
        await app[db_key].close()

    app.cleanup_ctx.append(pool_ctx)
    app.cleanup_ctx.append(bus_ctx)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        assert bus.running
        sent = await emit_committed(pg, type="offer.created", data={})
        await wait_until(lambda: calls == [sent.id], what="delivery in the app")
        await wait_until(lambda: bus.stats.handled == 1, what="ack")
        metrics = app[metrics_key].render().decode()
        assert 'rescue_events_total{group="phones",result="handled"} 1.0' in metrics
    finally:
        await runner.cleanup()
    assert not bus.running
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("bus-")]
