"""The demo fleet: synthetic volunteers on duty where people are by day, so alerts get real plans.

With `RESCUE_DEMO=1` one worker (a Redis lock) keeps `RESCUE_DEMO_FLEET` (default 8,000, about 8 %
of the roughly 100,000 eligible demo volunteers: a plausible daytime on-duty share) on duty near
their workplace anchors, sending a heartbeat every ~30 s with a position moved a few tens of
metres. `RESCUE_DEMO_FLEET=0` turns it off.

- **Who**: demo volunteers (demo ids) who are active, hold a certificate valid today and have no
  token (a token means a person may drive that volunteer from a phone), ranked by md5 of the id:
  a fixed pseudo-random sample, spread like the population. Read from PostgreSQL once, and again
  on each new local day (certificates expire at midnight; those who drop out are checked out).
- **How many, by local hour**: 30 % of the size from 23:00 to 07:00, 60 % from 07:00 to 09:00
  and 19:00 to 23:00, all of it from 09:00 to 19:00. The smaller sets are prefixes of the
  ranking, so the same people stay on at night and the others check out.
- **Where**: first near the anchor (`volunteer_day_position`), then a random walk: steps of about
  20 m (at most 50 m), kept within 150 m of the anchor (the anchor is on land), and a step into
  the sea is not taken (one vectorised point-in-polygon test per round, about 2 ms for 8,000).
  The walk continues from the positions held in Redis, so a worker taking over carries it on.
- **Writes** go through volunteers.positions (set_on_duty_batch, update_positions_batch), so
  search_candidates sees them with their eligibility facts; check-outs use the same key layout.
- **Stopping**: the driver is cancelled and the lock released (another worker takes over at its
  next heartbeat). Nothing is checked out: positions go stale and are pruned after
  RESCUE_POSITION_TTL_S, so searches stop finding them; the duty flags stay until the next start.
- **Failures**: Redis or PostgreSQL down is logged once and retried every heartbeat; the worker
  never crashes. A crashed driver's lease runs out after two heartbeats and another takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import random
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import asyncpg
import numpy as np
import shapely
from aiohttp import web
from numpy.typing import NDArray
from redis.asyncio import Redis

from geo import ServiceArea
from rescue.area import load_service_area
from rescue.demo.constants import VOLUNTEER_PREFIX, id_prefix, volunteer_index
from rescue.demo.positions import volunteer_anchors, volunteer_day_position
from rescue.settings import Settings
from rescue.typedefs import area_key, background_key, db_key, redis_key, settings_key
from volunteers.constants import META, POSITION_KEYS, POSITIONS_SEEN
from volunteers.eligibility import VolunteerMeta
from volunteers.models import meta_of
from volunteers.positions import set_on_duty_batch, stored_positions, update_positions_batch

logger = logging.getLogger(__name__)

__all__ = [
    "FleetDriver",
    "FleetLock",
    "FleetRoster",
    "duty_share",
    "duty_size",
    "fleet_ctx",
    "fleet_key",
    "heartbeat_interval_s",
    "load_roster",
    "run_fleet_once",
    "walk",
]

# The one Redis key of the demo package: which worker drives the fleet.
LOCK_KEY = "rescue:demo:fleet:lock"

NIGHT_SHARE = 0.3
SHOULDER_SHARE = 0.6
STEP_SIGMA_M = 15.0
MAX_STEP_M = 50.0
WANDER_M = 150.0
# Spread of the first position around the anchor: most start within WANDER_M.
START_SPREAD_M = 60.0
# Members per Redis command in the reads and check-outs (one pipeline round trip per chunk).
CHUNK = 2000
_M_PER_DEG_LAT = 110_574.0
_M_PER_DEG_LNG_EQUATOR = 111_320.0

SELECT_FLEET = """
SELECT id, travel_mode, cert_expires_on, status, quiet_hours
FROM volunteers
WHERE id LIKE $1 AND status = 'active' AND cert_expires_on >= $2 AND token_hash IS NULL
ORDER BY md5(id), id
LIMIT $3
"""

# KEYS: lock. ARGV: token, ttl_ms. Extends the lock only while this holder still owns it.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS: lock. ARGV: token. Deletes the lock only if this holder owns it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def duty_share(hour: int) -> float:
    """The share of the fleet on duty at this local hour (0-23)."""
    if hour >= 23 or hour < 7:
        return NIGHT_SHARE
    if hour < 9 or hour >= 19:
        return SHOULDER_SHARE
    return 1.0


def duty_size(size: int, at_local: dt.datetime) -> int:
    """How many of a fleet of `size` are on duty at this local time."""
    return round(size * duty_share(at_local.hour))


def heartbeat_interval_s(ttl_s: int) -> float:
    """Seconds between heartbeats: a quarter of the position TTL, between 1 and 30."""
    return max(1.0, min(30.0, ttl_s / 4))


@dataclass(frozen=True, slots=True)
class FleetRoster:
    """The fleet in duty order: ids, eligibility facts and workplace anchors (lat, lng)."""

    ids: tuple[str, ...]
    metas: tuple[VolunteerMeta, ...]
    anchors: NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.ids)


async def load_roster(
    pool: asyncpg.Pool | asyncpg.Connection,
    *,
    size: int,
    today: dt.date,
    area: ServiceArea | None = None,
) -> FleetRoster:
    """The first `size` eligible demo volunteers in the fleet's fixed order (one query)."""
    rows = await pool.fetch(SELECT_FLEET, id_prefix(VOLUNTEER_PREFIX) + "%", today, size)
    ids: list[str] = []
    metas: list[VolunteerMeta] = []
    indexes: list[int] = []
    for row in rows:
        try:
            index = volunteer_index(row["id"])
        except ValueError:  # shares the prefix but is not one of the generated volunteers
            continue
        ids.append(row["id"])
        metas.append(meta_of(row))
        indexes.append(index)
    area = area or load_service_area()
    # The anchors are computed once per process (about 0.3 s of CPU): off the event loop.
    all_anchors = await asyncio.to_thread(volunteer_anchors, area=area)
    anchors = all_anchors[np.array(indexes, dtype=np.int64)].reshape(-1, 2)
    return FleetRoster(ids=tuple(ids), metas=tuple(metas), anchors=anchors)


