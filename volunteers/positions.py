"""Live duty state and positions in Redis: check-in/out, updates, candidate search, engagement.

Only the latest position is kept (no history), in the GEO set of the volunteer's travel mode
(`POSITIONS_BY_MODE`; the mode is read from the duty meta, so an update needs no more from the
phone). A search reads each mode's set within that mode's own reach of the time budget: every
volunteer who can arrive in time is examined and nobody who cannot (a walker 1 km away is not
read to find the cyclists at that distance), instead of the nearest N of every mode, which in
a dense centre cut off faster volunteers a little farther out. A position counts while its
last-seen score is within the TTL; searches filter on the score, and a background pruner
removes stale members. Every operation is one Redis round trip (a pipeline, or one of the Lua
scripts of volunteers.scripts).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import operator
import weakref
from collections.abc import Iterable, Mapping, Sequence

from redis.asyncio import Redis

from geo import TravelMode, geohash
from volunteers import scripts
from volunteers.constants import ENGAGED, META, POSITION_KEYS, POSITIONS_BY_MODE, POSITIONS_SEEN
from volunteers.eligibility import ENGAGED as ENGAGED_REASON
from volunteers.eligibility import (
    EXCLUSION_REASONS,
    OFF_DUTY,
    STALE,
    VolunteerMeta,
    decode_meta,
    eligibility_problem,
    encode_meta,
)
from volunteers.models import Candidate, Coverage, Waypoint
from volunteers.scripts import MODE_KEYS, MODES

logger = logging.getLogger(__name__)

__all__ = [
    "Candidate",
    "Coverage",
    "Waypoint",
    "engage",
    "engaged_in",
    "is_on_duty",
    "prune_stale",
    "refresh_meta",
    "refresh_meta_many",
    "release",
    "search_candidates",
    "set_off_duty",
    "set_off_duty_batch",
    "set_on_duty",
    "set_on_duty_batch",
    "stored_positions",
    "update_position",
    "update_positions_batch",
]

# The members of one mode a search examines at most, its nearest first (for one mode, nearer is
# sooner), when the caller gives no bounds of its own. `python -m bench.plans --cap N`, 1,000
# urban points: on the Qingdao bench data (110,000 on duty) plans with 100 per mode were
# identical to plans with no bound (60: 21 differed); on the province data (1,000,000) 150 per
# mode changed 4 plans of 1,000 at the alert's budget and 6-7 at a wave's (200: 2), each in its
# third AED fetcher only (BENCHMARKS.md, session 12). The service bounds its searches by what
# its plan can use instead (waypoints: dispatch.planner.search_bounds), which reads fewer
# members and changed none of those plans (session 14).
MODE_CAP = 150
_BATCH = 1000


async def set_on_duty(
    redis: Redis, *, volunteer_id: str, meta: VolunteerMeta, lat: float, lng: float, now: float
) -> None:
    """Check a volunteer in at a position (atomically: meta, position, last seen)."""
    await set_on_duty_batch(redis, [(volunteer_id, meta, lat, lng)], now=now)


async def set_on_duty_batch(
    redis: Redis, items: Sequence[tuple[str, VolunteerMeta, float, float]], *, now: float
) -> None:
    """Check many volunteers in at once: (volunteer_id, meta, lat, lng) each (the demo fleet).

    Each position goes to its mode's set and leaves the others (the mode may have changed
    since the volunteer's last check-in).
    """
    for start in range(0, len(items), _BATCH):
        chunk = items[start : start + _BATCH]
        async with redis.pipeline(transaction=True) as pipe:
            pipe.hset(META, mapping={vid: encode_meta(meta) for vid, meta, _, _ in chunk})
            for key in POSITION_KEYS:
                geo: list[float | str] = []
                elsewhere: list[str] = []
                for vid, meta, lat, lng in chunk:
                    if POSITIONS_BY_MODE[meta.travel_mode.value] == key:
                        geo.extend((lng, lat, vid))
                    else:
                        elsewhere.append(vid)
                if geo:
                    pipe.geoadd(key, geo)
                if elsewhere:
                    pipe.zrem(key, *elsewhere)
            pipe.zadd(POSITIONS_SEEN, {vid: now for vid, _, _, _ in chunk})
            await pipe.execute()


async def set_off_duty(redis: Redis, *, volunteer_id: str) -> bool:
    """Check a volunteer out: their position is forgotten at once. True if they were on duty."""
    return await set_off_duty_batch(redis, [volunteer_id]) == 1


async def set_off_duty_batch(redis: Redis, volunteer_ids: Sequence[str]) -> int:
    """Check many volunteers out at once (the demo fleet); how many were on duty."""
    was_on = 0
    for start in range(0, len(volunteer_ids), _BATCH):
        chunk = volunteer_ids[start : start + _BATCH]
        async with redis.pipeline(transaction=True) as pipe:
            pipe.hdel(META, *chunk)
            for key in (*POSITION_KEYS, POSITIONS_SEEN):
                pipe.zrem(key, *chunk)
            removed, *_ = await pipe.execute()
        was_on += int(removed)
    return was_on


async def stored_positions(
    redis: Redis, volunteer_ids: Sequence[str]
) -> list[tuple[float, float] | None]:
    """The (lat, lng) held for each volunteer, None where none is (one round trip)."""
    if not volunteer_ids:
        return []
    found: list[tuple[float, float] | None] = [None] * len(volunteer_ids)
    async with redis.pipeline(transaction=False) as pipe:
        for key in POSITION_KEYS:
            for start in range(0, len(volunteer_ids), _BATCH):
                pipe.geopos(key, *volunteer_ids[start : start + _BATCH])
        replies = await pipe.execute()
    chunks = iter(replies)
    for _key in POSITION_KEYS:
        for start in range(0, len(volunteer_ids), _BATCH):
            for offset, position in enumerate(next(chunks)):
                if position is not None:
                    found[start + offset] = (float(position[1]), float(position[0]))
    return found


async def is_on_duty(redis: Redis, volunteer_id: str) -> bool:
    """Whether the volunteer is checked in."""
    return bool(await redis.hexists(META, volunteer_id))


async def update_position(
    redis: Redis, *, volunteer_id: str, lat: float, lng: float, now: float
) -> bool:
    """Record the latest position of an on-duty volunteer; False (nothing written) if off duty.

    Concurrent calls on one client are coalesced into one script call per event-loop turn:
    each caller still waits for its own write (one round trip), and under load the worker
    sends one EVALSHA for many phones instead of one each.
    """
    writer = _WRITERS.get(redis)
    if writer is None:
        writer = _WRITERS[redis] = _PositionWriter(redis)
    return await writer.write(volunteer_id, lng, lat, now)


async def update_positions_batch(
    redis: Redis, items: Iterable[tuple[str, float, float]], *, now: float
) -> list[bool]:
    """Positions of many volunteers, (volunteer_id, lat, lng) each; per item, whether on duty."""
    return await _write_positions(redis, [(vid, lng, lat, now) for vid, lat, lng in items])


async def _write_positions(
    redis: Redis, quads: Sequence[tuple[str, float, float, float]]
) -> list[bool]:
    script = scripts.registered(redis).update
    accepted: list[bool] = []
    for start in range(0, len(quads), _BATCH):
        args = [value for quad in quads[start : start + _BATCH] for value in quad]
        flags = await script(keys=[*MODE_KEYS, META, POSITIONS_SEEN], args=args)
        accepted.extend(bool(f) for f in flags)
    return accepted


class _PositionWriter:
    """Coalesces one client's position updates; one batch in flight keeps them in order."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._pending: list[tuple[tuple[str, float, float, float], asyncio.Future[bool]]] = []
        self._draining: asyncio.Task[None] | None = None

    async def write(self, volunteer_id: str, lng: float, lat: float, now: float) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append(((volunteer_id, lng, lat, now), future))
        if self._draining is None:
            self._draining = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        batch: list[tuple[tuple[str, float, float, float], asyncio.Future[bool]]] = []
        try:
            await asyncio.sleep(0)  # let the requests of this loop turn join the batch
            while self._pending:
                batch, self._pending = self._pending[:_BATCH], self._pending[_BATCH:]
                try:
                    flags = await _write_positions(self._redis, [quad for quad, _ in batch])
                except Exception as exc:  # each waiting caller gets the failure
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), flag in zip(batch, flags, strict=True):
                    if not future.done():
                        future.set_result(flag)
        finally:
            self._draining = None
            for _, future in batch:  # only when cancelled mid-write: nobody is left waiting
                future.cancel()


