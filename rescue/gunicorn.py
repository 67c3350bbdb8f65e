"""The gunicorn entry point: several workers, each one aiohttp application.

    gunicorn rescue.gunicorn:app_factory --worker-class aiohttp.GunicornUVLoopWebWorker \\
        --workers 2 --bind 127.0.0.1:8080

Settings come from the environment, read in each worker at start-up.
"""

from __future__ import annotations

from aiohttp import web

from rescue.app import create_app
from rescue.heap import settle_on_startup
from rescue.logs import configure_logging
from rescue.settings import Settings


async def app_factory() -> web.Application:
    """One worker's application (gunicorn calls this in every worker)."""
    configure_logging()
    app = create_app(settings=Settings.from_env())
    # Last: once the app's own start-up ran, its long-lived heap is frozen (rescue/heap.py).
    app.on_startup.append(settle_on_startup)
    return app
