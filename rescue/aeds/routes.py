"""HTTP routes of the AED inventory (write: admin; read: admin and dispatch)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from aiohttp import web

from geo import Crs, to_wgs84
from rescue.aeds import export, importers, service
from rescue.aeds.models import STATUSES, render_aed
from rescue.aeds.sync import aeds_changed
from rescue.aeds.validate import district_filter, read_aed
from rescue.auth import Role, requires
from rescue.errors import ApiError, Problem, invalid, invalid_many
from rescue.http import (
    decode_cursor,
    json_response,
    page,
    page_limit,
    read_body,
    read_json_object,
    require_media_type,
    response_crs,
)
from rescue.typedefs import area_key, db_key, settings_key

routes = web.RouteTableDef()

READERS = (Role.ADMIN, Role.DISPATCH)
MAX_WITHIN_DAYS = 3650
# application/vnd.geo+json is the pre-RFC 7946 name some tools still send.
IMPORT_MEDIA_TYPES = (*importers.MEDIA_TYPES, "application/vnd.geo+json")


def _aed_response(row: Any, crs: Crs, *, status: int = 200) -> web.Response:
    headers = {"Location": f"/v1/aeds/{row['id']}"} if status == 201 else None
    return json_response(render_aed(row, crs), status=status, headers=headers)


@routes.post("/v1/aeds")
@requires(Role.ADMIN)
async def create_aed(request: web.Request) -> web.Response:
    """Register an AED."""
    crs = response_crs(request)
    body = await read_json_object(request)
    values = service.checked(
        read_aed(
            body,
            area=request.app[area_key],
            default_crs=request.app[settings_key].default_crs,
            flat=False,
            required=service.REQUIRED,
        )
    )
    async with request.app[db_key].acquire() as conn:
        row = await service.create_aed(conn, values=values)
    await aeds_changed(request.app, [row["id"]])
    return _aed_response(row, crs, status=201)


def _bbox(raw: str, crs: Crs, problems: list[Problem]) -> tuple[float, float, float, float] | None:
    """`minLng,minLat,maxLng,maxLat` in the request's system, as WGS-84 (lat/lng bounds)."""
    try:
        min_lng, min_lat, max_lng, max_lat = (float(part) for part in raw.split(","))
    except ValueError:
        problems.append(Problem("bbox", "must be minLng,minLat,maxLng,maxLat (four numbers)"))
        return None
    if not all(math.isfinite(v) for v in (min_lng, min_lat, max_lng, max_lat)):
        problems.append(Problem("bbox", "must hold finite numbers"))
        return None
    if not (-180 <= min_lng <= max_lng <= 180 and -90 <= min_lat <= max_lat <= 90):
        problems.append(
            Problem("bbox", "needs minLng <= maxLng within ±180 and minLat <= maxLat within ±90")
        )
        return None
    if crs is Crs.WGS84:
        return min_lat, min_lng, max_lat, max_lng
    corners = [to_wgs84(lat, lng, crs) for lat in (min_lat, max_lat) for lng in (min_lng, max_lng)]
    lats = [c[0] for c in corners]
    lngs = [c[1] for c in corners]
    return min(lats), min(lngs), max(lats), max(lngs)


def _filters(request: web.Request, crs: Crs) -> service.AedFilter:
    query = request.query
    problems: list[Problem] = []
    statuses = None
    if query.get("status"):
        statuses = [s.strip() for s in query["status"].split(",") if s.strip()]
        if not statuses or any(s not in STATUSES for s in statuses):
            problems.append(Problem("status", f"must be one or more of {', '.join(STATUSES)}"))
    district = None
    if query.get("district"):
        try:
            district = district_filter(request.app[area_key], query["district"])
        except ApiError as exc:  # gathered with the other filters' problems
            problems.extend(exc.details)
    bounds = _bbox(query["bbox"], crs, problems) if query.get("bbox") else None
    text = (query.get("q") or "").strip() or None
    if text is not None and len(text) > 200:
        problems.append(Problem("q", "must be at most 200 characters"))
    if problems:
        raise invalid_many(problems)
    return service.AedFilter(statuses=statuses, district=district, bounds=bounds, text=text)


