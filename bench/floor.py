"""The floor: a minimal aiohttp app doing only the unavoidable I/O of an alert and of a position.

`POST /alert` {"external_id", "location": {"lat", "lng"}}: the GEOSEARCH of each travel mode's
live positions within that mode's reach, as the service searches them (one pipeline: one round
trip), one INSERT committed, the response.
`PUT /location` {"volunteer_id", "lat", "lng"}: one GEOADD (into a set of the floor's own).
Run under gunicorn exactly like the service
(`gunicorn bench.floor:app_factory --worker-class aiohttp.GunicornUVLoopWebWorker`), reading
BENCH_FLOOR_DATABASE_URL and BENCH_FLOOR_REDIS_URL. The harness creates the table first.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web
from redis.asyncio import BlockingConnectionPool, Redis

from geo import TravelMode
from rescue.settings import Settings
from volunteers.constants import POSITIONS_BY_MODE
from volunteers.positions import MODE_CAP

_DB: web.AppKey[asyncpg.Pool] = web.AppKey("floor_db", asyncpg.Pool)
_REDIS: web.AppKey[Redis] = web.AppKey("floor_redis", Redis)

# The service's search: each mode's set within the mode's reach of the budget, its nearest
# MODE_CAP members at most.
_SETTINGS = Settings()
REACH_M = {
    POSITIONS_BY_MODE[mode.value]: _SETTINGS.travel_model.reach_m(_SETTINGS.time_budget_s, mode)
    for mode in TravelMode
}
COUNT = MODE_CAP
# The floor knows no travel modes: its position updates go to a set of its own, so that they
# never put a volunteer into a second mode's set of the service's data.
FLOOR_POSITIONS = "bench:floor:positions"

CREATE_TABLE = """CREATE TABLE IF NOT EXISTS bench_floor_alerts (
    external_id text PRIMARY KEY,
    lat double precision NOT NULL,
    lng double precision NOT NULL,
    candidates integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now())"""
INSERT = (
    "INSERT INTO bench_floor_alerts (external_id, lat, lng, candidates) VALUES ($1, $2, $3, $4)"
)


async def alert(request: web.Request) -> web.Response:
    """One GEOSEARCH, one committed INSERT, the response."""
    body = await request.json()
    lat, lng = body["location"]["lat"], body["location"]["lng"]
    async with request.app[_REDIS].pipeline(transaction=False) as pipe:
        for key, reach_m in REACH_M.items():
            pipe.execute_command(
                "GEOSEARCH", key, "FROMLONLAT", lng, lat, "BYRADIUS", reach_m, "m",
                "ASC", "COUNT", COUNT, "WITHDIST", "WITHCOORD",
            )  # fmt: skip
        replies = await pipe.execute()
    hits = sorted((hit for reply in replies for hit in reply), key=lambda h: float(h[1]))
    await request.app[_DB].execute(INSERT, body["external_id"], lat, lng, len(hits))
    nearest = [{"volunteer_id": h[0], "distance_m": float(h[1])} for h in hits[:6]]
    return web.json_response(
        {"external_id": body["external_id"], "responders": nearest}, status=201
    )


async def location(request: web.Request) -> web.Response:
    """One GEOADD."""
    body = json.loads(await request.read())
    point = (body["lng"], body["lat"], body["volunteer_id"])
    await request.app[_REDIS].geoadd(FLOOR_POSITIONS, point)
    return web.Response(status=204)


async def ready(request: web.Request) -> web.Response:
    """Ready once started (the cleanup context has connected)."""
    return web.json_response({"status": "ready"})


async def _resources(app: web.Application) -> AsyncIterator[None]:
    pool = await asyncpg.create_pool(os.environ["BENCH_FLOOR_DATABASE_URL"], min_size=2)
    assert pool is not None
    # As the service's pool (rescue.app.create_redis): a burst waits for a free connection.
    # The default pool failed the floor's position ramp at 9,000/s with "Too many connections".
    redis = Redis.from_pool(
        BlockingConnectionPool.from_url(
            os.environ["BENCH_FLOOR_REDIS_URL"], decode_responses=True, max_connections=100,
            timeout=1.0,
        )
    )  # fmt: skip
    app[_DB] = pool
    app[_REDIS] = redis
    yield
    await redis.aclose()
    await pool.close()


async def app_factory() -> web.Application:
    """One floor worker."""
    app = web.Application()
    app.cleanup_ctx.append(_resources)
    app.router.add_post("/alert", alert)
    app.router.add_put("/location", location)
    app.router.add_get("/readyz", ready)
    return app