_WRITERS: weakref.WeakKeyDictionary[Redis, _PositionWriter] = weakref.WeakKeyDictionary()


async def refresh_meta(redis: Redis, *, volunteer_id: str, meta: VolunteerMeta) -> bool:
    """Rewrite an on-duty volunteer's eligibility facts (after PATCH); False if off duty."""
    return await refresh_meta_many(redis, {volunteer_id: meta}) == 1


async def refresh_meta_many(redis: Redis, metas: Mapping[str, VolunteerMeta]) -> int:
    """Rewrite the facts of those of these volunteers who are on duty; how many were."""
    script = scripts.registered(redis).refresh
    pairs = list(metas.items())
    refreshed = 0
    for start in range(0, len(pairs), _BATCH):
        args: list[str] = []
        for vid, meta in pairs[start : start + _BATCH]:
            args.extend((vid, encode_meta(meta)))
        refreshed += int(await script(keys=[*MODE_KEYS, META], args=args))
    return refreshed


_NEAREST_FIRST = operator.attrgetter("distance_m", "volunteer_id")
SEARCH_KEYS = [*MODE_KEYS, POSITIONS_SEEN, META, ENGAGED]


def search_args(
    *,
    lat: float,
    lng: float,
    radius_m: float | Mapping[TravelMode, float],
    min_seen: float,
    limit: int = MODE_CAP,
    waypoints: Sequence[Waypoint] = (),
    per_waypoint: int = 0,
    covered: bool = False,
) -> list[float]:
    """The search script's ARGV (volunteers.scripts.SEARCH) for `search_candidates`."""
    if isinstance(radius_m, Mapping):
        reach = [float(radius_m.get(mode, 0.0)) for mode in MODES]
    else:
        reach = [float(radius_m)] * len(MODES)
    args: list[float] = [lng, lat, *reach, max(1, limit), min_seen]
    if covered or (waypoints and per_waypoint > 0):
        args.append(per_waypoint)
        # Waypoints not searched are not sent: the script would report them read.
        for w in waypoints if per_waypoint > 0 else ():
            args.extend((w.lng, w.lat, *(float(w.radius_m.get(mode, 0.0)) for mode in MODES)))
    return args


