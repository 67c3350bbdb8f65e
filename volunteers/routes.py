"""HTTP routes: the volunteer registry (admin) and the volunteer's own phone (/v1/me)."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from redis.exceptions import RedisError

from rescue.auth import Role, principal_of, requires
from rescue.errors import ApiError, Problem, invalid, not_found, unavailable
from rescue.http import (
    decode_cursor,
    json_response,
    page,
    page_limit,
    read_body,
    read_json_object,
    require_media_type,
)
from rescue.typedefs import (
    area_key,
    auth_key,
    db_key,
    foreground_key,
    redis_key,
    settings_key,
)
from rescue.validation import Fields, require_in_area
from volunteers import service
from volunteers.channels import publish_token_revoked
from volunteers.errors import (
    DuplicateCertificate,
    InvalidCertificateDates,
    NotOnDuty,
    VolunteerError,
    VolunteerNotFound,
)
from volunteers.inputs import parse_create, parse_patch, resolve_district
from volunteers.models import (
    CERTIFICATE_FILTERS,
    EXPIRING_WITHIN_DAYS,
    STATUSES,
    VolunteerFilter,
    certificate_window,
    volunteer_json,
)
from volunteers.roster import ImportReport, RosterError, import_roster, parse_roster

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _api_error(exc: VolunteerError) -> ApiError:
    if isinstance(exc, VolunteerNotFound):
        return not_found("volunteer", exc.volunteer_id)
    if isinstance(exc, DuplicateCertificate):
        return ApiError(
            409, exc.code, str(exc), [Problem("certificate.number", "already registered")]
        )
    if isinstance(exc, InvalidCertificateDates):
        return invalid(exc.field, str(exc))
    if isinstance(exc, NotOnDuty):
        return ApiError(409, exc.code, str(exc))
    return ApiError(403, exc.code, str(exc))  # Suspended, CertificateExpired


_REDIS_WARNING_EVERY_S = 10.0
_redis_warning = {"at": 0.0, "suppressed": 0}


def _warn_redis_failed(request: web.Request, exc: Exception) -> None:
    """Log a Redis failure at most every few seconds (phones retry many times a second)."""
    now = time.monotonic()
    if now - _redis_warning["at"] < _REDIS_WARNING_EVERY_S:
        _redis_warning["suppressed"] += 1
        return
    logger.warning(
        "redis failed on %s %s: %r (%d similar failures not logged)",
        request.method,
        request.match_info.route.resource.canonical if request.match_info.route.resource else "",
        exc,
        _redis_warning["suppressed"],
    )
    _redis_warning.update(at=now, suppressed=0)


def _domain(handler: Handler) -> Handler:
    """Map domain errors to HTTP errors, and a Redis outage to a 503."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except VolunteerError as exc:
            raise _api_error(exc) from None
        except RedisError as exc:
            _warn_redis_failed(request, exc)
            raise unavailable("redis") from None

    return wrapper


def _today(request: web.Request) -> dt.date:
    return dt.datetime.now(request.app[settings_key].timezone).date()


@routes.post("/v1/volunteers")
@requires(Role.ADMIN)
@_domain
async def create_volunteer(request: web.Request) -> web.Response:
    """Register a volunteer; the response carries its token, shown only here."""
    data = parse_create(await read_json_object(request), request.app[area_key])
    async with request.app[db_key].acquire() as conn:
        row, token = await service.create_volunteer(conn, data=data)
    return json_response({**volunteer_json(row), "token": token}, status=201)


@routes.get("/v1/volunteers")
@requires(Role.ADMIN)
@_domain
async def list_volunteers(request: web.Request) -> web.Response:
    """Volunteers in id order, filtered by status, district, text and certificate state."""
    query = request.query
    fields = Fields(query)
    fields.unknown(["status", "district", "q", "certificate", "within_days", "limit", "cursor"])
    status = fields.enum("status", STATUSES)
    certificate = fields.enum("certificate", CERTIFICATE_FILTERS)
    q = fields.str("q", max_len=200)
    district = None
    if query.get("district"):
        district = resolve_district(request.app[area_key], query["district"])
        if district is None:
            fields.fail("district", "is not a district of the service area")
    within = EXPIRING_WITHIN_DAYS
    if "within_days" in query:
        try:
            within = int(query["within_days"])
            if not 0 <= within <= 3650:
                raise ValueError
        except ValueError:
            fields.fail("within_days", "must be an integer from 0 to 3650")
    fields.check()
    limit = page_limit(request)
    after = decode_cursor(request)
    expires_from = expires_until = None
    if certificate is not None:
        expires_from, expires_until = certificate_window(certificate, _today(request), within)
    filters = VolunteerFilter(status, district, q, expires_from, expires_until)
    async with request.app[db_key].acquire() as conn:
        rows = await service.list_volunteers(conn, filters=filters, after=after, limit=limit + 1)
    return json_response(page([volunteer_json(r) for r in rows], [r["id"] for r in rows], limit))