def walk(
    current: NDArray[np.float64],
    anchors: NDArray[np.float64],
    rng: np.random.Generator,
    area: ServiceArea,
) -> NDArray[np.float64]:
    """One random step (at most MAX_STEP_M) per (lat, lng), kept near its anchor and on land."""
    if not len(current):
        return current.copy()
    m_per_deg_lng = _M_PER_DEG_LNG_EQUATOR * np.cos(np.radians(anchors[:, 0]))
    scale = np.column_stack((np.full(len(anchors), _M_PER_DEG_LAT), m_per_deg_lng))
    offset = (current - anchors) * scale
    step = rng.normal(0.0, STEP_SIGMA_M, size=current.shape)
    length = np.hypot(step[:, 0], step[:, 1])
    step *= np.minimum(1.0, MAX_STEP_M / np.maximum(length, 1e-9))[:, None]
    length = np.minimum(length, MAX_STEP_M)
    # A step leaving the disk around the anchor is turned toward the anchor instead: each
    # move stays within MAX_STEP_M and a walker outside the disk only comes closer.
    proposed = offset + step
    outside = np.hypot(proposed[:, 0], proposed[:, 1]) > WANDER_M
    if outside.any():
        away = offset[outside]
        norm = np.maximum(np.hypot(away[:, 0], away[:, 1]), 1e-9)
        proposed[outside] = away - away / norm[:, None] * length[outside][:, None]
    moved: NDArray[np.float64] = anchors + proposed / scale
    on_land = shapely.intersects_xy(area.outline, moved[:, 1], moved[:, 0])
    moved[~on_land] = current[~on_land]
    return moved


