"""The benchmark's data: its own database and Redis db, AEDs, volunteers on duty, tokens.

AEDs and volunteer rows come from the demo generator (rescue.demo); the province scale
multiplies the AEDs by jittering copies of the demo's sites. Volunteer rows go into PostgreSQL
with COPY (offers reference them); positions, last-seen and eligibility facts go straight into
Redis with pipelines, exactly as volunteers.positions.set_on_duty_batch writes them.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import numpy as np
import shapely
from redis.asyncio import Redis

from geo import ServiceArea
from rescue import db
from rescue.auth import hash_token
from rescue.demo.aeds import DemoAed, generate_aeds
from rescue.demo.districts import PLANS
from rescue.demo.volunteers import DemoVolunteer, generate_volunteers
from rescue.ids import seeded_id
from volunteers.constants import META, POSITIONS_BY_MODE, POSITIONS_SEEN
from volunteers.eligibility import encode_meta
from volunteers.models import meta_of

logger = logging.getLogger(__name__)

BENCH_DATABASE = "rescue_bench"
BENCH_REDIS_DB = 14
URBAN_DISTRICTS = ("370202", "370203", "370212", "370213")
# Volunteers live and work around the same centres as the AEDs, a little more spread out.
VOLUNTEER_SPREAD = 1.5
_M_PER_DEG_LAT = 110_574.0
_M_PER_DEG_LNG_EQUATOR = 111_320.0
_REDIS_BATCH = 5_000
_BENCH_AT_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z, the time part of province AED ids


@dataclass(frozen=True, slots=True)
class Scale:
    """How much data a run loads."""

    name: str
    aeds: int
    volunteers: int
    tokens: int
    # Past incidents already stored, closed, with their offers, timeline and callbacks (HISTORY).
    history: int


SCALES = {
    "tiny": Scale("tiny", aeds=50, volunteers=500, tokens=50, history=200),
    "qingdao": Scale("qingdao", aeds=1_983, volunteers=110_000, tokens=2_000, history=20_000),
    "province": Scale("province", aeds=20_000, volunteers=1_000_000, tokens=2_000, history=20_000),
}

# The records of `$1` past incidents, as a service that has run for a while holds them (20,000 is
# about two years of Qingdao's out-of-hospital cardiac arrests), each closed, with five expired
# offers, three timeline entries, a guidance session and six callbacks delivered at the first
# attempt: the rows the alert's and the callbacks' statements look up and add to. Without them
# the service is measured on empty tables, which no deployment runs on for long and which plan
# badly: PostgreSQL caches a statement's plan until the next ANALYZE of its tables, and a plan
# made when a table held a few pages scans or hashes the whole table, which then grows through
# the phase (recording a delivered run of callbacks took 2.3 ms on average over a phase of
# 3,000 alerts, against a median of 0.22 on tables with history). The history's own center has
# no callback URL, its offers go to the first `$2` volunteers (ids in the loaded registry, five
# different ones per incident), and its ids sort before every id the service makes. Returns how
# many incidents it stored.
HISTORY = """
WITH center AS (
    INSERT INTO dispatch_centers (id, name, api_key_hash, webhook_secret)
    VALUES ('ctr_00history', 'history', sha256('bench history'::bytea), 'history')
    RETURNING id
), registry AS (
    SELECT array_agg(id ORDER BY id) AS ids FROM (SELECT id FROM volunteers ORDER BY id LIMIT $2) v
), past AS (
    SELECT g, 'inc_00' || lpad(g::text, 24, '0') AS id,
           now() - make_interval(mins => 60 * 24 * 2 + g * 50) AS at
    FROM generate_series(1, $1) g
), incidents_ AS (
    INSERT INTO incidents (id, center_id, external_id, request_hash, lat, lng, district,
                           category, status, time_budget_s, budget_now_s, wave, plan,
                           created_at, closed_at, outcome)
    SELECT p.id, (SELECT id FROM center), 'history-' || p.g, sha256(p.id::bytea),
           36.07 + (p.g % 97) * 0.001, 120.38 + (p.g % 89) * 0.001, 'shinan',
           'cardiac_arrest', 'closed', 300, 420, 2,
           jsonb_build_object('responders', '[]'::jsonb, 'aeds', '[]'::jsonb,
                              'time_budget_s', 300),
           p.at, p.at + interval '40 minutes', '{"ems_arrived_at": null, "rosc": false}'
    FROM past p
    RETURNING id
), offers_ AS (
    INSERT INTO offers (id, incident_id, volunteer_id, role, state, wave, eta_s, distance_m,
                        offered_at, expires_at, answered_at)
    SELECT 'off_00' || lpad((p.g * 5 + k)::text, 24, '0'), p.id,
           r.ids[1 + (p.g * 5 + k) % cardinality(r.ids)], 'cpr', 'expired', 1,
           60 + k * 30, 200 + k * 150, p.at, p.at + interval '90 seconds',
           p.at + interval '90 seconds'
    FROM past p CROSS JOIN registry r CROSS JOIN generate_series(0, 4) k
), timeline_ AS (
    INSERT INTO timeline (incident_id, at, type, actor, data)
    SELECT p.id, p.at + make_interval(secs => k * 600),
           (ARRAY['created', 'offers_sent', 'closed'])[k + 1], 'system',
           jsonb_build_object('incident_id', p.id)
    FROM past p CROSS JOIN generate_series(0, 2) k
), guidance_ AS (
    INSERT INTO guidance_sessions (id, incident_id, created_at, closed_at)
    SELECT 'gds_00' || lpad(p.g::text, 24, '0'), p.id, p.at, p.at + interval '40 minutes'
    FROM past p
), deliveries AS (
    INSERT INTO webhook_deliveries (id, event_id, event_type, event_at, stage, incident_id,
                                    center_id, url, payload, created_at)
    SELECT 'whd_00' || lpad((p.g * 6 + k)::text, 24, '0'),
           'evt_00' || lpad((p.g * 6 + k)::text, 24, '0'),
           CASE WHEN k = 0 THEN 'incident.created' ELSE 'offer.created' END, p.at,
           CASE WHEN k = 0 THEN 0 ELSE 1 END, p.id, (SELECT id FROM center),
           'http://127.0.0.1:9/history',
           jsonb_build_object('incident_id', p.id, 'external_id', 'history-' || p.g,
                              'data', jsonb_build_object('wave', 1, 'eta_s', 60 + k * 30)),
           p.at
    FROM past p CROSS JOIN generate_series(0, 5) k
    RETURNING id, created_at
), attempts AS (
    INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, duration_ms, finished_at)
    SELECT id, 1, created_at, 200, 3, created_at FROM deliveries
)
SELECT count(*) FROM incidents_
"""


@dataclass(frozen=True, slots=True)
class Rider:
    """A volunteer with a token: drives position updates or holds the WebSocket."""

    volunteer_id: str
    token: str
    lat: float
    lng: float


@dataclass(frozen=True, slots=True)
class Loaded:
    """What a load put in place."""

    aeds: int
    volunteers: int
    on_duty: int
    riders: list[Rider]
    seconds: float
    history: int = 0  # past incidents stored (HISTORY)


def bench_urls(database: str, redis_db: int) -> tuple[str, str]:
    """The bench's own database and Redis db on the servers of DATABASE_URL and REDIS_URL."""
    database_url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/rescue")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    return with_database(database_url, database), with_redis_db(redis_url, redis_db)


