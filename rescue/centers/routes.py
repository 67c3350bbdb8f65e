"""HTTP routes of the dispatch centers (admin)."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from rescue.auth import Role, requires
from rescue.centers import service
from rescue.http import json_response, read_json_object
from rescue.typedefs import db_key
from rescue.validation import Fields

routes = web.RouteTableDef()


def check_callback_url(fields: Fields, key: str, value: str | None) -> None:
    """A callback URL must be an absolute http(s) URL."""
    if value is None:
        return
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        fields.fail(key, "must be an absolute http:// or https:// URL")


@routes.post("/v1/dispatch-centers")
@requires(Role.ADMIN)
async def create_center(request: web.Request) -> web.Response:
    """Create a dispatch center with its API key and webhook secret (shown only here)."""
    body = await read_json_object(request)
    fields = Fields(body)
    fields.unknown(["name", "callback_url"])
    name = fields.str("name", required=True, max_len=200)
    callback_url = fields.str("callback_url", max_len=2000)
    check_callback_url(fields, "callback_url", callback_url)
    fields.check()
    assert name is not None
    async with request.app[db_key].acquire() as conn:
        center = await service.create_center(conn, name=name, callback_url=callback_url)
    return json_response(
        {
            "id": center["id"],
            "name": center["name"],
            "callback_url": center["callback_url"],
            "api_key": center["api_key"],
            "webhook_secret": center["webhook_secret"],
            "created_at": center["created_at"].isoformat(),
        },
        status=201,
    )
