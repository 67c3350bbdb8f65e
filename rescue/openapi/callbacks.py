"""OpenAPI of the callbacks to 120: the signed event body and the delivery log."""

from __future__ import annotations

from typing import Any

from rescue.openapi.common import errors, json_body, ref
from rescue.openapi.dispatch import _CURSOR, _INCIDENT_ID, _LIMIT, _NULLABLE_TIME, _TIME

CALLBACK_SCHEMAS: dict[str, Any] = {
    "CallbackEvent": {
        "type": "object",
        "description": (
            "The body POSTed to the callback URL (the alert's `callback_url`, else the dispatch "
            "center's) for every incident event, in event order per incident. Signed per "
            "Standard Webhooks: `webhook-id` (the event id, the same on every retry), "
            "`webhook-timestamp` (unix seconds), `webhook-signature: v1,<base64 HMAC-SHA256 of "
            '"id.timestamp.body">` keyed by the base64-decoded part of the center\'s `whsec_` '
            "secret. Retried with exponential backoff and full jitter until a 2xx, up to "
            "RESCUE_CALLBACK_MAX_ATTEMPTS attempts; a later event of the same incident waits "
            "until the earlier one is delivered or given up."
        ),
        "required": ["id", "type", "incident_id", "external_id", "at", "data"],
        "properties": {
            "id": {"type": "string"},
            "type": {"type": "string", "examples": ["incident.created", "offer.accepted"]},
            "incident_id": {"type": "string"},
            "external_id": {"type": ["string", "null"]},
            "at": _TIME,
            "data": {"type": "object"},
        },
    },
    "CallbackDelivery": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "event_id": {"type": "string", "description": "The webhook-id of every attempt."},
            "type": {"type": "string"},
            "event_at": _TIME,
            "url": {"type": "string", "format": "uri"},
            "state": {"type": "string", "enum": ["pending", "delivered", "failed"]},
            "attempts": {"type": "integer", "minimum": 0},
            "next_attempt_at": {**_NULLABLE_TIME, "description": "Set while pending."},
            "last_status_code": {"type": ["integer", "null"]},
            "last_error": {"type": ["string", "null"]},
            "delivered_at": _NULLABLE_TIME,
            "created_at": _TIME,
            "payload": ref("CallbackEvent"),
            "attempt_log": {
                "type": "array",
                "items": {
                    "type": "object",
                    "description": "One attempt; status_code, error and duration_ms are null "
                    "while it is in flight (or if its worker died mid-flight).",
                    "properties": {
                        "attempt": {"type": "integer", "minimum": 1},
                        "at": _TIME,
                        "status_code": {"type": ["integer", "null"]},
                        "error": {"type": ["string", "null"]},
                        "duration_ms": {"type": ["integer", "null"]},
                    },
                },
            },
        },
    },
}

CALLBACK_PATHS: dict[str, Any] = {
    "/v1/incidents/{incident_id}/callbacks": {
        "get": {
            "summary": "The incident's callbacks to 120, in event order, with every attempt.",
            "description": "Admin, or the dispatch center that owns the incident (another "
            "center's incident is a 404).",
            "tags": ["incidents"],
            "parameters": [_INCIDENT_ID, _LIMIT, _CURSOR],
            "responses": {
                "200": json_body(
                    {
                        "type": "object",
                        "required": ["items", "next_cursor"],
                        "properties": {
                            "items": {"type": "array", "items": ref("CallbackDelivery")},
                            "next_cursor": {"type": ["string", "null"]},
                        },
                    },
                    "A page of deliveries.",
                ),
                **errors(400, 401, 403, 404),
            },
        }
    }
}

SCHEMAS = CALLBACK_SCHEMAS
PATHS = CALLBACK_PATHS