def with_database(dsn: str, name: str) -> str:
    """The same server, another database."""
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


def with_redis_db(url: str, number: int) -> str:
    """The same Redis server, another database number."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{number}"))


async def reset(database_url: str, redis_url: str, *, owned_redis_db: bool = False) -> None:
    """An empty, migrated database and an empty Redis db (every run starts the same).

    Never the demo's or the tests' database, nor Redis db 0 (the demo's) or 15 (`make test`'s),
    unless the caller owns the db (`owned_redis_db`: the tiny bench test runs in its own)."""
    name = urlsplit(database_url).path.lstrip("/")
    if not owned_redis_db and urlsplit(redis_url).path.strip("/") in ("", "0", "15"):
        raise RuntimeError(f"refusing to flush Redis {redis_url}: not a benchmark db")
    await _recreate(database_url, name)
    await db.migrate_dsn(database_url)
    redis = Redis.from_url(redis_url)
    try:
        await redis.flushdb()
    finally:
        await redis.aclose()


async def copy_database(database_url: str, name: str) -> None:
    """Database `name`, on the same server, made afresh as a copy of `database_url`'s (which
    nobody may be connected to meanwhile)."""
    source = urlsplit(database_url).path.lstrip("/")
    await _recreate(database_url, name, template=source)


async def drop_database(database_url: str, name: str) -> None:
    """Drop database `name` on `database_url`'s server, if it exists (a copy the bench made):
    never the demo's or the tests' database."""
    await _recreate(database_url, name, create=False)


async def _recreate(
    database_url: str, name: str, *, template: str | None = None, create: bool = True
) -> None:
    """Drop database `name` on `database_url`'s server and create it again (`create`), empty or
    as a copy of `template`: never the demo's or the tests' database."""
    if name in ("", "rescue", "postgres") or name.endswith("_test"):
        raise RuntimeError(f"refusing to reset database {name!r}: not a benchmark database")
    admin = await asyncpg.connect(with_database(database_url, "postgres"))
    try:
        quoted = _quoted(name)
        await admin.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
        if not create:
            return
        # FILE_COPY: the files copied, not written through the WAL (PostgreSQL 15's default,
        # WAL_LOG, wrote each copy into the WAL, 540 MB at the province's scale, and the
        # checkpoint that followed ran through the first measured round).
        copy = f" TEMPLATE {_quoted(template)} STRATEGY FILE_COPY" if template is not None else ""
        await admin.execute(f"CREATE DATABASE {quoted}{copy}")
    finally:
        await admin.close()


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def province_aeds(area: ServiceArea, count: int, *, seed: int, today: dt.date) -> list[DemoAed]:
    """`count` AEDs: the demo's, then jittered copies of them (about 1 km) on the same land."""
    base = generate_aeds(area, seed=seed, today=today)
    rng = np.random.default_rng([seed, 7])
    out = list(base)
    copy = 0
    while len(out) < count:
        copy += 1
        for aed in base:
            if len(out) >= count:
                break
            lat, lng = _jitter(area, aed.lat, aed.lng, 1000.0, rng)
            n = len(out) + 1
            out.append(
                aed._replace(
                    id=seeded_id("aed", _BENCH_AT_MS, n),
                    lat=lat,
                    lng=lng,
                    serial_no=f"{aed.serial_no}-{copy}",
                    name=f"{aed.name} {copy}",
                )
            )
    return out


