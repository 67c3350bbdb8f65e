"""OpenAPI of the volunteer registry (admin) and the volunteer's own phone (duty, location,
the push WebSocket)."""

from __future__ import annotations

from typing import Any

from rescue.openapi.common import errors, json_body, ref

_LIMIT = {"$ref": "#/components/parameters/limit"}
_CURSOR = {"$ref": "#/components/parameters/cursor"}
_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "The volunteer's id.",
    "schema": {"type": "string"},
}
_DATE = {"type": "string", "format": "date"}
_TIME = {"type": "string", "format": "date-time"}
_QUIET = {
    "type": ["string", "null"],
    "pattern": r"^\d{2}:\d{2}-\d{2}:\d{2}$",
    "examples": ["23:00-07:00"],
    "description": (
        "Daily local-time window (deployment zone) in which the volunteer is never alerted, "
        "start inclusive, end exclusive; wraps past midnight when start > end; end may be "
        "24:00; start and end must differ. null: none."
    ),
}
_DISTRICT_TEXT = (
    "Home district: accepted as the adcode (`370202`), the Chinese name (`市南区`) or the English "
    "name (`Shinan`); stored and shown as the adcode. null: unknown."
)
_CERT_TEXT = (
    "A certificate is valid through its `expires_on` day (local, inclusive). A volunteer whose "
    "certificate has expired is never alerted and may not go on duty."
)

_CERTIFICATE: dict[str, Any] = {
    "type": "object",
    "description": _CERT_TEXT,
    "required": ["number", "issuer", "issued_on", "expires_on"],
    "properties": {
        "number": {"type": "string", "maxLength": 100, "description": "Unique."},
        "issuer": {"type": "string", "maxLength": 200},
        "issued_on": _DATE,
        "expires_on": {**_DATE, "description": "Not before issued_on."},
    },
}

_WRITABLE: dict[str, Any] = {
    "name": {"type": "string", "maxLength": 200},
    "phone": {
        "type": "string",
        "description": "5-20 digits with an optional +, spaces, dashes, parentheses.",
        "examples": ["+86 138 0013 8000"],
    },
    "certificate": ref("VolunteerCertificate"),
    "travel_mode": {"type": "string", "enum": ["walk", "bike", "car"], "default": "walk"},
    "status": {
        "type": "string",
        "enum": ["active", "suspended"],
        "default": "active",
        "description": "A suspended volunteer is never alerted and may not go on duty.",
    },
    "quiet_hours": _QUIET,
    "home_district": {"type": ["string", "null"], "description": _DISTRICT_TEXT},
}

SCHEMAS: dict[str, Any] = {
    "VolunteerCertificate": _CERTIFICATE,
    "Volunteer": {
        "type": "object",
        "required": [
            "id",
            "name",
            "phone",
            "certificate",
            "travel_mode",
            "status",
            "quiet_hours",
            "home_district",
            "created_at",
        ],
        "properties": {"id": {"type": "string"}, **_WRITABLE, "created_at": _TIME},
    },
    "VolunteerCreate": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "phone", "certificate"],
        "properties": _WRITABLE,
    },
    "VolunteerPatch": {
        "type": "object",
        "additionalProperties": False,
        "description": (
            "Any subset of the fields; `certificate` may be partial (e.g. only `expires_on` to "
            "renew). `quiet_hours` and `home_district` may be null to clear them. A bad field "
            "is a 400 naming it and nothing changes."
        ),
        "properties": {
            **_WRITABLE,
            "certificate": {
                "type": "object",
                "additionalProperties": False,
                "properties": _CERTIFICATE["properties"],
            },
        },
    },
    "VolunteerCreated": {
        "allOf": [
            ref("Volunteer"),
            {
                "type": "object",
                "required": ["token"],
                "properties": {
                    "token": {
                        "type": "string",
                        "description": "The volunteer's bearer token (`vol_...`), shown only here.",
                    }
                },
            },
        ]
    },
    "VolunteerList": {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": ref("Volunteer")},
            "next_cursor": {"type": ["string", "null"]},
        },
    },
    "VolunteerImportReport": {
        "type": "object",
        "required": ["created", "updated", "unchanged", "rejected"],
        "properties": {
            "created": {"type": "integer"},
            "updated": {"type": "integer", "description": "Existing volunteers that changed."},
            "unchanged": {"type": "integer", "description": "Rows identical to what is stored."},
            "rejected": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["ref", "error"],
                    "properties": {
                        "ref": {"type": "string", "examples": ["line 7"]},
                        "error": {"type": "string"},
                    },
                },
            },
        },
    },
    "DutyRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["on_duty"],
        "properties": {
            "on_duty": {"type": "boolean"},
            "location": {
                **ref("Location"),
                "description": "Required when on_duty is true (ignored otherwise).",
            },
        },
    },
    "DutyState": {
        "type": "object",
        "required": ["on_duty"],
        "properties": {
            "on_duty": {"type": "boolean"},
            "position_expires_at": {
                **_TIME,
                "description": (
                    "When on duty: the position stops counting at this time unless refreshed "
                    "with PUT /v1/me/location (RESCUE_POSITION_TTL_S after the last update)."
                ),
            },
        },
    },
    "PositionUpdate": {
        "type": "object",
        "additionalProperties": False,
        "required": ["lat", "lng"],
        "properties": {
            "lat": {"type": "number", "minimum": -90, "maximum": 90},
            "lng": {"type": "number", "minimum": -180, "maximum": 180},
            "crs": {"type": "string", "enum": ["wgs84", "gcj02", "bd09"]},
            "accuracy_m": {
                "type": "number",
                "minimum": 0,
                "maximum": 100000,
                "description": "Validated, not stored.",
            },
        },
    },
    "PhoneMessage": {
        "type": "object",
        "required": ["type"],
        "description": (
            "A message on GET /v1/me/stream. First `hello` "
            '(`{"type": "hello", "volunteer_id", "on_duty"}`), then, as they happen, '
            "`offer`, `offer_update` and `incident_closed` (see the Offer schema); `pong` "
            'answers `{"type": "ping"}`; any other client message gets '
            '`{"type": "error", "error": {"code", "message"}}` and the socket stays open.'
        ),
        "properties": {
            "type": {
                "type": "string",
                "enum": ["hello", "offer", "offer_update", "incident_closed", "pong", "error"],
            },
            "volunteer_id": {"type": "string"},
            "on_duty": {"type": "boolean"},
        },
    },
}