async def search_candidates(
    redis: Redis,
    *,
    lat: float,
    lng: float,
    radius_m: float | Mapping[TravelMode, float],
    now: float,
    ttl_s: int,
    at_local: dt.datetime,
    limit: int = MODE_CAP,
    waypoints: Sequence[Waypoint] = (),
    per_waypoint: int = 0,
    covered: bool = False,
) -> tuple[list[Candidate], dict[str, int], Coverage]:
    """Eligible volunteers within reach, nearest first, the excluded counted by reason, and
    where every member was read (with waypoints, or when `covered`; otherwise empty).

    `radius_m`: the reach of each travel mode (a mode not given is not searched), or one
    radius for all. One round trip: per mode a GEOSEARCH of its set within its reach (at
    most `limit` members, nearest first), then last-seen, engagement and meta per member, in
    Lua. With `waypoints` and `per_waypoint`, a mode whose reach holds more than `limit` is
    also searched around each waypoint, within the waypoint's radius for the mode, for its
    `per_waypoint` nearest members (each member is found once).
    """
    stale, engaged, off_duty, flat, distinct, cover = await scripts.registered(redis).search(
        keys=SEARCH_KEYS,
        args=search_args(
            lat=lat,
            lng=lng,
            radius_m=radius_m,
            min_seen=now - ttl_s,
            limit=limit,
            waypoints=waypoints,
            per_waypoint=per_waypoint,
            covered=covered,
        ),
    )
    excluded = dict.fromkeys(EXCLUSION_REASONS, 0)
    excluded[STALE] = int(stale)
    excluded[ENGAGED_REASON] = int(engaged)
    excluded[OFF_DUTY] = int(off_duty)
    metas = [decode_meta(raw) for raw in distinct]
    problems = [eligibility_problem(meta, at_local) for meta in metas]
    lngs, lats, distances = geohash.decode_measured(flat[1::3], lng, lat)
    candidates: list[Candidate] = []
    for volunteer_id, at_lat, at_lng, distance, k in zip(
        flat[0::3], lats, lngs, distances, flat[2::3], strict=True
    ):
        problem = problems[k - 1]
        if problem is not None:
            excluded[problem] += 1
            continue
        candidates.append(
            Candidate(volunteer_id, at_lat, at_lng, distance, metas[k - 1].travel_mode)
        )
    candidates.sort(key=_NEAREST_FIRST)
    return candidates, excluded, _coverage(cover)


def _coverage(cover: Sequence[int]) -> Coverage:
    """The search script's cover list: per mode, then per waypoint and mode (empty: none)."""
    if not cover:
        return Coverage({}, [])
    read = [None if int(d) < 0 else float(d) for d in cover]
    centre, rest = read[: len(MODES)], read[len(MODES) :]
    return Coverage(
        dict(zip(MODES, centre, strict=True)),
        [
            dict(zip(MODES, rest[i : i + len(MODES)], strict=True))
            for i in range(0, len(rest), len(MODES))
        ],
    )


async def engage(redis: Redis, *, volunteer_id: str, incident_id: str) -> bool:
    """Mark a volunteer engaged in an incident; True if now engaged in it (or already was)."""
    return bool(
        await scripts.registered(redis).engage(keys=[ENGAGED], args=[volunteer_id, incident_id])
    )


async def release(redis: Redis, *, volunteer_id: str, incident_id: str) -> None:
    """Free a volunteer, only if engaged in this incident (compare-and-delete)."""
    await scripts.registered(redis).release(keys=[ENGAGED], args=[volunteer_id, incident_id])


async def engaged_in(redis: Redis, volunteer_id: str) -> str | None:
    """The incident a volunteer is engaged in, or None."""
    value = await redis.hget(ENGAGED, volunteer_id)
    return str(value) if value is not None else None


async def prune_stale(redis: Redis, *, now: float, ttl_s: int, batch: int = _BATCH) -> int:
    """Remove positions not refreshed within ttl_s (duty state is kept); how many."""
    script = scripts.registered(redis).prune
    total = 0
    while True:
        removed = int(await script(keys=[*MODE_KEYS, POSITIONS_SEEN], args=[now - ttl_s, batch]))
        total += removed
        if removed < batch:
            return total