def _jitter(
    area: ServiceArea, lat: float, lng: float, sigma_m: float, rng: np.random.Generator
) -> tuple[float, float]:
    for _ in range(20):
        dlat, dlng = rng.normal(0.0, sigma_m, 2)
        cand = (
            round(lat + dlat / _M_PER_DEG_LAT, 6),
            round(lng + dlng / (_M_PER_DEG_LNG_EQUATOR * math.cos(math.radians(lat))), 6),
        )
        if area.contains(*cand):
            return cand
    return lat, lng


def volunteer_positions(
    area: ServiceArea, homes: np.ndarray, *, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A position for each volunteer on its home district's land, around its centres."""
    rng = np.random.default_rng([seed, 11])
    lat = np.zeros(len(homes))
    lng = np.zeros(len(homes))
    for plan in PLANS:
        idx = np.flatnonzero(homes == plan.adcode)
        if len(idx) == 0:
            continue
        geometry = area.district(plan.adcode).geometry
        shapely.prepare(geometry)
        weights = np.array([c.weight for c in plan.centres], dtype=float)
        pending = idx
        for _ in range(60):
            n = len(pending)
            scatter = rng.random(n) < max(plan.scatter, 0.02)
            which = rng.choice(len(plan.centres), size=n, p=weights / weights.sum())
            c_lat = np.array([plan.centres[i].lat for i in which])
            c_lng = np.array([plan.centres[i].lng for i in which])
            sigma = np.array([plan.centres[i].sigma_m for i in which]) * VOLUNTEER_SPREAD
            p_lat = c_lat + rng.normal(0.0, 1.0, n) * sigma / _M_PER_DEG_LAT
            p_lng = c_lng + rng.normal(0.0, 1.0, n) * sigma / (
                _M_PER_DEG_LNG_EQUATOR * np.cos(np.radians(c_lat))
            )
            min_lng, min_lat, max_lng, max_lat = shapely.bounds(geometry)
            p_lat = np.where(scatter, rng.uniform(min_lat, max_lat, n), p_lat)
            p_lng = np.where(scatter, rng.uniform(min_lng, max_lng, n), p_lng)
            inside = shapely.contains_xy(geometry, p_lng, p_lat)
            lat[pending[inside]] = np.round(p_lat[inside], 6)
            lng[pending[inside]] = np.round(p_lng[inside], 6)
            pending = pending[~inside]
            if len(pending) == 0:
                break
        else:  # pragma: no cover - the district's land is never that hard to hit
            raise RuntimeError(f"could not place volunteers in {plan.adcode}")
    return lat, lng


@functools.lru_cache(maxsize=65536)
def _meta_json(travel_mode: str, expires: dt.date, status: str, quiet: str | None) -> str:
    row = {
        "travel_mode": travel_mode,
        "cert_expires_on": expires,
        "status": status,
        "quiet_hours": quiet,
    }
    return encode_meta(meta_of(row))


async def put_on_duty(
    redis: Redis, vols: list[DemoVolunteer], lat: np.ndarray, lng: np.ndarray, now: float
) -> None:
    """Every volunteer checked in at its position (meta, its mode's GEO set, last seen)."""
    lat_l, lng_l = lat.tolist(), lng.tolist()
    for start in range(0, len(vols), _REDIS_BATCH):
        chunk = range(start, min(start + _REDIS_BATCH, len(vols)))
        pipe = redis.pipeline(transaction=False)
        metas = {}
        geo: dict[str, list[Any]] = {}
        for i in chunk:
            v = vols[i]
            metas[v.id] = _meta_json(v.travel_mode, v.cert_expires_on, v.status, v.quiet_hours)
            geo.setdefault(POSITIONS_BY_MODE[v.travel_mode], []).extend((lng_l[i], lat_l[i], v.id))
        pipe.hset(META, mapping=metas)
        for key, members in geo.items():
            pipe.geoadd(key, members)
        pipe.zadd(POSITIONS_SEEN, {vols[i].id: now for i in chunk})
        await pipe.execute()


async def refresh_seen(redis: Redis, now: float | None = None) -> int:
    """Mark every position as just seen (positions stay fresh through a long run)."""
    now = time.time() if now is None else now
    ids = await redis.zrange(POSITIONS_SEEN, 0, -1)
    for start in range(0, len(ids), 50_000):
        await redis.zadd(POSITIONS_SEEN, dict.fromkeys(ids[start : start + 50_000], now))
    return len(ids)


async def load(
    database_url: str,
    redis_url: str,
    area: ServiceArea,
    scale: Scale,
    *,
    seed: int,
    owned_redis_db: bool = False,
) -> Loaded:
    """Reset the bench stores and load a scale's AEDs, volunteers, positions and tokens."""
    started = time.perf_counter()
    await reset(database_url, redis_url, owned_redis_db=owned_redis_db)
    today = dt.datetime.now(dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=8))).date()
    if scale.aeds <= 1_983:
        aeds = generate_aeds(area, seed=seed, today=today)
        if scale.aeds < len(aeds):
            pick = np.random.default_rng([seed, 3]).choice(len(aeds), scale.aeds, replace=False)
            aeds = [aeds[i] for i in sorted(pick.tolist())]
    else:
        aeds = province_aeds(area, scale.aeds, seed=seed, today=today)
    vols = generate_volunteers(seed=seed, today=today, count=scale.volunteers)
    homes = np.array([v.home_district for v in vols])
    lat, lng = volunteer_positions(area, homes, seed=seed)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.copy_records_to_table("aeds", records=aeds, columns=list(DemoAed._fields))
        await conn.copy_records_to_table(
            "volunteers", records=vols, columns=list(DemoVolunteer._fields)
        )
        riders = await _issue_tokens(conn, vols, lat, lng, scale.tokens, today=today, seed=seed)
        history = 0
        if scale.history:
            history = await conn.fetchval(HISTORY, scale.history, min(10_000, len(vols)))
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    redis = Redis.from_url(redis_url)
    try:
        await put_on_duty(redis, vols, lat, lng, time.time())
    finally:
        await redis.aclose()
    return Loaded(
        aeds=len(aeds),
        volunteers=len(vols),
        on_duty=len(vols),
        riders=riders,
        seconds=round(time.perf_counter() - started, 1),
        history=history,
    )


async def _issue_tokens(
    conn: asyncpg.Connection,
    vols: list[DemoVolunteer],
    lat: np.ndarray,
    lng: np.ndarray,
    count: int,
    *,
    today: dt.date,
    seed: int,
) -> list[Rider]:
    """Tokens for `count` eligible volunteers of the urban districts (hashes stored, as usual)."""
    rng = np.random.default_rng([seed, 5])
    riders: list[Rider] = []
    eligible = [
        i
        for i, v in enumerate(vols)
        if v.status == "active"
        and v.cert_expires_on > today + dt.timedelta(days=30)
        and v.quiet_hours is None
        and v.home_district in URBAN_DISTRICTS
    ]
    for n, i in enumerate(eligible[:count]):
        token = f"vol_bench{n}_{rng.integers(1 << 62):x}"
        riders.append(Rider(vols[i].id, token, float(lat[i]), float(lng[i])))
    await conn.executemany(
        "UPDATE volunteers SET token_hash = $2 WHERE id = $1",
        [(r.volunteer_id, hash_token(r.token)) for r in riders],
    )
    return riders
