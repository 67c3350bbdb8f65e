"""The three web consoles (administrator, dispatcher, volunteer): pages, static files, map data.

The pages are plain HTML and ES modules served from rescue/static; they work offline (no CDN,
no map tiles: the map is an SVG drawn from the shipped district boundaries). Everything here
is public and holds no data but the district boundaries and a few non-secret settings; the
pages call the API with the token the user types in.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from aiohttp import web
from shapely.ops import polylabel

from geo import ServiceArea, TravelMode
from rescue.typedefs import area_key, settings_key

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()

STATIC_DIR = Path(__file__).parent / "static"
# About 30 m: finer than the map ever shows, a quarter of the full boundaries' size.
SIMPLIFY_DEG = 0.0003
# Self only: no script, style, font or image from anywhere else; the API over HTTP and WS.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
        "style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _page(name: str) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / name, headers=SECURITY_HEADERS)


@routes.get("/ui")
async def ui_root(request: web.Request) -> web.StreamResponse:
    """The consoles' index lives at /ui/."""
    raise web.HTTPFound("/ui/")


@routes.get("/ui/")
async def index_page(request: web.Request) -> web.StreamResponse:
    """Links to the three consoles."""
    return _page("index.html")


@routes.get("/ui/admin")
async def admin_page(request: web.Request) -> web.StreamResponse:
    """The administrator's console."""
    return _page("admin.html")


@routes.get("/ui/dispatch")
async def dispatch_page(request: web.Request) -> web.StreamResponse:
    """The dispatcher's console."""
    return _page("dispatch.html")


@routes.get("/ui/volunteer")
async def volunteer_page(request: web.Request) -> web.StreamResponse:
    """The volunteer's phone page."""
    return _page("volunteer.html")


def _rounded(geometry: Any) -> dict[str, Any]:
    simplified = geometry.simplify(SIMPLIFY_DEG, preserve_topology=True)
    rounded = shapely.transform(simplified, lambda xy: np.round(xy, 5))
    result: dict[str, Any] = json.loads(shapely.to_geojson(rounded))
    return result


def _label_point(geometry: Any) -> list[float]:
    """[lng, lat] deep inside the district's largest part: where its name reads best."""
    parts = getattr(geometry, "geoms", [geometry])
    largest = max(parts, key=lambda part: part.area)
    point = polylabel(largest, tolerance=0.001)
    return [round(point.x, 5), round(point.y, 5)]


@functools.lru_cache(maxsize=4)
def districts_geojson(area: ServiceArea) -> bytes:
    """The districts as simplified WGS-84 GeoJSON, gzip-compressed (built once per area)."""
    features = [
        {
            "type": "Feature",
            "properties": {
                "adcode": d.adcode,
                "name": d.name,
                "name_en": d.name_en,
                "label": _label_point(d.geometry),
            },
            "geometry": _rounded(d.geometry),
        }
        for d in area.districts
    ]
    body = json.dumps(
        {"type": "FeatureCollection", "features": features},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return gzip.compress(body.encode(), mtime=0)


@routes.get("/ui/districts.geojson")
async def districts(request: web.Request) -> web.Response:
    """The district boundaries the consoles' maps draw."""
    body = await asyncio.to_thread(districts_geojson, request.app[area_key])
    headers = {"Cache-Control": "public, max-age=3600", "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("Accept-Encoding", "").lower():
        headers["Content-Encoding"] = "gzip"
    else:
        body = gzip.decompress(body)
    return web.Response(
        body=body, content_type="application/geo+json", charset="utf-8", headers=headers
    )


@routes.get("/ui/config.json")
async def config(request: web.Request) -> web.Response:
    """The few settings the pages need: zone, coordinate system, budget and travel speeds."""
    settings = request.app[settings_key]
    model = settings.travel_model
    body = {
        "timezone": settings.timezone.key,
        "default_crs": settings.default_crs.value,
        "time_budget_s": settings.time_budget_s,
        "position_ttl_s": settings.position_ttl_s,
        "detour_factor": model.detour_factor,
        "speed_mps": {mode.value: model.speed_mps(mode) for mode in TravelMode},
        "demo": settings.demo,
    }
    return web.json_response(body, headers={"Cache-Control": "no-cache"})


@routes.get("/ui/static/{path:.+}")
async def static_file(request: web.Request) -> web.StreamResponse:
    """A file of the pages (revalidated by ETag); anything else is the usual JSON 404."""
    root = STATIC_DIR.resolve()
    try:
        file = (root / request.match_info["path"]).resolve(strict=True)
    except (OSError, RuntimeError):
        raise web.HTTPNotFound() from None
    if not file.is_relative_to(root) or not file.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(
        file, headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    )
