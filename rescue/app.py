"""The aiohttp application factory: one cleanup context per resource, in dependency order."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from redis.asyncio import BlockingConnectionPool, Redis

from dispatch.setup import setup as setup_dispatch
from rescue import db
from rescue.aeds.routes import routes as aed_routes
from rescue.aeds.sync import aed_index_ctx
from rescue.area import load_service_area
from rescue.auth import Authenticator
from rescue.bus import bus_ctx, install_bus
from rescue.centers.routes import routes as center_routes
from rescue.demo.fleet import fleet_ctx
from rescue.foreground import Foreground
from rescue.metrics import Metrics
from rescue.middleware import auth_middleware, error_middleware, metrics_middleware
from rescue.ops import routes as ops_routes
from rescue.settings import Settings
from rescue.typedefs import (
    area_key,
    auth_key,
    background_key,
    db_key,
    foreground_key,
    metrics_key,
    redis_key,
    settings_key,
)
from rescue.ui import routes as ui_routes
from volunteers.setup import setup as setup_volunteers

logger = logging.getLogger(__name__)

CleanupCtx = Callable[[web.Application], AsyncIterator[None]]


async def postgres_ctx(app: web.Application) -> AsyncIterator[None]:
    """The PostgreSQL pool (schema migrated) and the authenticator that uses it."""
    settings = app[settings_key]
    await db.migrate_dsn(settings.database_url)
    pool = await db.create_pool(settings.database_url)
    app[db_key] = pool
    app[auth_key] = Authenticator(admin_token=settings.admin_token, pool=pool)
    yield
    await pool.close()


def create_redis(
    url: str, *, socket_timeout: float | None = 1.0, max_connections: int = 100
) -> Redis:
    """A Redis client that fails fast when Redis is down (the alert answers degraded).

    When all `max_connections` are busy, a command waits for one to be free, up to the command's
    own timeout: redis-py's default pool raised at once instead, and an alert whose search met
    a full pool (a burst of position updates, or Redis stalled for a few milliseconds under
    one) answered degraded, without volunteers, though Redis was up.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=socket_timeout,
        decode_responses=True,
        socket_connect_timeout=0.25,
        socket_timeout=socket_timeout,
        retry_on_timeout=False,
        health_check_interval=30,
    )
    return Redis.from_pool(pool)


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    """The Redis client (connections are made lazily: the service starts even if Redis is down)."""
    settings = app[settings_key]
    client = create_redis(settings.redis_url, max_connections=settings.redis_max_connections)
    app[redis_key] = client
    yield
    await client.aclose()


def create_app(*, settings: Settings | None = None, background: bool = True) -> web.Application:
    """The service; `background=False` leaves out the bus consumers (one-off tools)."""
    settings = settings or Settings.from_env()
    app = web.Application(
        middlewares=[error_middleware, metrics_middleware, auth_middleware],
        client_max_size=settings.max_import_bytes,
    )
    app[settings_key] = settings
    app[metrics_key] = Metrics()
    app[area_key] = load_service_area()
    app.cleanup_ctx.append(postgres_ctx)
    app.cleanup_ctx.append(redis_ctx)
    app.cleanup_ctx.append(bus_ctx)
    app.cleanup_ctx.append(aed_index_ctx)
    app.router.add_routes(ops_routes)
    app.router.add_routes(center_routes)
    app.router.add_routes(aed_routes)
    app.router.add_routes(ui_routes)
    app[background_key] = background
    app[foreground_key] = Foreground()
    install_bus(app)
    setup_volunteers(app)
    setup_dispatch(app)
    app.cleanup_ctx.append(fleet_ctx)
    return app
