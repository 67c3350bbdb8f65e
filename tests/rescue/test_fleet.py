"""The demo fleet: eligible demo volunteers on duty near their anchors, walking, one driver."""

from __future__ import annotations

import datetime as dt
import logging
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import numpy as np
import pytest
from aiohttp import web
from redis.asyncio import Redis

from geo import EARTH_RADIUS_M, ServiceArea, haversine_m
from rescue.app import create_redis
from rescue.area import load_service_area
from rescue.auth import hash_token
from rescue.demo import DemoVolunteer, generate_volunteers, volunteer_anchor
from rescue.demo.constants import demo_today
from rescue.demo.fleet import (
    LOCK_KEY,
    MAX_STEP_M,
    WANDER_M,
    FleetDriver,
    FleetLock,
    duty_share,
    duty_size,
    fleet_ctx,
    fleet_key,
    heartbeat_interval_s,
    load_roster,
    run_fleet_once,
    walk,
)
from rescue.settings import Settings
from rescue.typedefs import area_key, background_key, db_key, redis_key, settings_key
from tests.helpers import held_members, held_position, wait_until
from volunteers.constants import META, POSITIONS_SEEN
from volunteers.eligibility import decode_meta
from volunteers.models import meta_of
from volunteers.positions import search_candidates, stored_positions

COUNT = 600
# Positions are stored as 52-bit geohashes: about half a metre of rounding.
GEO_PRECISION_M = 1.0
# The walk measures in flat metres per degree, haversine on a sphere: they differ by < 1 %.
METRIC_SLACK = 1.01


@pytest.fixture(scope="module")
def area() -> ServiceArea:
    return load_service_area()


def local_ts(settings: Settings, hour: int, day: dt.date | None = None) -> float:
    """A unix time at this local hour of the demo's today."""
    day = day or demo_today()
    return dt.datetime.combine(day, dt.time(hour), tzinfo=settings.timezone).timestamp()


@pytest.fixture
async def eligible(pg: asyncpg.Connection) -> dict[str, asyncpg.Record]:
    """COUNT demo volunteers, some made suspended, expired or token holders; the eligible rows."""
    volunteers = generate_volunteers(count=COUNT)
    await pg.copy_records_to_table("volunteers", records=volunteers, columns=DemoVolunteer._fields)
    ids = [v.id for v in volunteers]
    yesterday = demo_today() - dt.timedelta(days=1)
    await pg.execute("UPDATE volunteers SET status = 'suspended' WHERE id = ANY($1)", ids[0::10])
    await pg.execute(
        """UPDATE volunteers SET cert_expires_on = $2, cert_issued_on = $2::date - 1095
           WHERE id = ANY($1)""",
        ids[5::10],
        yesterday,
    )
    for vid in ids[3::50]:
        await pg.execute(
            "UPDATE volunteers SET token_hash = $2 WHERE id = $1", vid, hash_token(f"vol_{vid}")
        )
    rows = await pg.fetch(
        """SELECT * FROM volunteers
           WHERE status = 'active' AND cert_expires_on >= $1 AND token_hash IS NULL""",
        demo_today(),
    )
    assert 350 < len(rows) < COUNT - 100
    return {r["id"]: r for r in rows}


async def fleet_state(redis: Redis) -> dict[str, tuple[float, float, float, str]]:
    """Every on-duty volunteer: (lat, lng, last seen, meta json)."""
    # redis-py's stubs do not know decode_responses: the replies are str and float here.
    metas: dict[str, str] = dict(await redis.hgetall(META))  # type: ignore[arg-type]
    scores: Any = await redis.zrange(POSITIONS_SEEN, 0, -1, withscores=True)
    seen: dict[str, float] = dict(scores)
    ids = list(metas)
    positions = await stored_positions(redis, ids)
    state = {}
    for vid, position in zip(ids, positions, strict=True):
        assert position is not None, vid
        state[vid] = (position[0], position[1], seen[vid], metas[vid])
    return state


