"""Shared pieces of the OpenAPI document: errors, locations, paging, auth."""

from __future__ import annotations

from typing import Any

AUTH_TEXT = (
    "`Authorization: Bearer <token>`. Roles: admin (RESCUE_ADMIN_TOKEN), dispatch (one API key "
    "per dispatch center), volunteer (one token per volunteer). A WebSocket may carry its token "
    "as `?token=`. 401: missing or unknown token; 403: a token of the wrong role."
)


def ref(name: str) -> dict[str, str]:
    """A reference to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    """A JSON response or request body."""
    body: dict[str, Any] = {"content": {"application/json": {"schema": schema}}}
    if description:
        body["description"] = description
    return body


def errors(*statuses: int) -> dict[str, Any]:
    """Error responses by status code."""
    return {str(s): {"$ref": f"#/components/responses/E{s}"} for s in statuses}


_ERROR_TEXT = {
    400: "Malformed or invalid input; `details` names each bad field.",
    401: "Missing or unknown token.",
    403: "A token of the wrong role, or an action this principal may not take.",
    404: "No such resource.",
    409: "Conflict with the current state.",
    413: "Body too large.",
    415: "Unsupported media type.",
    422: "Well-formed but impossible (e.g. `outside_service_area`).",
    429: "Rate limited; see `Retry-After`.",
    503: "A dependency is down; see `Retry-After`.",
}

RESPONSES: dict[str, Any] = {
    f"E{status}": {"description": text, **json_body(ref("Error"))}
    for status, text in _ERROR_TEXT.items()
}

PARAMETERS: dict[str, Any] = {
    "limit": {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
    },
    "cursor": {"name": "cursor", "in": "query", "schema": {"type": "string"}},
    "crs": {
        "name": "crs",
        "in": "query",
        "description": "Coordinate system of every location in the response.",
        "schema": {"type": "string", "enum": ["wgs84", "gcj02", "bd09"], "default": "wgs84"},
    },
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "details"],
                "properties": {
                    "code": {"type": "string", "examples": ["invalid_input"]},
                    "message": {"type": "string"},
                    "details": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "field": {"type": "string", "examples": ["location.lat"]},
                                "problem": {"type": "string"},
                            },
                        },
                    },
                },
            }
        },
    },
    "Location": {
        "type": "object",
        "required": ["lat", "lng"],
        "properties": {
            "lat": {"type": "number", "minimum": -90, "maximum": 90},
            "lng": {"type": "number", "minimum": -180, "maximum": 180},
            "crs": {"type": "string", "enum": ["wgs84", "gcj02", "bd09"]},
        },
    },
}

PATHS: dict[str, Any] = {
    "/v1/dispatch-centers": {
        "post": {
            "summary": "Create a dispatch center (admin); its API key and secret are shown once.",
            "tags": ["dispatch centers"],
            "requestBody": json_body(
                {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string"},
                        "callback_url": {"type": ["string", "null"], "format": "uri"},
                    },
                }
            ),
            "responses": {
                "201": json_body(
                    {
                        "type": "object",
                        "properties": {
                            "id": {"type": "string"},
                            "name": {"type": "string"},
                            "callback_url": {"type": ["string", "null"]},
                            "api_key": {"type": "string"},
                            "webhook_secret": {
                                "type": "string",
                                "description": "Standard Webhooks secret (whsec_...).",
                            },
                            "created_at": {"type": "string", "format": "date-time"},
                        },
                    },
                    "Created.",
                ),
                **errors(400, 401, 403, 413, 415),
            },
        }
    }
}