@routes.get("/v1/volunteers/{id}")
@requires(Role.ADMIN)
@_domain
async def get_volunteer(request: web.Request) -> web.Response:
    """One volunteer."""
    async with request.app[db_key].acquire() as conn:
        row = await service.get_volunteer(conn, volunteer_id=request.match_info["id"])
    return json_response(volunteer_json(row))


@routes.patch("/v1/volunteers/{id}")
@requires(Role.ADMIN)
@_domain
async def patch_volunteer(request: web.Request) -> web.Response:
    """Change a volunteer (suspend, renew a certificate, quiet hours, travel mode...)."""
    changes = parse_patch(await read_json_object(request), request.app[area_key])
    async with request.app[db_key].acquire() as conn:
        row = await service.update_volunteer(
            conn, volunteer_id=request.match_info["id"], changes=changes
        )
    await service.sync_duty_meta(request.app[redis_key], rows=[row])
    return json_response(volunteer_json(row))


@routes.post("/v1/volunteers/{id}/token")
@requires(Role.ADMIN)
@_domain
async def rotate_token(request: web.Request) -> web.Response:
    """A new token; the old one stops working here at once and on other workers as soon as
    they hear of it (at worst after the authenticator's cache TTL)."""
    volunteer_id = request.match_info["id"]
    async with request.app[db_key].acquire() as conn:
        token, old_hash = await service.rotate_token(conn, volunteer_id=volunteer_id)
    auth = request.app[auth_key]
    if old_hash is not None:
        auth.forget(old_hash)
    auth.forget_subject(volunteer_id)
    try:
        await publish_token_revoked(
            request.app[redis_key], volunteer_id=volunteer_id, token_hash=old_hash
        )
    except RedisError as exc:
        logger.warning("token revocation not broadcast (other workers' caches expire): %r", exc)
    return json_response({"token": token})


@routes.post("/v1/volunteers/import")
@requires(Role.ADMIN)
@_domain
async def import_volunteers(request: web.Request) -> web.Response:
    """Upsert a CSV roster; bad rows are reported by line and do not block the good ones."""
    require_media_type(request, "text/csv")
    settings = request.app[settings_key]
    raw = await read_body(request, max_bytes=settings.max_import_bytes)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_csv", "the roster is not UTF-8 text") from None
    report = ImportReport()
    try:
        rows = parse_roster(text, request.app[area_key], report)
    except RosterError as exc:
        raise ApiError(400, "invalid_csv", str(exc)) from None
    async with request.app[db_key].acquire() as conn:
        await import_roster(conn, rows=rows, report=report)
        changed = await service.metas_of(conn, volunteer_ids=report.changed_ids)
    await service.sync_duty_meta(request.app[redis_key], rows=changed)
    return json_response(report.as_json())


@routes.put("/v1/me/duty")
@requires(Role.VOLUNTEER)
@_domain
async def put_duty(request: web.Request) -> web.Response:
    """Go on duty at a location, or off duty (the position is forgotten at once)."""
    body = await read_json_object(request)
    settings = request.app[settings_key]
    fields = Fields(body)
    fields.unknown(["on_duty", "location"])
    on_duty = fields.bool("on_duty", required=True)
    location = None
    if on_duty:
        location = fields.location("location", default_crs=settings.default_crs, required=True)
    fields.check()
    volunteer_id = principal_of(request).id
    redis = request.app[redis_key]
    if not on_duty:
        await service.go_off_duty(redis, volunteer_id=volunteer_id)
        return json_response({"on_duty": False})
    assert location is not None
    lat, lng = location
    require_in_area(request.app[area_key], lat, lng, field="location")
    now = time.time()
    async with request.app[db_key].acquire() as conn:
        await service.go_on_duty(
            conn,
            redis,
            volunteer_id=volunteer_id,
            lat=lat,
            lng=lng,
            today=_today(request),
            now=now,
        )
    expires = dt.datetime.fromtimestamp(now + settings.position_ttl_s, dt.UTC)
    return json_response(
        {"on_duty": True, "position_expires_at": expires.isoformat(timespec="seconds")}
    )


_LOCATION_FIELDS = frozenset(("lat", "lng", "crs", "accuracy_m"))


@routes.put("/v1/me/location")
@requires(Role.VOLUNTEER)
@_domain
async def put_location(request: web.Request) -> web.Response:
    """The latest position of an on-duty volunteer: one Redis round trip, no history."""
    app = request.app
    # One of the many positions phones send waits for the alerts in flight on this worker
    # when it came (rescue.foreground): their answer is what a few milliseconds matter to.
    await app[foreground_key].current()
    body = await read_json_object(request)
    fields = Fields(body)
    fields.unknown(_LOCATION_FIELDS)
    location = fields.location_fields(body, default_crs=app[settings_key].default_crs)
    fields.float("accuracy_m", lo=0, hi=100_000)
    fields.check()
    assert location is not None
    lat, lng = location
    require_in_area(app[area_key], lat, lng, field="location")
    await service.report_position(
        app[redis_key], volunteer_id=principal_of(request).id, lat=lat, lng=lng, now=time.time()
    )
    return web.Response(status=204)
