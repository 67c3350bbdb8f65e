"""Registers the guidance sessions on the application (called by dispatch/setup.py)."""

from __future__ import annotations

import logging

from aiohttp import web

from dispatch.guidance import consumer
from dispatch.guidance.hub import close_guidance_sockets, guidance_hub_ctx
from dispatch.guidance.models import GuidanceConfig
from dispatch.guidance.protocol import FIRST_STEP, STEP_IDS, build_protocol
from dispatch.guidance.routes import routes
from rescue.settings import Settings
from rescue.typedefs import bus_key, guidance_key, settings_key

logger = logging.getLogger(__name__)


def build_config(settings: Settings) -> GuidanceConfig:
    """The protocol and limits, computed once per worker."""
    return GuidanceConfig(
        protocol=build_protocol(settings.metronome_per_min),
        step_ids=frozenset(STEP_IDS),
        first_step=FIRST_STEP,
    )


def setup(app: web.Application) -> None:
    """Routes, the worker's hub (after the Redis context) and the "guidance" bus group."""
    app[guidance_key] = build_config(app[settings_key])
    app.router.add_routes(routes)
    app.cleanup_ctx.append(guidance_hub_ctx)
    app.on_shutdown.append(close_guidance_sockets)
    if bus_key not in app:
        logger.error("no event bus installed: sessions will not hear of joins, phones, ends")
        return
    app[bus_key].subscribe(
        consumer.GROUP, consumer.handle, types=consumer.TYPES, transactional=True
    )