_IMPORT_TEXT = (
    "A CSV roster with a header row of these columns: `id` (optional), `name`, `phone`, "
    "`certificate_number`, `certificate_issuer`, `certificate_issued_on`, "
    "`certificate_expires_on` (required), `travel_mode`, `status`, `quiet_hours`, "
    "`home_district` (optional). UTF-8 (a BOM is fine). A row updates the volunteer with its "
    "`id` when given (creating it with that id if absent), else the one holding its "
    "`certificate_number`, else creates one; re-importing the same file creates nothing. "
    "Empty `travel_mode`/`status` cells keep the current value (walk/active for a new "
    "volunteer); empty `quiet_hours`/`home_district` cells clear them, and leaving the column "
    "out keeps them. Bad rows (including a certificate number held by another volunteer, or "
    "a repeated id or number) are reported by line and do not block the others. Imported "
    "volunteers get no token: issue one with POST /v1/volunteers/{id}/token. An unreadable "
    "file (no header, unknown or missing columns, broken quoting, not UTF-8) is a 400 "
    "`invalid_csv`."
)

PATHS: dict[str, Any] = {
    "/v1/volunteers": {
        "post": {
            "summary": "Register a volunteer (admin); the response carries its token, once.",
            "tags": ["volunteers"],
            "requestBody": json_body(ref("VolunteerCreate")),
            "responses": {
                "201": json_body(ref("VolunteerCreated"), "Created."),
                "409": {
                    "description": "`duplicate_certificate`: the number is already registered.",
                    **json_body(ref("Error")),
                },
                **errors(400, 401, 403, 413, 415),
            },
        },
        "get": {
            "summary": "List volunteers (admin), in id order.",
            "tags": ["volunteers"],
            "parameters": [
                {
                    "name": "status",
                    "in": "query",
                    "schema": {"type": "string", "enum": ["active", "suspended"]},
                },
                {
                    "name": "district",
                    "in": "query",
                    "description": "Home district (adcode, Chinese or English name).",
                    "schema": {"type": "string"},
                },
                {
                    "name": "q",
                    "in": "query",
                    "description": "Substring of the name, phone or certificate number.",
                    "schema": {"type": "string"},
                },
                {
                    "name": "certificate",
                    "in": "query",
                    "description": (
                        "`valid`: expires today or later; `expired`: expired before today; "
                        "`expiring`: valid and expiring within `within_days` days (today "
                        "included). Days are local to the deployment."
                    ),
                    "schema": {"type": "string", "enum": ["valid", "expired", "expiring"]},
                },
                {
                    "name": "within_days",
                    "in": "query",
                    "description": "Window of `certificate=expiring`.",
                    "schema": {"type": "integer", "minimum": 0, "maximum": 3650, "default": 30},
                },
                _LIMIT,
                _CURSOR,
            ],
            "responses": {
                "200": json_body(ref("VolunteerList"), "A page of volunteers."),
                **errors(400, 401, 403),
            },
        },
    },
    "/v1/volunteers/{id}": {
        "parameters": [_ID],
        "get": {
            "summary": "One volunteer (admin).",
            "tags": ["volunteers"],
            "responses": {"200": json_body(ref("Volunteer")), **errors(401, 403, 404)},
        },
        "patch": {
            "summary": "Change a volunteer (admin): suspend, renew a certificate, quiet hours...",
            "description": (
                "Takes effect at once for an on-duty volunteer: a suspended volunteer, or one "
                "whose certificate is no longer valid, drops out of the next alert's candidates."
            ),
            "tags": ["volunteers"],
            "requestBody": json_body(ref("VolunteerPatch")),
            "responses": {
                "200": json_body(ref("Volunteer")),
                "409": {
                    "description": "`duplicate_certificate`.",
                    **json_body(ref("Error")),
                },
                **errors(400, 401, 403, 404, 413, 415),
            },
        },
    },
    "/v1/volunteers/{id}/token": {
        "parameters": [_ID],
        "post": {
            "summary": "Issue a new token for a volunteer (admin); the old one stops working.",
            "description": (
                "The old token is refused at once by the worker that answered, and by every "
                "other worker as soon as the revocation broadcast (Redis pub/sub) reaches it; "
                "if Redis is down, other workers refuse it at the latest after their 10 s "
                "authentication cache expires. Phone sockets opened with the old token are "
                "closed with code 4001."
            ),
            "tags": ["volunteers"],
            "responses": {
                "200": json_body(
                    {
                        "type": "object",
                        "required": ["token"],
                        "properties": {"token": {"type": "string"}},
                    },
                    "The new token, shown only here.",
                ),
                **errors(401, 403, 404),
            },
        },
    },
    "/v1/volunteers/import": {
        "post": {
            "summary": "Import a CSV roster of volunteers (admin).",
            "description": _IMPORT_TEXT,
            "tags": ["volunteers"],
            "requestBody": {
                "content": {"text/csv": {"schema": {"type": "string"}}},
                "required": True,
            },
            "responses": {
                "200": json_body(ref("VolunteerImportReport"), "What the import did."),
                **errors(400, 401, 403, 413, 415),
            },
        },
    },
    "/v1/me/duty": {
        "put": {
            "summary": "Go on duty at a location, or off duty (volunteer).",
            "description": (
                "Off duty forgets the position at once. Only the latest position is ever kept."
            ),
            "tags": ["volunteer's phone"],
            "requestBody": json_body(ref("DutyRequest")),
            "responses": {
                "200": json_body(ref("DutyState")),
                "403": {
                    "description": (
                        "`certificate_expired` or `suspended` (or `forbidden`: not a volunteer "
                        "token)."
                    ),
                    **json_body(ref("Error")),
                },
                **errors(400, 401, 413, 415, 422, 503),
            },
        },
    },
    "/v1/me/location": {
        "put": {
            "summary": "Report the on-duty volunteer's current position (volunteer).",
            "description": (
                "Replaces the position (no history is kept). A position not refreshed within "
                "RESCUE_POSITION_TTL_S (default 120 s) no longer counts."
            ),
            "tags": ["volunteer's phone"],
            "requestBody": json_body(ref("PositionUpdate")),
            "responses": {
                "204": {"description": "Recorded."},
                "409": {
                    "description": "`not_on_duty`: check in with PUT /v1/me/duty first.",
                    **json_body(ref("Error")),
                },
                **errors(400, 401, 403, 413, 415, 422, 503),
            },
        },
    },
    "/v1/me/stream": {
        "get": {
            "summary": "The phone's WebSocket: offers and their updates, pushed as they happen.",
            "description": (
                "Upgrade to a WebSocket with the volunteer token as `Authorization: Bearer` or "
                "`?token=` (never logged). Messages are JSON objects (see PhoneMessage), first "
                "`hello`. The server pings every 25 s. Close codes: 4001 the token was rotated, "
                "4008 the phone read too slowly, 1001 server shutdown; after a reconnect, "
                "GET /v1/me/offers gives what may have been missed. Several sockets per "
                "volunteer are allowed and each gets every message."
            ),
            "tags": ["volunteer's phone"],
            "parameters": [
                {
                    "name": "token",
                    "in": "query",
                    "description": "The volunteer token, when headers cannot be set.",
                    "schema": {"type": "string"},
                }
            ],
            "responses": {
                "101": {
                    "description": "Switching to the WebSocket protocol.",
                    **json_body(ref("PhoneMessage")),
                },
                "400": {
                    "description": "`websocket_required`: not a WebSocket upgrade.",
                    **json_body(ref("Error")),
                },
                **errors(401, 403, 503),
            },
        }
    },
}
