"""Parsing requests and rendering responses at the HTTP edge."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from aiohttp.hdrs import CONTENT_ENCODING

from geo import Crs, from_wgs84
from rescue import jsonio
from rescue.errors import ApiError, invalid
from rescue.typedefs import settings_key

JSON_TYPES = ("application/json",)


def json_response(
    data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A JSON response (UTF-8, no ASCII escaping: names are Chinese)."""
    return web.Response(
        body=jsonio.dumps(data, default=str),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def require_media_type(request: web.Request, *allowed: str) -> str:
    """The request's media type, or a 415 naming the accepted ones."""
    media = request.content_type.lower()
    if media not in allowed:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type must be {' or '.join(allowed)}, not {media or 'missing'}",
        )
    return media


async def read_body(request: web.Request, *, max_bytes: int) -> bytes:
    """The raw body, refusing more than max_bytes with a 413."""
    length = request.content_length
    if length is not None:
        if length > max_bytes:
            raise _too_large(max_bytes)
        if length and CONTENT_ENCODING not in request.headers:
            # The parser delivers exactly Content-Length bytes: one read, cheaper than the
            # chunk iterator on the position-update hot path. A compressed body is inflated
            # by aiohttp, so its length is not the body's: it takes the counting loop below
            # (as does an empty body, whose stream refuses even readexactly(0)).
            return await request.content.readexactly(length)
    chunks = []
    size = 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(413, "body_too_large", f"the request body is larger than {max_bytes} bytes")


def decode_json(raw: bytes) -> Any:
    """Decode UTF-8 JSON or raise a 400 `invalid_json`."""
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_json", "the body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ApiError(
            400, "invalid_json", f"the body is not valid JSON: {exc.msg} at line {exc.lineno}"
        ) from None


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body (415, 413 and 400 as the contract says)."""
    require_media_type(request, *JSON_TYPES)
    settings = request.app[settings_key]
    data = decode_json(await read_body(request, max_bytes=settings.max_body_bytes))
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return data


def response_crs(request: web.Request) -> Crs:
    """The coordinate system asked for by `?crs=` (WGS-84 by default)."""
    raw = request.query.get("crs")
    if raw is None:
        return Crs.WGS84
    try:
        return Crs(raw.lower())
    except ValueError:
        raise invalid("crs", "must be wgs84, gcj02 or bd09") from None


def render_location(lat: float, lng: float, crs: Crs) -> dict[str, Any]:
    """A location in the response's coordinate system."""
    if crs is not Crs.WGS84:
        lat, lng = from_wgs84(lat, lng, crs)
    return {"lat": round(lat, 7), "lng": round(lng, 7), "crs": crs.value}


def page_limit(request: web.Request) -> int:
    """`?limit=`: default 100, at most 1000."""
    raw = request.query.get("limit", "100")
    try:
        limit = int(raw)
    except ValueError:
        raise invalid("limit", "must be an integer from 1 to 1000") from None
    if not 1 <= limit <= 1000:
        raise invalid("limit", "must be an integer from 1 to 1000")
    return limit


def encode_cursor(last_id: str) -> str:
    """An opaque cursor after the given id."""
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(request: web.Request) -> str | None:
    """The id a `?cursor=` points after, or None."""
    raw = request.query.get("cursor")
    if not raw:
        return None
    try:
        decoded = base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=b"-_", validate=True)
        last_id = decoded.decode()
    except (ValueError, UnicodeDecodeError):
        last_id = ""
    # Only a cursor this service could have issued round-trips exactly.
    if not last_id or encode_cursor(last_id) != raw:
        raise invalid("cursor", "is not a cursor this service issued")
    return last_id


def page(items: list[Any], ids: list[str], limit: int) -> dict[str, Any]:
    """A list body: fetch limit+1 rows, give limit and a cursor when there is more."""
    if len(items) > limit:
        return {"items": items[:limit], "next_cursor": encode_cursor(ids[limit - 1])}
    return {"items": items, "next_cursor": None}