@routes.get("/v1/aeds")
@requires(*READERS)
async def list_aeds(request: web.Request) -> web.Response:
    """AEDs by id, filtered by status, district, bbox and text."""
    crs = response_crs(request)
    limit = page_limit(request)
    after = decode_cursor(request)
    where = _filters(request, crs)
    async with request.app[db_key].acquire() as conn:
        rows = await service.list_aeds(conn, where=where, after=after, limit=limit + 1)
    return json_response(
        page([render_aed(row, crs) for row in rows], [row["id"] for row in rows], limit)
    )


@routes.post("/v1/aeds/import")
@requires(Role.ADMIN)
async def import_aeds(request: web.Request) -> web.Response:
    """Upsert AEDs from CSV, GeoJSON or OSM/Overpass JSON; report each rejected row."""
    media_type = require_media_type(request, *IMPORT_MEDIA_TYPES)
    if media_type == "application/vnd.geo+json":
        media_type = importers.GEOJSON
    settings = request.app[settings_key]
    raw = await read_body(request, max_bytes=settings.max_import_bytes)
    async with request.app[db_key].acquire() as conn:
        report = await service.import_body(
            conn,
            media_type=media_type,
            raw=raw,
            area=request.app[area_key],
            default_crs=settings.default_crs,
            charset=request.charset,
        )
    if report.changed_ids:
        await aeds_changed(request.app, report.changed_ids)
    return json_response(report.as_dict())


@routes.get("/v1/aeds/export")
@requires(*READERS)
async def export_aeds(request: web.Request) -> web.Response:
    """Every non-retired AED as GeoJSON (default) or CSV, re-importable unchanged."""
    crs = response_crs(request)
    fmt = request.query.get("format", "geojson").lower()
    if fmt not in export.FORMATS:
        raise invalid("format", "must be geojson or csv")
    async with request.app[db_key].acquire() as conn:
        rows = await service.export_rows(conn)
    if fmt == "csv":
        return web.Response(
            body=export.to_csv(rows, crs),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": 'attachment; filename="aeds.csv"'},
        )
    response = json_response(export.to_geojson(rows, crs))
    response.content_type = "application/geo+json"
    return response


@routes.get("/v1/aeds/maintenance")
@requires(*READERS)
async def maintenance(request: web.Request) -> web.Response:
    """AEDs needing attention within `within_days`, most urgent first."""
    crs = response_crs(request)
    raw = request.query.get("within_days", "30")
    try:
        within_days = int(raw)
    except ValueError:
        within_days = -1
    if not 0 <= within_days <= MAX_WITHIN_DAYS:
        raise invalid("within_days", f"must be an integer from 0 to {MAX_WITHIN_DAYS}")
    today = dt.datetime.now(request.app[settings_key].timezone).date()
    async with request.app[db_key].acquire() as conn:
        found = await service.maintenance_report(conn, today=today, within_days=within_days)
    items = [{"aed": render_aed(row, crs), "problems": problems} for row, problems in found]
    return json_response({"items": items})


@routes.get("/v1/aeds/{id}")
@requires(*READERS)
async def get_aed(request: web.Request) -> web.Response:
    """One AED (a retired one too)."""
    crs = response_crs(request)
    async with request.app[db_key].acquire() as conn:
        row = await service.get_aed(conn, aed_id=request.match_info["id"])
    return _aed_response(row, crs)


@routes.patch("/v1/aeds/{id}")
@requires(Role.ADMIN)
async def update_aed(request: web.Request) -> web.Response:
    """Change some fields; the merged AED is validated as a whole, or nothing changes."""
    crs = response_crs(request)
    body = await read_json_object(request)
    async with request.app[db_key].acquire() as conn:
        row, changed = await service.update_aed(
            conn,
            aed_id=request.match_info["id"],
            patch=body,
            area=request.app[area_key],
            default_crs=request.app[settings_key].default_crs,
        )
    if changed:
        await aeds_changed(request.app, [row["id"]])
    return _aed_response(row, crs)


@routes.delete("/v1/aeds/{id}")
@requires(Role.ADMIN)
async def retire_aed(request: web.Request) -> web.Response:
    """Retire an AED: it leaves the index and the lists, its record stays."""
    aed_id = request.match_info["id"]
    async with request.app[db_key].acquire() as conn:
        await service.retire_aed(conn, aed_id=aed_id)
    await aeds_changed(request.app, [aed_id])
    return web.Response(status=204)
