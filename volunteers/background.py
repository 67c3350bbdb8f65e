"""Background work of the volunteers package: pruning stale positions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from rescue.typedefs import background_key, redis_key, settings_key
from volunteers.positions import prune_stale

logger = logging.getLogger(__name__)


def prune_interval_s(ttl_s: int) -> float:
    """How often to prune: a twentieth of the TTL, between 1 and 5 seconds.

    Often, so that few stale positions wait at any time: the search reads the stale ones of
    the whole seen set in one range, and judges member by member when they are as many as the
    members it judges (volunteers.scripts.SEARCH). A prune with nothing to remove is one range
    read.
    """
    return max(1.0, min(5.0, ttl_s / 20))


async def _prune_forever(app: web.Application, stop: asyncio.Event) -> None:
    redis = app[redis_key]
    ttl_s = app[settings_key].position_ttl_s
    interval = prune_interval_s(ttl_s)
    failing = False
    while not stop.is_set():
        try:
            removed = await prune_stale(redis, now=time.time(), ttl_s=ttl_s)
            if removed:
                logger.debug("pruned %d stale positions", removed)
            if failing:
                logger.info("position pruner recovered")
            failing = False
        except Exception as exc:  # Redis down: searches still filter by last-seen; retry later
            if not failing:
                logger.warning("position pruner failed: %r", exc)
            failing = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval):
                await stop.wait()


async def pruner_ctx(app: web.Application) -> AsyncIterator[None]:
    """Periodically drop positions older than the TTL (only in workers running background work)."""
    task = None
    stop = asyncio.Event()
    if app[background_key]:
        task = asyncio.create_task(_prune_forever(app, stop), name="position-pruner")
    yield
    if task is not None:
        # The flag ends the loop even if Python 3.11's wait_for (used inside redis-py)
        # swallows the cancellation.
        stop.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
