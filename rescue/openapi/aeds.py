"""OpenAPI of the AED inventory (write: admin; read: admin and dispatch)."""

from __future__ import annotations

from typing import Any

from rescue.aeds.models import EXPORT_FIELDS, STATUSES, VENUE_TYPES
from rescue.openapi.common import errors, json_body, ref

_LIMIT = {"$ref": "#/components/parameters/limit"}
_CURSOR = {"$ref": "#/components/parameters/cursor"}
_CRS = {"$ref": "#/components/parameters/crs"}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}

_TAGS = ["AEDs"]
_READ = "Roles: admin, dispatch."
_WRITE = "Role: admin."


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


_DATE = {"type": "string", "format": "date", "examples": ["2026-12-01"]}
_OPENING_HOURS = {
    "type": "string",
    "description": "OpenStreetMap opening_hours syntax, evaluated in the deployment's time zone.",
    "default": "24/7",
    "examples": ["24/7", "Mo-Fr 08:00-18:00; Sa 09:00-12:00"],
}
_DISTRICT = {
    "type": "string",
    "description": "District adcode (e.g. 370202); derived from the location when omitted.",
    "examples": ["370202"],
}
_OWNER = _nullable(
    {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {"type": ["string", "null"], "maxLength": 200},
            "phone": {"type": ["string", "null"], "maxLength": 50},
        },
    }
)

_WRITABLE: dict[str, Any] = {
    "name": {"type": "string", "minLength": 1, "maxLength": 200},
    "address": {"type": ["string", "null"], "maxLength": 500},
    "district": _nullable(_DISTRICT),
    "location": ref("Location"),
    "venue_type": {"type": "string", "enum": list(VENUE_TYPES), "default": "other"},
    "indoor": {"type": ["boolean", "null"]},
    "level": {"type": ["integer", "null"], "minimum": -20, "maximum": 300},
    "access_note": {"type": ["string", "null"], "maxLength": 1000},
    "opening_hours": _OPENING_HOURS,
    "status": {"type": "string", "enum": list(STATUSES), "default": "active"},
    "model": {"type": ["string", "null"], "maxLength": 200},
    "serial_no": {
        "type": ["string", "null"],
        "maxLength": 100,
        "description": "Unique among AEDs (409 `serial_no_taken`).",
    },
    "pads_expire_on": _nullable(_DATE),
    "battery_expire_on": _nullable(_DATE),
    "last_inspected_on": _nullable(_DATE),
    "owner": _OWNER,
}

