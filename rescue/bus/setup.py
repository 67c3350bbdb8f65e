"""Wiring the bus into the aiohttp application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from rescue.bus.bus import Bus
from rescue.typedefs import (
    background_key,
    bus_key,
    db_key,
    foreground_key,
    metrics_key,
    settings_key,
)

# Headroom over XREADGROUP's BLOCK before the socket read times out.
_SOCKET_MARGIN_S = 5.0


def install_bus(app: web.Application, **options: Any) -> Bus:
    """Create the app's (unbound) bus at app[bus_key] so packages can subscribe before startup."""
    settings = app[settings_key]
    options.setdefault("claim_idle_ms", settings.bus_claim_idle_ms)
    options.setdefault("max_deliveries", settings.bus_max_deliveries)
    if metrics_key in app:
        options.setdefault("metrics", app[metrics_key])
    if foreground_key in app:
        options.setdefault("foreground", app[foreground_key])
    bus = Bus.unbound(**options)
    app[bus_key] = bus
    return bus


def create_bus_redis(url: str, *, block_ms: int) -> Redis:
    """A Redis client for the bus: its reads block up to block_ms, so its socket waits longer."""
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=0.25,
        socket_timeout=block_ms / 1000 + _SOCKET_MARGIN_S,
        # One quick retry (a pooled connection gone stale after a Redis restart); beyond that
        # the bus's own loops back off, so redis-py's default of ten retries would only stall.
        retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.1), 1),
    )


async def bus_ctx(app: web.Application) -> AsyncIterator[None]:
    """Bind the bus to the pool and its own Redis client; run it when background work is on."""
    bus = app[bus_key] if bus_key in app else install_bus(app)
    settings = app[settings_key]
    redis = create_bus_redis(settings.redis_url, block_ms=bus.block_ms)
    bus.bind(pool=app[db_key], redis=redis, dsn=settings.database_url)
    try:
        if app.get(background_key, True):
            await bus.start()
        yield
    finally:
        await bus.stop()
        await redis.aclose()
