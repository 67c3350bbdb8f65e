"""HTTP routes of the 120 side: the alert and the incident (parse, call, render)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from dispatch import incidents, service
from dispatch.callbacks import callback_sender_key
from dispatch.errors import DispatchError
from dispatch.models import CATEGORIES, DispatchConfig, IncidentStatus
from dispatch.render import render_incident, render_plan
from rescue.auth import Principal, Role, principal_of, requires
from rescue.http import json_response, read_json_object, response_crs
from rescue.typedefs import (
    aed_index_key,
    area_key,
    bus_key,
    db_key,
    dispatch_key,
    foreground_key,
    metrics_key,
    redis_key,
    settings_key,
)
from rescue.validation import Fields, require_in_area

routes = web.RouteTableDef()

ALERT_FIELDS = (
    "external_id",
    "location",
    "address",
    "reported_at",
    "category",
    "exercise",
    "callback_url",
    "note",
)
OUTCOME_FIELDS = ("ems_arrived_at", "rosc", "transported", "survived", "notes")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def domain_errors(handler: Handler) -> Handler:
    """Map domain errors to their HTTP errors (keeps the handler's role marks)."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except DispatchError as exc:
            raise exc.to_api() from None

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    wrapped.__dict__.update(handler.__dict__)
    return wrapped


def request_hash(body: dict[str, Any]) -> bytes:
    """sha256 of the canonical JSON of a body (key order and spacing do not matter)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).digest()


def _check_url(fields: Fields, key: str, value: str | None) -> None:
    if value is None:
        return
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        fields.fail(key, "must be an absolute http:// or https:// URL")


def parse_alert(request: web.Request, body: dict[str, Any], center_id: str) -> service.Alert:
    """The alert in WGS-84: 400 naming every bad field, 422 outside the service area."""
    settings = request.app[settings_key]
    fields = Fields(body)
    fields.unknown(ALERT_FIELDS)
    external_id = fields.str("external_id", required=True, max_len=200)
    where = fields.location("location", default_crs=settings.default_crs, required=True)
    address = fields.str("address", max_len=500)
    reported_at = fields.timestamp("reported_at")
    category = fields.enum("category", CATEGORIES)
    exercise = fields.bool("exercise")
    callback_url = fields.str("callback_url", max_len=2000)
    _check_url(fields, "callback_url", callback_url)
    note = fields.str("note", max_len=2000)
    fields.check()
    assert external_id is not None and where is not None
    lat, lng = where
    area = request.app[area_key]
    require_in_area(area, lat, lng, field="location")
    district = area.district_of(lat, lng)
    return service.Alert(
        center_id=center_id,
        external_id=external_id,
        request_hash=request_hash(body),
        lat=lat,
        lng=lng,
        district=district.adcode if district is not None else None,
        address=address,
        reported_at=reported_at,
        category=category,
        exercise=bool(exercise),
        callback_url=callback_url,
        note=note,
    )


@routes.post("/v1/alerts")
@requires(Role.DISPATCH)
@domain_errors
async def post_alert(request: web.Request) -> web.Response:
    """A 120 alert: 201 with the plan; 200 with the same plan for a replay of the same body."""
    crs = response_crs(request)
    center_id = principal_of(request).id
    alert = parse_alert(request, await read_json_object(request), center_id)
    app = request.app
    config = app[dispatch_key]
    counter = app[metrics_key].alerts
    foreground = app[foreground_key]
    # In flight: this worker's background work waits for it (rescue.foreground).
    with foreground.busy():
        # A worker that serves only this alert queues and sends its callbacks itself; one
        # serving others too leaves them to the callbacks group, whose reads any worker may
        # take, so that their POSTs do not hold up its alerts.
        sender = app.get(callback_sender_key) if foreground.in_flight == 1 else None
        try:
            result = await service.raise_alert(
                pool=app[db_key],
                redis=app[redis_key],
                aeds=app[aed_index_key],
                config=config,
                alert=alert,
                bus=app.get(bus_key),
                callbacks=sender,
            )
        except DispatchError:
            counter.labels("conflict").inc()
            raise
        if result.created:
            counter.labels("created").inc()
            if result.plan["degraded"]:
                counter.labels("degraded").inc()
        else:
            counter.labels("replayed").inc()
        body = render_plan(result.plan, status=result.status, crs=crs, config=config)
        return json_response(body, status=201 if result.created else 200)


def _center_scope(principal: Principal) -> str | None:
    """The center whose incidents a principal sees; None (all) for an administrator."""
    return None if principal.role is Role.ADMIN else principal.id


def _render(view: incidents.IncidentView, request: web.Request, config: DispatchConfig) -> Any:
    return render_incident(
        view.incident, view.offers, view.timeline, crs=response_crs(request), config=config
    )


@routes.get("/v1/incidents/{incident_id}")
@requires(Role.DISPATCH, Role.ADMIN)
@domain_errors
async def get_incident(request: web.Request) -> web.Response:
    """The incident: plan, offers with their states, the timeline, the outcome."""
    response_crs(request)
    scope = _center_scope(principal_of(request))
    async with request.app[db_key].acquire() as conn:
        view = await incidents.get_incident(
            conn, incident_id=request.match_info["incident_id"], center_id=scope
        )
    return json_response(_render(view, request, request.app[dispatch_key]))


@routes.post("/v1/incidents/{incident_id}/cancel")
@requires(Role.DISPATCH, Role.ADMIN)
@domain_errors
async def cancel_incident(request: web.Request) -> web.Response:
    """Cancel an open incident (a reason is required)."""
    response_crs(request)
    fields = Fields(await read_json_object(request))
    fields.unknown(["reason"])
    reason = fields.str("reason", required=True, max_len=1000)
    fields.check()
    return await _end(request, IncidentStatus.CANCELLED, reason=reason)


@routes.post("/v1/incidents/{incident_id}/close")
@requires(Role.DISPATCH, Role.ADMIN)
@domain_errors
async def close_incident(request: web.Request) -> web.Response:
    """Close an open incident with its outcome."""
    response_crs(request)
    fields = Fields(await read_json_object(request))
    fields.unknown(["outcome"])
    raw = fields.object("outcome", required=True)
    outcome: dict[str, Any] = {}
    if raw is not None:
        sub = Fields(raw, prefix="outcome.")
        sub.unknown(OUTCOME_FIELDS)
        ems = sub.timestamp("ems_arrived_at")
        outcome = {
            "ems_arrived_at": ems.isoformat() if ems is not None else None,
            "rosc": sub.bool("rosc"),
            "transported": sub.bool("transported"),
            "survived": sub.bool("survived"),
            "notes": sub.str("notes", max_len=5000),
        }
        fields.problems.extend(sub.problems)
    fields.check()
    return await _end(request, IncidentStatus.CLOSED, outcome=outcome)


async def _end(
    request: web.Request,
    status: IncidentStatus,
    *,
    reason: str | None = None,
    outcome: dict[str, Any] | None = None,
) -> web.Response:
    principal = principal_of(request)
    app = request.app
    view = await incidents.end_incident(
        pool=app[db_key],
        redis=app[redis_key],
        incident_id=request.match_info["incident_id"],
        center_id=_center_scope(principal),
        actor=principal.id,
        status=status,
        reason=reason,
        outcome=outcome,
    )
    return json_response(_render(view, request, app[dispatch_key]))
