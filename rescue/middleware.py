"""Middlewares: the JSON error edge, metrics, and authentication."""

from __future__ import annotations

import logging
import time

from aiohttp import web

from rescue.auth import PRINCIPAL, allowed_roles, bearer_token, forbidden, unauthorized
from rescue.errors import ApiError
from rescue.http import json_response
from rescue.typedefs import auth_key, metrics_key

logger = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "rate_limited",
    503: "unavailable",
}


def _route_label(request: web.Request) -> str:
    route = request.match_info.route
    resource = route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def error_middleware(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    """Answer every error as JSON; log the unexpected with its request context."""
    try:
        return await handler(request)
    except ApiError as exc:
        return json_response(exc.body(), status=exc.status, headers=exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        message = exc.reason
        if exc.status == 404:
            message = f"no such path: {request.path}"
        elif exc.status == 405:
            message = f"{request.method} is not allowed on {request.path}"
        elif exc.status == 413:
            message = "the request body is too large"
        body = ApiError(exc.status, code, message).body()
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        return json_response(body, status=exc.status, headers=headers)
    except Exception:
        logger.exception("unexpected error on %s %s", request.method, _route_label(request))
        body = ApiError(500, "internal_error", "an unexpected error occurred").body()
        return json_response(body, status=500)


@web.middleware
async def metrics_middleware(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    """Count and time each request by route (the route's pattern, never its parameters)."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except ApiError as exc:
        status = exc.status
        raise
    finally:
        request.app[metrics_key].observe_request(
            request.method, _route_label(request), status, time.perf_counter() - started
        )


@web.middleware
async def auth_middleware(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    """Resolve the bearer token for handlers that require a role: 401 unknown, 403 wrong role."""
    roles = allowed_roles(request.match_info.handler)
    if roles is None:
        return await handler(request)
    token = bearer_token(request)
    if token is None:
        raise unauthorized()
    principal = await request.app[auth_key].resolve(token)
    if principal is None:
        raise unauthorized()
    if principal.role not in roles:
        raise forbidden(f"this endpoint is for {', '.join(sorted(roles))}, not {principal.role}")
    request[PRINCIPAL] = principal
    return await handler(request)