SCHEMAS: dict[str, Any] = {
    "Aed": {
        "type": "object",
        "required": ["id", *_WRITABLE, "created_at", "updated_at"],
        "properties": {
            "id": {"type": "string", "examples": ["aed_01hzy3k5m8q9r2s4t6v8w0x2yz"]},
            **_WRITABLE,
            "district": _nullable(_DISTRICT),
            "location": {
                **ref("Location"),
                "description": "In the system asked for by `?crs=` (WGS-84 by default).",
            },
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {
                "type": "string",
                "format": "date-time",
                "description": "Changes only when a stored field changes.",
            },
        },
    },
    "AedInput": {
        "type": "object",
        "description": (
            "An AED to create. `location.crs` defaults to the deployment's setting; the "
            "location must lie in the service area (422 `outside_service_area`). Unknown "
            "fields and the read-only `id`, `created_at`, `updated_at` are a 400."
        ),
        "required": ["name", "location"],
        "additionalProperties": False,
        "properties": _WRITABLE,
    },
    "AedPatch": {
        "type": "object",
        "description": (
            "Fields to change; `location` and `owner` are replaced as a whole. The merged AED "
            "is validated as a whole: if anything is wrong, nothing changes. A new location "
            "without a `district` derives the district again."
        ),
        "additionalProperties": False,
        "properties": _WRITABLE,
    },
    "AedList": {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": ref("Aed")},
            "next_cursor": {"type": ["string", "null"]},
        },
    },
    "AedImportReport": {
        "type": "object",
        "required": ["created", "updated", "rejected"],
        "properties": {
            "created": {"type": "integer", "minimum": 0},
            "updated": {
                "type": "integer",
                "minimum": 0,
                "description": "AEDs whose stored fields changed (an identical row is neither).",
            },
            "rejected": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["ref", "error"],
                    "properties": {
                        "ref": {
                            "type": "string",
                            "description": "`line N` (CSV, header is line 1), `feature N` "
                            "(GeoJSON, from 1), `node/123` (OSM), or `element N`.",
                            "examples": ["line 7", "feature 3", "node/123"],
                        },
                        "error": {
                            "type": "string",
                            "description": "`field: problem`, each problem of the row.",
                            "examples": ["opening_hours: is not valid OpenStreetMap syntax"],
                        },
                    },
                },
            },
        },
    },
    "AedFlat": {
        "type": "object",
        "description": (
            "The flat form of an AED (CSV columns, GeoJSON properties): "
            + ", ".join(f"`{f}`" for f in EXPORT_FIELDS)
            + ". `owner_name`/`owner_phone` spread out `owner`; `lat`, `lng`, `crs` spread out "
            "`location` (an empty CSV `crs` is the deployment's default; in GeoJSON the "
            "geometry holds WGS-84 coordinates unless a `crs` property names another system). "
            "`created_at`/`updated_at` are ignored on import. CSV booleans are true/false "
            "(yes/no, 1/0 accepted); empty cells are null."
        ),
    },
    "AedMaintenance": {
        "type": "object",
        "required": ["items"],
        "properties": {
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["aed", "problems"],
                    "properties": {
                        "aed": ref("Aed"),
                        "problems": {
                            "type": "array",
                            "items": {"type": "string"},
                            "examples": [
                                [
                                    "pads expire 2026-12-01",
                                    "battery expired 2026-10-01",
                                    "last inspected 2025-01-03 (over a year ago)",
                                    "never inspected",
                                    "status maintenance",
                                ]
                            ],
                        },
                    },
                },
            }
        },
    },
}

_FEATURE_COLLECTION = {
    "type": "object",
    "description": "A GeoJSON FeatureCollection of Points with AedFlat properties.",
    "required": ["type", "features"],
    "properties": {"type": {"const": "FeatureCollection"}, "features": {"type": "array"}},
}

