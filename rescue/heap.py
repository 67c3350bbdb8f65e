"""The garbage collector in a worker that must answer in milliseconds.

CPython's full (oldest-generation) collection walks every tracked object. A worker holds a large,
long-lived heap from its start (the AED index: 20,000 AEDs at province scale, the modules,
caches), and an alert allocates a burst of short-lived ones (candidates, routes, the plan), so
every so often an alert paid for a full walk of the heap: in process, at province scale, the
plan phase's p99 was 102 ms with the collector as it is and 12 ms with it disabled
(`python -m bench.phases`, BENCHMARKS.md). `settle()` collects once and then freezes what is
alive (`gc.freeze()`): those objects move to a permanent generation that later collections skip.
Objects made afterwards are collected as usual. A frozen object that later becomes garbage is
still freed by reference counting (an AED replaced in the index, say); only one caught in a
reference cycle stays until the worker exits, and the start-up heap holds few of those.
"""

from __future__ import annotations

import gc
import logging

from aiohttp import web

logger = logging.getLogger(__name__)


def settle() -> int:
    """Collect, then freeze every object alive now; how many are frozen in all."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    logger.debug("gc: %d objects frozen", frozen)
    return frozen


async def settle_on_startup(app: web.Application) -> None:
    """An on_startup handler, appended after the app's own start-up (its AED index loaded) by
    the entry points that run the service (gunicorn, `python -m rescue serve`); not by
    create_app, so a process that builds many apps (the tests) does not freeze them."""
    settle()