def distances_m(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Haversine distances between rows of (lat, lng) arrays, as geo.haversine_m computes them."""
    lat1, lng1, lat2, lng2 = (np.radians(c) for c in (a[:, 0], a[:, 1], b[:, 0], b[:, 1]))
    h = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lng2 - lng1) / 2) ** 2
    )
    result: np.ndarray = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(h))
    assert result[0] == pytest.approx(haversine_m(*a[0], *b[0]), abs=1e-6)
    return result


def test_duty_share_follows_the_local_hour() -> None:
    assert [duty_share(h) for h in (23, 0, 3, 6)] == [0.3] * 4
    assert [duty_share(h) for h in (7, 8, 19, 22)] == [0.6] * 4
    assert [duty_share(h) for h in (9, 12, 18)] == [1.0] * 3
    tz = dt.timezone(dt.timedelta(hours=8))
    assert duty_size(8000, dt.datetime(2026, 6, 1, 3, tzinfo=tz)) == 2400
    assert duty_size(8000, dt.datetime(2026, 6, 1, 12, tzinfo=tz)) == 8000
    assert heartbeat_interval_s(120) == 30.0
    assert heartbeat_interval_s(600) == 30.0
    assert heartbeat_interval_s(2) == 1.0
    assert Settings.from_env({"RESCUE_DEMO": "1", "RESCUE_DEMO_FLEET": "0"}).demo_fleet == 0
    assert Settings().demo_fleet == 8000


async def test_fleet_puts_the_requested_eligible_volunteers_on_duty(
    pg: asyncpg.Connection,
    redis: Redis,
    settings: Settings,
    eligible: dict[str, asyncpg.Record],
    area: ServiceArea,
) -> None:
    now = local_ts(settings, 12)
    on = await run_fleet_once(redis, pg, settings, size=200, rng=random.Random(1), now=now)
    assert on == 200
    state = await fleet_state(redis)
    assert len(state) == 200
    assert len(await held_members(redis)) == 200
    assert set(state) <= set(eligible)
    for vid, (lat, lng, seen, meta) in state.items():
        assert seen == now
        assert area.contains(lat, lng), vid
        assert haversine_m(lat, lng, *volunteer_anchor(vid, area=area)) < 600, vid
        assert decode_meta(meta) == meta_of(eligible[vid])
    # Spread like the population, not the first ids: several home districts, ids far apart.
    assert len({eligible[vid]["home_district"] for vid in state}) >= 5
    assert max(state) > sorted(eligible)[300]

    # Deterministic: another driver with another random stream picks the same people.
    await redis.flushdb()
    assert await run_fleet_once(redis, pg, settings, size=200, rng=random.Random(2), now=now) == 200
    assert set(await fleet_state(redis)) == set(state)


async def test_a_fleet_larger_than_the_eligible_takes_exactly_the_eligible(
    pg: asyncpg.Connection, redis: Redis, settings: Settings, eligible: dict[str, asyncpg.Record]
) -> None:
    now = local_ts(settings, 10)
    on = await run_fleet_once(redis, pg, settings, size=5000, rng=random.Random(3), now=now)
    assert on == len(eligible)
    state = await fleet_state(redis)
    assert set(state) == set(eligible)
    assert all(decode_meta(m).status == "active" for _, _, _, m in state.values())
    assert all(decode_meta(m).cert_expires_on >= demo_today() for _, _, _, m in state.values())


async def test_a_second_round_moves_them_a_little_and_refreshes_last_seen(
    pg: asyncpg.Connection,
    redis: Redis,
    settings: Settings,
    eligible: dict[str, asyncpg.Record],
    area: ServiceArea,
) -> None:
    now = local_ts(settings, 15)
    roster = await load_roster(pg, size=300, today=demo_today(), area=area)
    rng = random.Random(4)
    await run_fleet_once(redis, pg, settings, size=300, rng=rng, roster=roster, now=now)
    before = await fleet_state(redis)
    later = now + 30
    await run_fleet_once(redis, pg, settings, size=300, rng=rng, roster=roster, now=later)
    after = await fleet_state(redis)
    assert set(after) == set(before) and len(after) == 300
    moves = []
    for vid, (lat, lng, seen, meta) in after.items():
        assert seen == later
        assert meta == before[vid][3]
        assert area.contains(lat, lng), vid
        moves.append(haversine_m(lat, lng, before[vid][0], before[vid][1]))
    assert max(moves) <= MAX_STEP_M * METRIC_SLACK + GEO_PRECISION_M
    assert sum(m > 3 for m in moves) > 250
    assert 5 < float(np.median(moves)) < 40


def test_the_walk_stays_near_the_anchor_on_land(area: ServiceArea) -> None:
    anchors = np.array([volunteer_anchor(i, area=area) for i in range(0, 110_000, 100)])
    rng = np.random.default_rng(5)
    # Some walkers start 400 m north of their anchor, on land: they only come closer.
    current = anchors.copy()
    current[:, 0] += 400 / 110_574
    outside = np.array([area.contains(lat, lng) for lat, lng in current])
    current[~outside] = anchors[~outside]
    assert outside.sum() > 100
    for _ in range(40):
        moved = walk(current, anchors, rng, area)
        assert distances_m(current, moved).max() <= MAX_STEP_M * METRIC_SLACK
        before, after = distances_m(current, anchors), distances_m(moved, anchors)
        assert (after <= np.maximum(before, WANDER_M * METRIC_SLACK)).all()
        current = moved
    assert all(area.contains(lat, lng) for lat, lng in current)
    distances = distances_m(current, anchors)
    assert distances[~outside].max() <= WANDER_M * METRIC_SLACK
    assert distances[~outside].max() > 60  # they do wander
    assert np.median(distances[outside]) <= WANDER_M * METRIC_SLACK  # and come back


async def test_search_candidates_finds_fleet_volunteers_near_one(
    pg: asyncpg.Connection,
    redis: Redis,
    settings: Settings,
    eligible: dict[str, asyncpg.Record],
) -> None:
    now = local_ts(settings, 11)
    await run_fleet_once(redis, pg, settings, size=400, rng=random.Random(6), now=now)
    state = await fleet_state(redis)

    # The densest spot: the fleet volunteer with the most others within 3 km.
    def neighbours(vid: str) -> int:
        lat, lng = state[vid][:2]
        return sum(haversine_m(lat, lng, o[0], o[1]) < 3000 for o in state.values())

    vid = max(sorted(state), key=neighbours)
    lat, lng = state[vid][:2]
    at_local = dt.datetime.fromtimestamp(now, settings.timezone)
    candidates, excluded, _ = await search_candidates(
        redis,
        lat=lat,
        lng=lng,
        radius_m=3000,
        now=now,
        ttl_s=settings.position_ttl_s,
        at_local=at_local,
    )
    found = [c.volunteer_id for c in candidates]
    assert found[0] == vid and candidates[0].distance_m < 1
    assert len(found) == neighbours(vid) > 3
    assert set(found) <= set(state)
    assert excluded["stale"] == excluded["off_duty"] == 0
    assert excluded["suspended"] == excluded["certificate_expired"] == 0


async def test_at_night_a_smaller_share_stays_on_and_the_rest_check_out(
    pg: asyncpg.Connection, redis: Redis, settings: Settings, eligible: dict[str, asyncpg.Record]
) -> None:
    roster = await load_roster(pg, size=200, today=demo_today())
    rng = random.Random(7)
    noon, night = local_ts(settings, 12), local_ts(settings, 23)
    assert (
        await run_fleet_once(redis, pg, settings, size=200, rng=rng, roster=roster, now=noon) == 200
    )
    day = await fleet_state(redis)
    assert (
        await run_fleet_once(redis, pg, settings, size=200, rng=rng, roster=roster, now=night) == 60
    )
    late = await fleet_state(redis)
    assert set(late) == set(roster.ids[:60]) and set(late) < set(day)
    assert len(await held_members(redis)) == await redis.zcard(POSITIONS_SEEN) == 60
    # The next morning the others check in again.
    morning = local_ts(settings, 9, demo_today() + dt.timedelta(days=1))
    assert (
        await run_fleet_once(redis, pg, settings, size=200, rng=rng, roster=roster, now=morning)
        == 200
    )
    assert set(await fleet_state(redis)) == set(day)


async def test_the_driver_rereads_the_roster_each_day(
    pg: asyncpg.Connection, redis: Redis, settings: Settings, eligible: dict[str, asyncpg.Record]
) -> None:
    driver = FleetDriver(
        redis=redis,
        pool=pg,
        settings=settings.replace(demo=True, demo_fleet=100),
        area=load_service_area(),
        rng=random.Random(8),
    )
    noon = local_ts(settings, 12)
    assert await driver.tick(now=noon)
    assert driver.leading and driver.on_duty == 100
    leaving = sorted(await redis.hkeys(META))[0]
    await pg.execute(
        "UPDATE volunteers SET cert_expires_on = $2 WHERE id = $1", leaving, demo_today()
    )
    assert await driver.tick(now=noon + 30)
    assert await redis.hexists(META, leaving)  # read once a day: still driven today
    assert await driver.tick(now=local_ts(settings, 12, demo_today() + dt.timedelta(days=1)))
    on_duty = set(await redis.hkeys(META))
    assert leaving not in on_duty and len(on_duty) == 100 and on_duty <= set(eligible)
    assert await held_position(redis, leaving) is None
    await driver.stop()
    assert not driver.leading and not await redis.exists(LOCK_KEY)


async def test_the_lock_admits_one_driver_at_a_time(redis: Redis) -> None:
    first, second = FleetLock(redis, ttl_ms=60_000), FleetLock(redis, ttl_ms=60_000)
    assert await first.hold()
    assert not await second.hold()
    assert await first.hold()  # renewed
    assert 0 < await redis.pttl(LOCK_KEY) <= 60_000
    await second.release()  # not its lock: nothing happens
    assert await redis.exists(LOCK_KEY)
    await first.release()
    assert await second.hold()
    assert not await first.hold()
    # A holder whose lease ran out and was taken over does not win it back by renewing.
    await redis.set(LOCK_KEY, "someone-else")
    assert not await second.hold()


Started = tuple[web.Application, web.AppRunner]


@pytest.fixture
async def start_fleet_app(
    settings: Settings, pg: asyncpg.Connection, redis: Redis
) -> AsyncIterator[Callable[..., Awaitable[Started]]]:
    """Start a minimal app ('worker') running only fleet_ctx; stopped at the end."""
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=4)
    started: list[tuple[web.AppRunner, Redis]] = []

    async def start(
        *, background: bool = True, redis_url: str | None = None, **changes: Any
    ) -> Started:
        app = web.Application()
        app[settings_key] = settings.replace(**changes)
        app[db_key] = pool
        client = create_redis(redis_url or settings.redis_url)
        app[redis_key] = client
        app[area_key] = load_service_area()
        app[background_key] = background
        app.cleanup_ctx.append(fleet_ctx)
        runner = web.AppRunner(app)
        await runner.setup()
        started.append((runner, client))
        return app, runner

    yield start
    for runner, client in reversed(started):
        await runner.cleanup()
        await client.aclose()
    await pool.close()


async def test_no_fleet_when_turned_off(
    start_fleet_app: Callable[..., Awaitable[Started]],
    redis: Redis,
    eligible: dict[str, asyncpg.Record],
) -> None:
    for changes in (
        {"demo": True, "demo_fleet": 0},
        {"demo": False, "demo_fleet": 100},
        {"demo": True, "demo_fleet": 100, "background": False},
    ):
        app, _ = await start_fleet_app(**changes)
        assert fleet_key not in app, changes
    assert await redis.dbsize() == 0


async def test_only_one_of_two_workers_drives_the_fleet(
    start_fleet_app: Callable[..., Awaitable[Started]],
    redis: Redis,
    settings: Settings,
    eligible: dict[str, asyncpg.Record],
) -> None:
    fleet = {"demo": True, "demo_fleet": 100, "position_ttl_s": 4}
    (app_a, runner_a), (app_b, runner_b) = (
        await start_fleet_app(**fleet),
        await start_fleet_app(**fleet),
    )
    a, b = app_a[fleet_key], app_b[fleet_key]
    assert a.interval_s == 1.0
    sizes = {duty_size(100, dt.datetime.now(settings.timezone))}

    async def one_drove_twice() -> FleetDriver | None:
        return next((d for d in (a, b) if d.rounds >= 2), None)

    leader = await wait_until(one_drove_twice)
    assert leader is not None
    other = b if leader is a else a
    assert leader.leading and not other.leading and other.rounds == 0
    # The share follows the local hour (an hour may turn while the test runs).
    sizes.add(duty_size(100, dt.datetime.now(settings.timezone)))
    assert await redis.hlen(META) in sizes
    assert leader.on_duty == await redis.hlen(META)
    assert set(await redis.hkeys(META)) <= set(eligible)

    # The leader's worker stops: it lets the lock go and the other takes over.
    await (runner_a if leader is a else runner_b).cleanup()
    assert not leader.leading
    await wait_until(lambda: _ran(other))
    assert other.leading


async def _ran(driver: FleetDriver) -> bool:
    return driver.rounds >= 1


async def test_redis_down_pauses_the_fleet_without_crashing(
    start_fleet_app: Callable[..., Awaitable[Started]],
    eligible: dict[str, asyncpg.Record],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    caplog.set_level(logging.WARNING, logger="rescue.demo.fleet")
    app, _ = await start_fleet_app(
        demo=True, demo_fleet=50, position_ttl_s=4, redis_url=f"redis://127.0.0.1:{port}/15"
    )
    driver = app[fleet_key]

    async def failed_twice() -> bool:
        return driver.failures >= 2

    await wait_until(failed_twice)
    assert driver.rounds == 0 and not driver.leading
    warnings = [r for r in caplog.records if r.name == "rescue.demo.fleet"]
    assert len(warnings) == 1 and "paused" in warnings[0].getMessage()