PATHS: dict[str, Any] = {
    "/v1/aeds": {
        "post": {
            "summary": "Register an AED.",
            "description": _WRITE,
            "tags": _TAGS,
            "parameters": [_CRS],
            "requestBody": {"required": True, **json_body(ref("AedInput"))},
            "responses": {
                "201": {
                    **json_body(ref("Aed"), "Created; `Location` names the AED."),
                    "headers": {"Location": {"schema": {"type": "string"}}},
                },
                **errors(400, 401, 403, 409, 413, 415, 422),
            },
        },
        "get": {
            "summary": "List AEDs by id, with filters.",
            "description": (
                f"{_READ} Without `status`, retired AEDs are left out. `bbox` is read in the "
                "system named by `?crs=` (like every location of the response)."
            ),
            "tags": _TAGS,
            "parameters": [
                {
                    "name": "status",
                    "in": "query",
                    "description": "One or more statuses, comma-separated.",
                    "schema": {"type": "string", "examples": ["active,maintenance"]},
                },
                {
                    "name": "district",
                    "in": "query",
                    "description": "Adcode, Chinese or English name: 370212, 崂山区, Laoshan.",
                    "schema": {"type": "string"},
                },
                {
                    "name": "bbox",
                    "in": "query",
                    "description": "minLng,minLat,maxLng,maxLat.",
                    "schema": {"type": "string", "examples": ["120.30,36.03,120.45,36.12"]},
                },
                {
                    "name": "q",
                    "in": "query",
                    "description": "Case-insensitive substring of the name, address or serial_no.",
                    "schema": {"type": "string", "maxLength": 200},
                },
                _LIMIT,
                _CURSOR,
                _CRS,
            ],
            "responses": {
                "200": json_body(ref("AedList"), "A page of AEDs."),
                **errors(400, 401, 403),
            },
        },
    },
    "/v1/aeds/import": {
        "post": {
            "summary": "Create or update AEDs from a file.",
            "description": (
                f"{_WRITE} `text/csv` (header row of AedFlat names), `application/geo+json` "
                "(FeatureCollection of Points), or `application/json` holding OpenStreetMap/"
                "Overpass elements tagged emergency=defibrillator (name, opening_hours, "
                "defibrillator:location and access → access_note, level, indoor, operator → "
                "owner.name, phone → owner.phone, serial_number → serial_no; an unnamed element "
                "is created as `AED (operator)`). A row matches an AED by `id` when given, else "
                "`serial_no`, else the OSM id, else (no key at all) an AED without keys with the "
                "same name at the same place; otherwise it creates one (with its `id` if given). "
                "Columns a file does not have keep their stored values. Each bad row is reported "
                "and the others are stored, in one transaction. Re-importing a file, or an "
                "export, changes nothing. A problem with the whole file is a 400."
            ),
            "tags": _TAGS,
            "requestBody": {
                "required": True,
                "content": {
                    "text/csv": {"schema": {"type": "string"}},
                    "application/geo+json": {"schema": _FEATURE_COLLECTION},
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {"elements": {"type": "array"}},
                        }
                    },
                },
            },
            "responses": {
                "200": json_body(ref("AedImportReport"), "What was created, updated, rejected."),
                **errors(400, 401, 403, 409, 413, 415),
            },
        }
    },
    "/v1/aeds/export": {
        "get": {
            "summary": "Every non-retired AED, as GeoJSON or CSV.",
            "description": (
                f"{_READ} Coordinates keep full precision so that re-importing the export "
                "changes nothing. With `?crs=` the coordinates are in that system and say so "
                "(CSV `crs` column, GeoJSON `crs` property)."
            ),
            "tags": _TAGS,
            "parameters": [
                {
                    "name": "format",
                    "in": "query",
                    "schema": {"type": "string", "enum": ["geojson", "csv"], "default": "geojson"},
                },
                _CRS,
            ],
            "responses": {
                "200": {
                    "description": "The inventory (CSV as an attachment).",
                    "content": {
                        "application/geo+json": {"schema": _FEATURE_COLLECTION},
                        "text/csv": {"schema": {"type": "string"}},
                    },
                },
                **errors(400, 401, 403),
            },
        }
    },
    "/v1/aeds/maintenance": {
        "get": {
            "summary": "AEDs needing attention.",
            "description": (
                f"{_READ} Non-retired AEDs with pads or battery expired or expiring within "
                "`within_days`, an inspection over a year old or none, or status maintenance or "
                "missing. Most urgent first: by the earliest date something is due (an expiry, "
                "the inspection's anniversary; today for status and never-inspected), then id. "
                "Dates are the deployment's local dates."
            ),
            "tags": _TAGS,
            "parameters": [
                {
                    "name": "within_days",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 0, "maximum": 3650, "default": 30},
                },
                _CRS,
            ],
            "responses": {
                "200": json_body(ref("AedMaintenance"), "The report."),
                **errors(400, 401, 403),
            },
        }
    },
    "/v1/aeds/{id}": {
        "get": {
            "summary": "One AED (a retired one too).",
            "description": _READ,
            "tags": _TAGS,
            "parameters": [_ID, _CRS],
            "responses": {"200": json_body(ref("Aed"), "The AED."), **errors(400, 401, 403, 404)},
        },
        "patch": {
            "summary": "Change an AED.",
            "description": _WRITE,
            "tags": _TAGS,
            "parameters": [_ID, _CRS],
            "requestBody": {"required": True, **json_body(ref("AedPatch"))},
            "responses": {
                "200": json_body(ref("Aed"), "The changed AED."),
                **errors(400, 401, 403, 404, 409, 413, 415, 422),
            },
        },
        "delete": {
            "summary": "Retire an AED.",
            "description": (
                f"{_WRITE} Sets status `retired`: the AED leaves plans, lists and exports, and "
                "stays readable by id. Retiring again is a no-op."
            ),
            "tags": _TAGS,
            "parameters": [_ID],
            "responses": {"204": {"description": "Retired."}, **errors(401, 403, 404)},
        },
    },
}
