"""Registers the volunteers package's routes and background work on the application."""

from __future__ import annotations

from aiohttp import web

from volunteers.accesslog import install_log_redaction
from volunteers.background import pruner_ctx
from volunteers.channels import close_phone_sockets, phone_hub_ctx
from volunteers.channels import routes as channel_routes
from volunteers.routes import routes


def setup(app: web.Application) -> None:
    """Add this package's routes and cleanup contexts to the app.

    Needs the PostgreSQL/authenticator and Redis contexts before it (app.py's order).
    """
    app.router.add_routes(routes)
    app.router.add_routes(channel_routes)
    # The hub also carries the token-revocation listener: one PubSub connection per worker.
    app.cleanup_ctx.append(phone_hub_ctx)
    app.cleanup_ctx.append(pruner_ctx)
    app.on_shutdown.append(close_phone_sockets)
    install_log_redaction()
