"""Registers the dispatch package's routes and background work on the application."""

from __future__ import annotations

import logging

from aiohttp import web

from dispatch import fanout
from dispatch.callback_routes import routes as callback_routes
from dispatch.callbacks import setup_callbacks
from dispatch.escalation import escalation_ctx
from dispatch.guidance.setup import setup as setup_guidance
from dispatch.mission_routes import routes as mission_routes
from dispatch.models import DispatchConfig, PlanStrategy
from dispatch.offer_routes import routes as offer_routes
from dispatch.planner import DEFAULT_STRATEGY
from dispatch.reports import routes as report_routes
from dispatch.routes import routes as incident_routes
from dispatch.tokens import derive_token_key
from rescue.settings import Settings
from rescue.typedefs import aed_index_key, bus_key, dispatch_key, settings_key

logger = logging.getLogger(__name__)


def build_config(settings: Settings, strategy: PlanStrategy = DEFAULT_STRATEGY) -> DispatchConfig:
    """Everything the alert path needs, computed once per worker."""
    return DispatchConfig(
        model=settings.travel_model,
        strategy=strategy,
        time_budget_s=settings.time_budget_s,
        max_time_budget_s=max(settings.max_time_budget_s, settings.time_budget_s),
        escalation_step_s=settings.escalation_step_s,
        escalation_window_s=settings.escalation_window_s,
        offer_ttl_s=settings.offer_ttl_s,
        position_ttl_s=settings.position_ttl_s,
        offers_aed=settings.offers_aed,
        offers_cpr=settings.offers_cpr,
        needed_aed=settings.needed_aed,
        needed_cpr=settings.needed_cpr,
        guidance_url=settings.base_url.rstrip("/") + "/v1/guidance/",
        timezone=settings.timezone,
        token_key=derive_token_key(settings.admin_token),
    )


def setup(app: web.Application, *, strategy: PlanStrategy = DEFAULT_STRATEGY) -> None:
    """Add this package's routes, bus subscriptions and cleanup contexts to the app.

    Needs app[settings_key] and, for the phones' fan-out and the callbacks, the bus installed
    at app[bus_key] (rescue.bus.install_bus) before this is called.
    """
    config = build_config(app[settings_key], strategy)
    app[dispatch_key] = config
    app.router.add_routes(incident_routes)
    app.router.add_routes(offer_routes)
    app.router.add_routes(callback_routes)
    app.router.add_routes(report_routes)
    app.router.add_routes(mission_routes)
    app.cleanup_ctx.append(escalation_ctx(config))
    setup_guidance(app)
    if bus_key not in app:
        logger.error("no event bus installed: phones and 120 will not hear about incidents")
        return
    app[bus_key].subscribe_batch(
        fanout.GROUP,
        fanout.make_handler(config, lambda: app.get(aed_index_key)),
        types=fanout.TYPES,
    )
    setup_callbacks(app)
