"""Operations endpoints: liveness, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from rescue.http import json_response
from rescue.openapi import openapi_document
from rescue.typedefs import db_key, metrics_key, redis_key

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()

_CHECK_TIMEOUT_S = 2.0


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """The process is up."""
    return json_response({"status": "ok"})


async def _check_postgres(request: web.Request) -> str:
    async with request.app[db_key].acquire(timeout=_CHECK_TIMEOUT_S) as conn:
        await conn.fetchval("SELECT 1")
    return "ok"


async def _check_redis(request: web.Request) -> str:
    await request.app[redis_key].ping()
    return "ok"


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """PostgreSQL and Redis answer; a 503 names the one that does not."""
    checks: dict[str, str] = {}
    for name, check in (("postgres", _check_postgres), ("redis", _check_redis)):
        try:
            checks[name] = await asyncio.wait_for(check(request), _CHECK_TIMEOUT_S)
        except Exception as exc:  # any failure means not ready; say which and why
            checks[name] = f"failed: {type(exc).__name__}"
            logger.warning("readiness check %s failed: %r", name, exc)
    failing = [name for name, result in checks.items() if result != "ok"]
    if failing:
        body = {
            "status": "unavailable",
            "checks": checks,
            "error": {
                "code": "dependency_unavailable",
                "message": f"not ready: {', '.join(failing)} unavailable",
                "details": [{"field": name, "problem": checks[name]} for name in failing],
            },
        }
        return json_response(body, status=503, headers={"Retry-After": "5"})
    return json_response({"status": "ready", "checks": checks})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format."""
    body = request.app[metrics_key].render()
    return web.Response(
        body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
    )


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of the whole contract."""
    return json_response(openapi_document())
