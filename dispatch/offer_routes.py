"""HTTP routes of the volunteer's own offers (volunteer token)."""

from __future__ import annotations

from aiohttp import web

from dispatch import offers
from dispatch.models import STATUS_MARKERS
from dispatch.render import render_offer
from dispatch.routes import domain_errors
from rescue.auth import Role, principal_of, requires
from rescue.http import (
    decode_cursor,
    json_response,
    page,
    page_limit,
    read_json_object,
    response_crs,
)
from rescue.typedefs import db_key, dispatch_key, redis_key
from rescue.validation import Fields

routes = web.RouteTableDef()


@routes.get("/v1/me/offers")
@requires(Role.VOLUNTEER)
async def list_offers(request: web.Request) -> web.Response:
    """The volunteer's open offers, and the accepted one it is still engaged in."""
    crs = response_crs(request)
    limit = page_limit(request)
    after = decode_cursor(request)
    volunteer_id = principal_of(request).id
    async with request.app[db_key].acquire() as conn:
        rows = await offers.list_offers(
            conn, volunteer_id=volunteer_id, after=after, limit=limit + 1
        )
    config = request.app[dispatch_key]
    items = [render_offer(r, crs=crs, config=config) for r in rows]
    return json_response(page(items, [r["id"] for r in rows], limit))


@routes.post("/v1/me/offers/{offer_id}/accept")
@requires(Role.VOLUNTEER)
@domain_errors
async def accept_offer(request: web.Request) -> web.Response:
    """Accept: the incident's location and the guidance session are revealed."""
    crs = response_crs(request)
    app = request.app
    row = await offers.accept_offer(
        pool=app[db_key],
        redis=app[redis_key],
        config=app[dispatch_key],
        volunteer_id=principal_of(request).id,
        offer_id=request.match_info["offer_id"],
    )
    return json_response(render_offer(row, crs=crs, config=app[dispatch_key]))


@routes.post("/v1/me/offers/{offer_id}/decline")
@requires(Role.VOLUNTEER)
@domain_errors
async def decline_offer(request: web.Request) -> web.Response:
    """Decline an open offer."""
    crs = response_crs(request)
    app = request.app
    row = await offers.decline_offer(
        pool=app[db_key],
        config=app[dispatch_key],
        volunteer_id=principal_of(request).id,
        offer_id=request.match_info["offer_id"],
    )
    return json_response(render_offer(row, crs=crs, config=app[dispatch_key]))


@routes.post("/v1/me/offers/{offer_id}/status")
@requires(Role.VOLUNTEER)
@domain_errors
async def post_status(request: web.Request) -> web.Response:
    """A responder's status marker on its accepted offer."""
    crs = response_crs(request)
    fields = Fields(await read_json_object(request))
    fields.unknown(["status"])
    status = fields.enum("status", STATUS_MARKERS, required=True)
    fields.check()
    assert status is not None
    app = request.app
    row = await offers.report_status(
        pool=app[db_key],
        redis=app[redis_key],
        config=app[dispatch_key],
        volunteer_id=principal_of(request).id,
        offer_id=request.match_info["offer_id"],
        status=status,
    )
    return json_response(render_offer(row, crs=crs, config=app[dispatch_key]))