async def run_fleet_once(
    redis: Redis,
    pool: asyncpg.Pool | asyncpg.Connection,
    settings: Settings,
    *,
    size: int,
    rng: random.Random,
    roster: FleetRoster | None = None,
    area: ServiceArea | None = None,
    now: float | None = None,
) -> int:
    """One heartbeat of the fleet: the hour's share on duty and moved, the rest checked out.

    Loads the roster from PostgreSQL when none is given; returns how many are on duty.
    """
    now = time.time() if now is None else now
    at_local = dt.datetime.fromtimestamp(now, settings.timezone)
    area = area or load_service_area()
    if roster is None:
        roster = await load_roster(pool, size=size, today=at_local.date(), area=area)
    target = min(len(roster), duty_size(size, at_local))
    on_ids = roster.ids[:target]

    current = await _positions(redis, on_ids)
    known = np.flatnonzero(~np.isnan(current[:, 0]))
    moved = walk(current[known], roster.anchors[known], _numpy_rng(rng), area)
    accepted = await update_positions_batch(
        redis,
        ((on_ids[i], float(lat), float(lng)) for i, (lat, lng) in zip(known, moved, strict=True)),
        now=now,
    )
    # Not on duty yet (first round, after a check-out, or Redis lost its data): check them in,
    # walked on if a position was still there, else near the anchor.
    arrivals: list[tuple[str, VolunteerMeta, float, float]] = [
        (on_ids[i], roster.metas[i], float(lat), float(lng))
        for i, (lat, lng), ok in zip(known, moved, accepted, strict=True)
        if not ok
    ]
    new = sorted(set(range(target)) - set(known.tolist()))
    if new:
        starts = await asyncio.to_thread(_day_positions, [on_ids[i] for i in new], rng, area)
        arrivals += [
            (on_ids[i], roster.metas[i], lat, lng)
            for i, (lat, lng) in zip(new, starts, strict=True)
        ]
    if arrivals:
        await set_on_duty_batch(redis, arrivals, now=now)
    await _set_off_duty_many(redis, roster.ids[target:])
    return target


def _numpy_rng(rng: random.Random) -> np.random.Generator:
    return np.random.default_rng(rng.getrandbits(128))


def _day_positions(
    ids: Sequence[str], rng: random.Random, area: ServiceArea
) -> list[tuple[float, float]]:
    return [volunteer_day_position(vid, rng, area=area, spread_m=START_SPREAD_M) for vid in ids]


async def _positions(redis: Redis, ids: Sequence[str]) -> NDArray[np.float64]:
    """The (lat, lng) held for each id, NaN where there is none; one round trip."""
    result = np.full((len(ids), 2), math.nan)
    for row, position in enumerate(await stored_positions(redis, ids)):
        if position is not None:
            result[row] = position
    return result


async def _set_off_duty_many(redis: Redis, ids: Sequence[str]) -> None:
    """Check these volunteers out: the key layout of volunteers.positions.set_off_duty."""
    if not ids:
        return
    async with redis.pipeline(transaction=True) as pipe:
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            pipe.hdel(META, *chunk)
            for key in (*POSITION_KEYS, POSITIONS_SEEN):
                pipe.zrem(key, *chunk)
        await pipe.execute()


class FleetLock:
    """A Redis lease (SET NX PX, renewed by its holder) so that one worker drives the fleet."""

    def __init__(self, redis: Redis, *, ttl_ms: int, key: str = LOCK_KEY) -> None:
        self._redis = redis
        self._key = key
        self._ttl_ms = ttl_ms
        self._token = secrets.token_hex(16)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self.held = False

    async def hold(self) -> bool:
        """Take the lock if free, or extend it if this holder has it; whether held now."""
        if self.held:
            self.held = bool(await self._renew(keys=[self._key], args=[self._token, self._ttl_ms]))
        if not self.held:
            self.held = bool(
                await self._redis.set(self._key, self._token, nx=True, px=self._ttl_ms)
            )
        return self.held

    async def release(self) -> None:
        """Give the lock up (only if this holder has it), so another worker takes over at once."""
        if self.held:
            self.held = False
            await self._release(keys=[self._key], args=[self._token])


