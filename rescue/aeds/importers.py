"""Parsing AED import files (CSV, GeoJSON, OSM/Overpass JSON) into validated rows.

Pure: no I/O. Every row, feature or element becomes either an ImportRow (the columns its
source gives, validated) or a Rejected naming the field at fault; a problem with the file as a
whole (not UTF-8, not JSON, a bad CSV header) is an ApiError 400.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from typing import Any

from geo import Crs, ServiceArea
from rescue.aeds.models import FLAT_FIELDS, IGNORED_ON_IMPORT, ImportRow, Rejected
from rescue.aeds.validate import read_aed
from rescue.errors import ApiError, Problem, invalid_many
from rescue.http import decode_json

CSV = "text/csv"
GEOJSON = "application/geo+json"
JSON = "application/json"
MEDIA_TYPES = (CSV, GEOJSON, JSON)
MEDIA_BY_EXTENSION = {".csv": CSV, ".geojson": GEOJSON, ".json": JSON}

Parsed = ImportRow | Rejected

_TRUE = {"true", "yes", "1", "y", "t"}
_FALSE = {"false", "no", "0", "n", "f"}
_OSM_TYPES = ("node", "way", "relation")


def parse(
    media_type: str,
    raw: bytes,
    *,
    area: ServiceArea,
    default_crs: Crs,
    charset: str | None = None,
) -> list[Parsed]:
    """Every row of an import body of the given media type, in file order."""
    if media_type == CSV:
        return list(parse_csv(raw, area=area, default_crs=default_crs, charset=charset))
    doc = decode_json(raw)
    if media_type == GEOJSON or (isinstance(doc, dict) and doc.get("type") == "FeatureCollection"):
        return list(parse_geojson(doc, area=area))
    return list(parse_overpass(doc, area=area))


def _validated(
    ref: str,
    position: int,
    data: Mapping[str, Any],
    *,
    area: ServiceArea,
    default_crs: Crs,
    extra: Mapping[str, Any] | None = None,
    create_defaults: Mapping[str, Any] | None = None,
) -> Parsed:
    result = read_aed(data, area=area, default_crs=default_crs, flat=True, required=["location"])
    if result.problems or result.outside is not None:
        return Rejected(ref, result.message(), position)
    values = {k: v for k, v in result.values.items() if k != "id" or v is not None}
    values.update(extra or {})
    return ImportRow(ref, values, position, dict(create_defaults or {}))


# CSV ---------------------------------------------------------------------------------------


def _decode_text(raw: bytes, charset: str | None) -> str:
    encoding = charset or "utf-8"
    if encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
        encoding = "utf-8-sig"  # spreadsheet programs start UTF-8 CSV with a BOM
    try:
        return raw.decode(encoding)
    except LookupError:
        raise ApiError(400, "invalid_csv", f"unknown charset {charset!r}") from None
    except UnicodeDecodeError:
        raise ApiError(
            400,
            "invalid_csv",
            f"the file is not {charset or 'UTF-8'} text (save it as CSV UTF-8, or name its "
            "charset in Content-Type, e.g. text/csv; charset=gb18030)",
        ) from None


def _header(cells: list[str]) -> list[str]:
    columns = [c.strip().lower() for c in cells]
    problems: list[Problem] = []
    allowed = (*FLAT_FIELDS, *IGNORED_ON_IMPORT)
    for index, column in enumerate(columns, 1):
        if not column:
            problems.append(Problem(f"column {index}", "has no name in the header row"))
        elif column not in allowed:
            problems.append(Problem(column, "is not a known column"))
        elif columns.index(column) != index - 1:
            problems.append(Problem(column, "appears twice in the header row"))
    for column in ("lat", "lng"):
        if column not in columns:
            problems.append(Problem(column, "column is required"))
    if problems:
        raise invalid_many(problems)
    return columns


def _cell(column: str, raw: str) -> Any:
    """A CSV cell as the JSON value it stands for; anything unparsable is left for validation."""
    value = raw.strip()
    if not value:
        return None
    try:
        if column in ("lat", "lng"):
            return float(value)
        if column == "level":
            return int(value)
    except ValueError:
        return value
    if column == "indoor":
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    return value


def parse_csv(
    raw: bytes, *, area: ServiceArea, default_crs: Crs, charset: str | None = None
) -> Iterator[Parsed]:
    """Rows of a CSV whose header names the AED's flat fields; refs are `line N`."""
    reader = csv.reader(io.StringIO(_decode_text(raw, charset), newline=""))
    try:
        first = next(reader, None)
        if first is None:
            raise ApiError(400, "invalid_csv", "the file is empty: a header row is required")
        columns = _header(first)
        while True:
            line = reader.line_num + 1
            cells = next(reader, None)
            if cells is None:
                return
            if not any(c.strip() for c in cells):
                continue
            ref = f"line {line}"
            if len(cells) != len(columns):
                yield Rejected(ref, f"has {len(cells)} fields, the header has {len(columns)}", line)
                continue
            data = {
                column: _cell(column, cell)
                for column, cell in zip(columns, cells, strict=True)
                if column not in IGNORED_ON_IMPORT
            }
            yield _validated(ref, line, data, area=area, default_crs=default_crs)
    except csv.Error as exc:
        raise ApiError(
            400, "invalid_csv", f"the CSV is malformed at line {reader.line_num}: {exc}"
        ) from None


