"""Live positions, duty state, candidate search and engagement, straight on Redis."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import random
import time
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from geo import TravelMode, haversine_m
from tests.helpers import held_members, held_position
from volunteers import positions
from volunteers.constants import ENGAGED, META, POSITION_KEYS, POSITIONS_BY_MODE, POSITIONS_SEEN
from volunteers.eligibility import VolunteerMeta, parse_quiet_hours

TTL = 120
CENTER = (36.0621, 120.3847)
NOON = dt.datetime(2026, 6, 15, 12, 0)


def meta(**changes: object) -> VolunteerMeta:
    values: dict[str, object] = {
        "travel_mode": TravelMode.WALK,
        "cert_expires_on": dt.date(2027, 1, 1),
        "status": "active",
        "quiet_hours": None,
    }
    values.update(changes)
    return VolunteerMeta(**values)


def north_of(point: tuple[float, float], metres: float) -> tuple[float, float]:
    return point[0] + metres / 111_195.0, point[1]


async def on_duty(
    redis: Redis, vid: str, metres: float, *, now: float, **meta_changes: object
) -> None:
    lat, lng = north_of(CENTER, metres)
    await positions.set_on_duty(
        redis, volunteer_id=vid, meta=meta(**meta_changes), lat=lat, lng=lng, now=now
    )


async def search(
    redis: Redis,
    *,
    now: float,
    radius_m: float | dict[TravelMode, float] = 1000,
    at_local: dt.datetime = NOON,
    **kw: Any,
) -> tuple[list[positions.Candidate], dict[str, int]]:
    found, excluded, _ = await positions.search_candidates(
        redis,
        lat=CENTER[0],
        lng=CENTER[1],
        radius_m=radius_m,
        now=now,
        ttl_s=TTL,
        at_local=at_local,
        **kw,
    )
    return found, excluded


async def test_check_in_writes_position_and_check_out_forgets_it(redis: Redis) -> None:
    now = time.time()
    await on_duty(redis, "vol_a", 100, now=now)
    assert await redis.hexists(META, "vol_a")
    assert await held_position(redis, "vol_a") is not None
    assert await redis.zscore(POSITIONS_SEEN, "vol_a") == now
    assert await positions.is_on_duty(redis, "vol_a")

    assert await positions.set_off_duty(redis, volunteer_id="vol_a") is True
    assert not await redis.hexists(META, "vol_a")
    assert await held_position(redis, "vol_a") is None
    assert await redis.zscore(POSITIONS_SEEN, "vol_a") is None
    assert await positions.set_off_duty(redis, volunteer_id="vol_a") is False


async def test_position_update_needs_duty_and_keeps_only_the_latest(redis: Redis) -> None:
    now = time.time()
    moved = await positions.update_position(
        redis, volunteer_id="vol_a", lat=CENTER[0], lng=CENTER[1], now=now
    )
    assert moved is False
    assert await redis.exists(*POSITION_KEYS, POSITIONS_SEEN) == 0

    await on_duty(redis, "vol_a", 100, now=now - 10)
    lat, lng = north_of(CENTER, 300)
    assert await positions.update_position(redis, volunteer_id="vol_a", lat=lat, lng=lng, now=now)
    assert await held_members(redis) == ["vol_a"]
    assert await redis.zscore(POSITIONS_SEEN, "vol_a") == now
    stored = await held_position(redis, "vol_a")
    assert stored is not None and haversine_m(lat, lng, *stored) < 1


async def test_search_returns_eligible_nearest_first(redis: Redis) -> None:
    now = time.time()
    await on_duty(redis, "vol_far", 800, now=now, travel_mode=TravelMode.BIKE)
    await on_duty(redis, "vol_near", 100, now=now)
    await on_duty(redis, "vol_mid", 400, now=now)
    await on_duty(redis, "vol_outside", 1500, now=now)

    found, excluded = await search(redis, now=now)

    assert [c.volunteer_id for c in found] == ["vol_near", "vol_mid", "vol_far"]
    assert abs(found[0].distance_m - 100) < 2
    assert found[2].travel_mode is TravelMode.BIKE
    assert abs(found[1].lat - north_of(CENTER, 400)[0]) < 1e-5
    assert abs(found[1].lng - CENTER[1]) < 1e-5
    assert set(excluded.values()) == {0}
    assert set(excluded) == {
        "stale",
        "engaged",
        "off_duty",
        "suspended",
        "certificate_expired",
        "quiet_hours",
    }


async def test_search_limit(redis: Redis) -> None:
    now = time.time()
    for i in range(5):
        await on_duty(redis, f"vol_{i}", 100 + i * 50, now=now)
    found, _ = await search(redis, now=now, limit=2)
    assert [c.volunteer_id for c in found] == ["vol_0", "vol_1"]


async def test_each_exclusion_reason_excludes(redis: Redis) -> None:
    now = time.time()
    late_night = dt.datetime(2026, 6, 15, 2, 30)
    await on_duty(redis, "vol_ok", 50, now=now)
    await on_duty(redis, "vol_stale", 60, now=now - TTL - 1)
    await on_duty(redis, "vol_engaged", 70, now=now)
    await positions.engage(redis, volunteer_id="vol_engaged", incident_id="inc_1")
    await on_duty(redis, "vol_expired", 80, now=now, cert_expires_on=dt.date(2026, 6, 14))
    await on_duty(redis, "vol_suspended", 90, now=now, status="suspended")
    await on_duty(redis, "vol_asleep", 95, now=now, quiet_hours=parse_quiet_hours("23:00-07:00"))
    await on_duty(redis, "vol_lunch", 97, now=now, quiet_hours=parse_quiet_hours("12:00-13:00"))
    await on_duty(redis, "vol_gone", 99, now=now)
    await redis.hdel(META, "vol_gone")  # a position left behind without duty state

    found, excluded = await search(redis, now=now, at_local=late_night)

    assert [c.volunteer_id for c in found] == ["vol_ok", "vol_lunch"]
    assert excluded == {
        "stale": 1,
        "engaged": 1,
        "off_duty": 1,
        "suspended": 1,
        "certificate_expired": 1,
        "quiet_hours": 1,
    }
    # At noon the night owl is back and the lunch-breaker is quiet.
    found, excluded = await search(redis, now=now)
    assert [c.volunteer_id for c in found] == ["vol_ok", "vol_asleep"]
    assert excluded["quiet_hours"] == 1


@pytest.mark.parametrize(
    ("company", "stale_elsewhere"), [(2, 0), (0, 5)], ids=["stale-read-as-a-range", "per-member"]
)
async def test_a_position_is_fresh_until_exactly_the_ttl(
    redis: Redis, company: int, stale_elsewhere: int
) -> None:
    # Fewer stale in the whole seen set than members judged: the search reads the stale as one
    # range. At least as many: it reads last-seen per member.
    now = time.time()
    for i in range(stale_elsewhere):
        await on_duty(redis, f"vol_far_{i}", 50_000, now=now - TTL - 10)
    await on_duty(redis, "vol_edge", 100, now=now - TTL)
    company_ids = [f"vol_company_{i}" for i in range(company)]
    for i, vid in enumerate(company_ids):
        await on_duty(redis, vid, 300 + i, now=now + 60)
    found, _ = await search(redis, now=now)
    assert [c.volunteer_id for c in found] == ["vol_edge", *company_ids]
    found, excluded = await search(redis, now=now + 0.5)
    assert [c.volunteer_id for c in found] == company_ids
    assert excluded["stale"] == 1


async def test_stale_members_count_the_same_when_many_are_stale_elsewhere(redis: Redis) -> None:
    now = time.time()
    await on_duty(redis, "vol_fresh_a", 100, now=now)
    await on_duty(redis, "vol_stale", 150, now=now - TTL - 1)
    await on_duty(redis, "vol_fresh_b", 200, now=now)
    expected = (["vol_fresh_a", "vol_fresh_b"], 1)

    found, excluded = await search(redis, now=now)  # 1 stale in all, of 3 judged
    assert ([c.volunteer_id for c in found], excluded["stale"]) == expected

    # The pruner has not run: more are stale far away than are judged here.
    for i in range(5):
        await on_duty(redis, f"vol_far_{i}", 50_000, now=now - TTL - 10)
    found, excluded = await search(redis, now=now)
    assert ([c.volunteer_id for c in found], excluded["stale"]) == expected


async def test_checked_out_volunteer_is_not_found(redis: Redis) -> None:
    now = time.time()
    await on_duty(redis, "vol_a", 100, now=now)
    await positions.set_off_duty(redis, volunteer_id="vol_a")
    found, excluded = await search(redis, now=now)
    assert found == []
    assert set(excluded.values()) == {0}


async def test_pruner_removes_stale_positions_but_keeps_duty(redis: Redis) -> None:
    now = time.time()
    await on_duty(redis, "vol_fresh", 100, now=now)
    for i in range(5):
        await on_duty(redis, f"vol_old_{i}", 200, now=now - TTL - 10 - i)

    removed = await positions.prune_stale(redis, now=now, ttl_s=TTL, batch=2)

    assert removed == 5
    assert await held_members(redis) == ["vol_fresh"]
    assert await redis.zrange(POSITIONS_SEEN, 0, -1) == ["vol_fresh"]
    assert await redis.hlen(META) == 6  # still on duty: the next update brings them back
    assert await positions.update_position(
        redis, volunteer_id="vol_old_0", lat=CENTER[0], lng=CENTER[1], now=now
    )
    assert await positions.prune_stale(redis, now=now, ttl_s=TTL) == 0


async def test_engage_is_atomic_across_incidents(redis: Redis) -> None:
    results = await asyncio.gather(
        *(positions.engage(redis, volunteer_id="vol_a", incident_id=f"inc_{i}") for i in range(50))
    )
    assert results.count(True) == 1
    winner = f"inc_{results.index(True)}"
    assert await positions.engaged_in(redis, "vol_a") == winner
    # Engaging again in the same incident is fine; another is refused.
    assert await positions.engage(redis, volunteer_id="vol_a", incident_id=winner)
    assert not await positions.engage(redis, volunteer_id="vol_a", incident_id="inc_other")


async def test_release_only_frees_the_same_incident(redis: Redis) -> None:
    await positions.engage(redis, volunteer_id="vol_a", incident_id="inc_1")
    await positions.release(redis, volunteer_id="vol_a", incident_id="inc_2")
    assert await redis.hget(ENGAGED, "vol_a") == "inc_1"
    await positions.release(redis, volunteer_id="vol_a", incident_id="inc_1")
    assert await positions.engaged_in(redis, "vol_a") is None
    assert await positions.engage(redis, volunteer_id="vol_a", incident_id="inc_2")


async def test_batches_for_the_demo_fleet(redis: Redis) -> None:
    now = time.time()
    fleet = [(f"vol_{i}", meta(), *north_of(CENTER, 10 + i)) for i in range(2500)]
    await positions.set_on_duty_batch(redis, fleet, now=now - 60)
    assert await redis.hlen(META) == 2500
    assert len(await held_members(redis)) == 2500

    moves = [(f"vol_{i}", *north_of(CENTER, 20 + i)) for i in range(2500)]
    moves.append(("vol_not_on_duty", *CENTER))
    accepted = await positions.update_positions_batch(redis, moves, now=now)
    assert accepted == [True] * 2500 + [False]
    assert await redis.zcount(POSITIONS_SEEN, now, now) == 2500
    assert await redis.zscore(POSITIONS_SEEN, "vol_not_on_duty") is None


async def test_refresh_meta_only_touches_volunteers_on_duty(redis: Redis) -> None:
    now = time.time()
    await on_duty(redis, "vol_on", 100, now=now)
    suspended = meta(status="suspended")
    assert await positions.refresh_meta(redis, volunteer_id="vol_on", meta=suspended)
    assert not await positions.refresh_meta(redis, volunteer_id="vol_off", meta=suspended)
    assert not await redis.hexists(META, "vol_off")
    found, excluded = await search(redis, now=now)
    assert found == []
    assert excluded["suspended"] == 1


async def test_concurrent_updates_are_coalesced_but_each_gets_its_answer(redis: Redis) -> None:
    now = time.time()
    for i in range(0, 300, 2):
        await on_duty(redis, f"vol_{i}", 10, now=now - 60)
    results = await asyncio.gather(
        *(
            positions.update_position(
                redis,
                volunteer_id=f"vol_{i}",
                lat=north_of(CENTER, 100 + i)[0],
                lng=CENTER[1],
                now=now,
            )
            for i in range(300)
        ),
        # The same volunteer twice in one turn: the later update is the one kept.
        positions.update_position(
            redis, volunteer_id="vol_0", lat=CENTER[0], lng=CENTER[1], now=now
        ),
    )
    assert results[:300] == [i % 2 == 0 for i in range(300)]
    assert results[300] is True
    stored = await held_position(redis, "vol_0")
    assert stored is not None and haversine_m(*CENTER, *stored) < 1
    assert await redis.zcount(POSITIONS_SEEN, now, now) == 150


async def test_a_failed_write_reaches_every_waiting_caller() -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.25)
    try:
        results = await asyncio.gather(
            *(
                positions.update_position(
                    dead, volunteer_id=f"vol_{i}", lat=CENTER[0], lng=CENTER[1], now=time.time()
                )
                for i in range(3)
            ),
            return_exceptions=True,
        )
    finally:
        await dead.aclose()
    assert all(isinstance(r, RedisConnectionError) for r in results), results


async def test_batch_check_out(redis: Redis) -> None:
    now = time.time()
    for i in range(3):
        await on_duty(redis, f"vol_{i}", 100, now=now)
    assert await positions.set_off_duty_batch(redis, ["vol_0", "vol_2", "vol_never"]) == 2
    assert await redis.hkeys(META) == ["vol_1"]
    assert await held_members(redis) == ["vol_1"]
    assert await redis.zrange(POSITIONS_SEEN, 0, -1) == ["vol_1"]
    assert await positions.set_off_duty_batch(redis, []) == 0


async def test_each_mode_is_searched_within_its_own_reach(redis: Redis) -> None:
    now = time.time()
    await on_duty(redis, "vol_walk_in", 400, now=now)
    await on_duty(redis, "vol_walk_out", 500, now=now)
    await on_duty(redis, "vol_bike_in", 800, now=now, travel_mode=TravelMode.BIKE)
    await on_duty(redis, "vol_bike_out", 900, now=now, travel_mode=TravelMode.BIKE)
    await on_duty(redis, "vol_car_in", 1200, now=now, travel_mode=TravelMode.CAR)
    await on_duty(redis, "vol_car_out", 1300, now=now, travel_mode=TravelMode.CAR)
    # Stale members beyond their mode's reach are not read at all, so not counted either.
    await on_duty(redis, "vol_walk_stale", 600, now=now - TTL - 5)
    reach = {TravelMode.WALK: 450.0, TravelMode.BIKE: 850.0, TravelMode.CAR: 1250.0}

    found, excluded = await search(redis, now=now, radius_m=reach)

    assert [c.volunteer_id for c in found] == ["vol_walk_in", "vol_bike_in", "vol_car_in"]
    assert [c.travel_mode for c in found] == [TravelMode.WALK, TravelMode.BIKE, TravelMode.CAR]
    assert excluded["stale"] == 0
    # A mode left out of the reach is not searched.
    found, _ = await search(redis, now=now, radius_m={TravelMode.CAR: 5000.0})
    assert [c.volunteer_id for c in found] == ["vol_car_in", "vol_car_out"]


async def test_the_limit_bounds_each_mode_nearest_first(redis: Redis) -> None:
    now = time.time()
    for i in range(4):
        await on_duty(redis, f"vol_w{i}", 100 + i * 10, now=now)
        await on_duty(redis, f"vol_b{i}", 105 + i * 10, now=now, travel_mode=TravelMode.BIKE)
    found, _ = await search(redis, now=now, limit=2)
    assert [c.volunteer_id for c in found] == ["vol_w0", "vol_b0", "vol_w1", "vol_b1"]


async def test_a_new_travel_mode_moves_the_held_position(redis: Redis) -> None:
    now = time.time()
    await on_duty(redis, "vol_a", 300, now=now)
    before = await held_position(redis, "vol_a")
    assert await redis.zrange(POSITIONS_BY_MODE["walk"], 0, -1) == ["vol_a"]

    assert await positions.refresh_meta(
        redis, volunteer_id="vol_a", meta=meta(travel_mode=TravelMode.CAR)
    )
    assert await redis.exists(POSITIONS_BY_MODE["walk"]) == 0
    assert await redis.zrange(POSITIONS_BY_MODE["car"], 0, -1) == ["vol_a"]
    after = await held_position(redis, "vol_a")
    assert before is not None and after is not None and haversine_m(*before, *after) < 0.5
    # Updates now land in the car set; checking in again on foot moves it back.
    lat, lng = north_of(CENTER, 50)
    assert await positions.update_position(redis, volunteer_id="vol_a", lat=lat, lng=lng, now=now)
    assert await held_members(redis) == ["vol_a"]
    assert await redis.zrange(POSITIONS_BY_MODE["car"], 0, -1) == ["vol_a"]
    await on_duty(redis, "vol_a", 60, now=now)
    assert await redis.zrange(POSITIONS_BY_MODE["walk"], 0, -1) == ["vol_a"]
    assert await held_members(redis) == ["vol_a"]
    found, _ = await search(redis, now=now)
    assert [(c.volunteer_id, c.travel_mode) for c in found] == [("vol_a", TravelMode.WALK)]


async def test_however_dense_the_centre_a_bounded_search_finds_the_nearest(redis: Redis) -> None:
    # Crowds that fill a first quarter-reach circle, fall just short of it, or leave it nearly
    # empty, around a sparser ring: whatever circles the search tries, its n members are the
    # n nearest of the whole reach (an unbounded search, cut to n).
    rng = random.Random(1983)
    for layout, (crowd, crowd_m, ring) in enumerate(
        [(60, 200, 300), (25, 240, 300), (3, 150, 400), (0, 0, 250), (150, 60, 100)]
    ):
        await redis.flushdb()
        now = time.time()
        items = []
        for n in range(crowd + ring):
            metres = rng.uniform(0, crowd_m) if n < crowd else rng.uniform(250, 1200)
            bearing = rng.uniform(0, 2 * math.pi)
            lat = CENTER[0] + metres * math.cos(bearing) / 111_195.0
            lng = CENTER[1] + metres * math.sin(bearing) / (
                111_195.0 * math.cos(math.radians(CENTER[0]))
            )
            items.append((f"vol_{layout}_{n:03d}", meta(), lat, lng))
        await positions.set_on_duty_batch(redis, items, now=now)
        everyone, _ = await search(redis, now=now, limit=10_000)
        assert len(everyone) > 100
        for limit in (1, 5, 20, 40, 70, 100):
            found, _ = await search(redis, now=now, limit=limit)
            assert found == everyone[:limit], (layout, limit)


async def test_a_bounded_search_widens_until_it_has_the_nearest(redis: Redis) -> None:
    now = time.time()
    # Within a quarter of the 1,000 m reach: one; within half: still one; within all: three.
    for vid, metres in (("vol_far", 900), ("vol_near", 100), ("vol_mid", 600)):
        await on_duty(redis, vid, metres, now=now)
    found, _ = await search(redis, now=now, limit=2)
    assert [c.volunteer_id for c in found] == ["vol_near", "vol_mid"]
    found, _ = await search(redis, now=now, limit=1)
    assert [c.volunteer_id for c in found] == ["vol_near"]


def east_of(point: tuple[float, float], metres: float) -> tuple[float, float]:
    return point[0], point[1] + metres / (111_195.0 * math.cos(math.radians(point[0])))


async def test_waypoints_add_their_nearest_when_the_reach_holds_more_than_the_limit(
    redis: Redis,
) -> None:
    now = time.time()
    # A crowd of walkers north of the centre, and a few around a point 600 m east of it.
    for i in range(10):
        await on_duty(redis, f"vol_n{i}", 20 + i * 20, now=now)
    waypoint = east_of(CENTER, 600)
    for vid, metres in (("vol_e0", 10), ("vol_e1", 30), ("vol_e2", 60), ("vol_e3", 150)):
        lat, lng = east_of(waypoint, metres)
        await positions.set_on_duty(redis, volunteer_id=vid, meta=meta(), lat=lat, lng=lng, now=now)
    await on_duty(redis, "vol_bike", 700, now=now, travel_mode=TravelMode.BIKE)
    reach = {TravelMode.WALK: 1000.0, TravelMode.BIKE: 1000.0}
    around = positions.Waypoint(*waypoint, {TravelMode.WALK: 100.0, TravelMode.BIKE: 100.0})

    found, _ = await search(
        redis, now=now, radius_m=reach, limit=3, waypoints=[around], per_waypoint=2
    )

    # The centre's 3 nearest walkers and the waypoint's 2 nearest within its 100 m; the bikes'
    # reach holds fewer than 3, so all of them are found and their waypoint search is not needed.
    assert sorted(c.volunteer_id for c in found) == sorted(
        ["vol_n0", "vol_n1", "vol_n2", "vol_e0", "vol_e1", "vol_bike"]
    )
    assert [c.distance_m for c in found] == sorted(c.distance_m for c in found)
    # Within 40 m of the waypoint only two: its third nearest (60 m) is not read.
    tight = positions.Waypoint(*waypoint, {TravelMode.WALK: 40.0})
    found, _ = await search(
        redis, now=now, radius_m=reach, limit=3, waypoints=[tight], per_waypoint=5
    )
    assert {"vol_e0", "vol_e1"} <= {c.volunteer_id for c in found}
    assert not {"vol_e2", "vol_e3"} & {c.volunteer_id for c in found}
    # A waypoint among the centre's nearest: each member is found once.
    near = positions.Waypoint(*north_of(CENTER, 40), {TravelMode.WALK: 500.0})
    found, _ = await search(
        redis, now=now, radius_m=reach, limit=3, waypoints=[near], per_waypoint=4
    )
    ids = [c.volunteer_id for c in found]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(["vol_n0", "vol_n1", "vol_n2", "vol_n3", "vol_bike"])