class FleetDriver:
    """Runs the fleet's heartbeats in the background while this worker holds the lock."""

    def __init__(
        self,
        *,
        redis: Redis,
        pool: asyncpg.Pool | asyncpg.Connection,
        settings: Settings,
        area: ServiceArea,
        rng: random.Random | None = None,
    ) -> None:
        self._redis = redis
        self._pool = pool
        self._settings = settings
        self._area = area
        self._rng = rng or random.Random()
        self.interval_s = heartbeat_interval_s(settings.position_ttl_s)
        # Renewed every heartbeat; a crashed holder's lease runs out within two more.
        self.lock = FleetLock(redis, ttl_ms=int((2 * self.interval_s + 5) * 1000))
        self._roster: FleetRoster | None = None
        self._roster_day: dt.date | None = None
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0
        self.failures = 0
        self.on_duty = 0

    @property
    def leading(self) -> bool:
        """Whether this worker drives the fleet."""
        return self.lock.held

    def start(self) -> None:
        """Start the background task."""
        self._task = asyncio.create_task(self._run(), name="demo-fleet")

    async def stop(self) -> None:
        """Cancel the task and release the lock; positions expire by TTL."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await asyncio.wait_for(self.lock.release(), timeout=2.0)
        except Exception as exc:  # Redis down: the lease runs out by itself
            logger.info("demo fleet lock not released: %r", exc)

    async def tick(self, *, now: float | None = None) -> bool:
        """One heartbeat if this worker holds (or takes) the lock; whether it ran."""
        if not await self.lock.hold():
            return False
        now = time.time() if now is None else now
        size = self._settings.demo_fleet
        today = dt.datetime.fromtimestamp(now, self._settings.timezone).date()
        # Read once, and again each new day: certificates expire at midnight.
        if not self._roster or self._roster_day != today:
            roster = await load_roster(self._pool, size=size, today=today, area=self._area)
            if self._roster:
                await _set_off_duty_many(
                    self._redis, sorted(set(self._roster.ids) - set(roster.ids))
                )
            self._roster, self._roster_day = roster, today
            logger.info("demo fleet: %d eligible demo volunteers to drive", len(roster))
        first = self.rounds == 0
        self.on_duty = await run_fleet_once(
            self._redis,
            self._pool,
            self._settings,
            size=size,
            rng=self._rng,
            roster=self._roster,
            area=self._area,
            now=now,
        )
        self.rounds += 1
        log = logger.info if first else logger.debug
        log("demo fleet: %d volunteers on duty", self.on_duty)
        return True

    async def _run(self) -> None:
        failing = False
        while True:
            try:
                await self.tick()
                if failing:
                    logger.info("demo fleet recovered")
                failing = False
            except Exception as exc:  # Redis or PostgreSQL down: never crash the worker
                self.failures += 1
                if not failing:
                    logger.warning("demo fleet paused, will retry: %r", exc)
                failing = True
            await asyncio.sleep(self.interval_s)


fleet_key: web.AppKey[FleetDriver] = web.AppKey("demo_fleet", FleetDriver)


async def fleet_ctx(app: web.Application) -> AsyncIterator[None]:
    """Drive the demo fleet (demo mode, RESCUE_DEMO_FLEET > 0, workers with background work)."""
    settings = app[settings_key]
    driver: FleetDriver | None = None
    if settings.demo and settings.demo_fleet > 0 and app[background_key]:
        area = app[area_key] if area_key in app else load_service_area()
        driver = FleetDriver(redis=app[redis_key], pool=app[db_key], settings=settings, area=area)
        app[fleet_key] = driver
        driver.start()
    yield
    if driver is not None:
        await driver.stop()