# GeoJSON -----------------------------------------------------------------------------------


def _structure_error(field: str, problem: str) -> ApiError:
    return ApiError(400, "invalid_input", f"{field}: {problem}", [Problem(field, problem)])


def parse_geojson(doc: Any, *, area: ServiceArea) -> Iterator[Parsed]:
    """Point features whose properties are the flat fields; refs are `feature N` (from 1)."""
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise _structure_error("type", "must be FeatureCollection")
    features = doc.get("features")
    if not isinstance(features, list):
        raise _structure_error("features", "must be an array of Point features")
    for number, feature in enumerate(features, 1):
        ref = f"feature {number}"
        problem = _feature_problem(feature)
        if problem is not None:
            yield Rejected(ref, problem, number)
            continue
        properties = dict(feature.get("properties") or {})
        clash = [key for key in ("lat", "lng") if key in properties]
        if clash:
            yield Rejected(ref, f"{clash[0]}: coordinates belong in the geometry", number)
            continue
        lng, lat = feature["geometry"]["coordinates"][:2]
        if "id" not in properties and isinstance(feature.get("id"), str):
            properties["id"] = feature["id"]
        properties.update(lat=lat, lng=lng)
        # RFC 7946: coordinates are WGS-84 unless the feature says otherwise.
        yield _validated(ref, number, properties, area=area, default_crs=Crs.WGS84)


def _feature_problem(feature: Any) -> str | None:
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        return "type: must be Feature"
    geometry = feature.get("geometry")
    if not isinstance(geometry, dict) or geometry.get("type") != "Point":
        return "geometry: must be a Point"
    coordinates = geometry.get("coordinates")
    if (
        not isinstance(coordinates, list)
        or len(coordinates) not in (2, 3)
        or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in coordinates)
    ):
        return "geometry.coordinates: must be [longitude, latitude]"
    if not isinstance(feature.get("properties") or {}, dict):
        return "properties: must be an object"
    return None


# OpenStreetMap / Overpass ------------------------------------------------------------------


def parse_overpass(doc: Any, *, area: ServiceArea) -> Iterator[Parsed]:
    """Overpass JSON elements tagged emergency=defibrillator; refs are `node/123`."""
    elements = doc.get("elements") if isinstance(doc, dict) else doc
    if not isinstance(elements, list):
        raise _structure_error(
            "elements", "must be an array of OpenStreetMap elements (Overpass JSON)"
        )
    for number, element in enumerate(elements, 1):
        ref = _osm_ref(element) or f"element {number}"
        if not isinstance(element, dict) or _osm_ref(element) is None:
            yield Rejected(ref, "type/id: must be an OpenStreetMap node, way or relation", number)
            continue
        tags = element.get("tags") or {}
        if not isinstance(tags, dict) or tags.get("emergency") != "defibrillator":
            yield Rejected(ref, "tags.emergency: must be defibrillator", number)
            continue
        point = element if element["type"] == "node" else element.get("center") or {}
        if "lat" not in point or "lon" not in point:
            yield Rejected(ref, "lat/lon: missing (query ways with `out center`)", number)
            continue
        data, defaults = _osm_fields(tags)
        data.update(lat=point["lat"], lng=point["lon"], crs=Crs.WGS84.value)
        yield _validated(
            ref,
            number,
            data,
            area=area,
            default_crs=Crs.WGS84,
            extra={"osm_id": ref},
            create_defaults=defaults,
        )


def _osm_ref(element: Any) -> str | None:
    if not isinstance(element, dict):
        return None
    kind, ident = element.get("type"), element.get("id")
    if kind not in _OSM_TYPES or isinstance(ident, bool) or not isinstance(ident, int):
        return None
    return f"{kind}/{ident}"


def _first(tags: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = tags.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _osm_fields(tags: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The flat fields an element's tags give, and the values used only to create it."""
    data: dict[str, Any] = {}
    name = _first(tags, "name", "name:zh", "name:en")
    if name is not None:
        data["name"] = name
    address = _first(tags, "addr:full") or " ".join(
        part
        for part in (
            _first(tags, "addr:city"),
            _first(tags, "addr:district"),
            _first(tags, "addr:street"),
            _first(tags, "addr:housenumber"),
        )
        if part
    )
    if address:
        data["address"] = address
    hours = _first(tags, "opening_hours")
    if hours is not None:
        data["opening_hours"] = hours
    note = _first(
        tags, "defibrillator:location", "defibrillator:location:zh", "defibrillator:location:en"
    )
    access = _first(tags, "access")
    if access is not None and access not in ("yes", "public"):
        note = f"{note} (access: {access})" if note else f"access: {access}"
    if note is not None:
        data["access_note"] = note
    level = _first(tags, "level")
    if level is not None:
        data["level"] = _cell("level", level)
    indoor = _first(tags, "indoor", "location")
    if indoor is not None:
        data["indoor"] = indoor not in ("no", "outdoor")
    phone = _first(tags, "phone", "contact:phone", "emergency:phone")
    if phone is not None:
        data["owner_phone"] = phone
    operator = _first(tags, "operator")
    if operator is not None:
        data["owner_name"] = operator
    serial = _first(tags, "serial_number")
    if serial is not None:
        data["serial_no"] = serial
    return data, {"name": f"AED ({operator})" if operator else "AED"}
