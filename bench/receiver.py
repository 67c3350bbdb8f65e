"""The 120 center's callback receiver in the bench: `bench.receiver:app_factory` under gunicorn
(one worker), the URL the bench's dispatch center registers as its `callback_url`.

It answers every callback 204 at once, as a center's receiver that queues what it gets would,
and counts what arrived: callbacks by type, deliveries seen twice (by `webhook-id`), and the
lag from each event's `at` (the service's clock when the event happened, the incident's
creation for `incident.created`) to its arrival, on the same machine's clock. Signatures are
not checked here (the test suite checks them); the bench measures what callbacks cost the
service, not the receiver.

`GET /stats` returns the counts since the last `GET /stats?reset=1`.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from aiohttp import web

from bench.stats import summary

_STATE = web.AppKey("state", dict)


def _fresh() -> dict[str, Any]:
    return {"by_type": {}, "ids": set(), "duplicates": 0, "bad": 0, "lag_ms": [], "created": []}


async def callback(request: web.Request) -> web.Response:
    """One callback: counted, answered 204."""
    received = time.time()
    state = request.app[_STATE]
    try:
        payload = json.loads(await request.read())
        kind = str(payload["type"])
        at = datetime.fromisoformat(payload["at"]).timestamp()
    except (ValueError, KeyError, TypeError):
        state["bad"] += 1
        return web.Response(status=204)
    webhook_id = request.headers.get("webhook-id", "")
    if webhook_id in state["ids"]:
        state["duplicates"] += 1
    state["ids"].add(webhook_id)
    state["by_type"][kind] = state["by_type"].get(kind, 0) + 1
    lag = (received - at) * 1000
    state["lag_ms"].append(lag)
    if kind == "incident.created":
        state["created"].append(lag)
    return web.Response(status=204)


async def stats(request: web.Request) -> web.Response:
    """What arrived since the last reset (`?reset=1` starts a new count after this one)."""
    state = request.app[_STATE]
    body = {
        "count": sum(state["by_type"].values()),
        "by_type": state["by_type"],
        "duplicates": state["duplicates"],
        "bad": state["bad"],
        "lag_ms": summary(state["lag_ms"]),
        "created_lag_ms": summary(state["created"]),
    }
    if request.query.get("reset") == "1":
        state.update(_fresh())
    return web.json_response(body)


async def ready(request: web.Request) -> web.Response:
    """Ready once started."""
    return web.json_response({"status": "ready"})


async def app_factory() -> web.Application:
    """The receiver (run it with one worker: the counts live in the process)."""
    app = web.Application()
    app[_STATE] = _fresh()
    app.router.add_post("/callbacks", callback)
    app.router.add_get("/stats", stats)
    app.router.add_get("/readyz", ready)
    return app
