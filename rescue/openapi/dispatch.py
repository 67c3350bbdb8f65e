"""OpenAPI of dispatch: the 120 alert, incidents, and the volunteer's offers."""

from __future__ import annotations

from typing import Any

from rescue.openapi.common import errors, json_body, ref

_CRS = {"$ref": "#/components/parameters/crs"}
_LIMIT = {"$ref": "#/components/parameters/limit"}
_CURSOR = {"$ref": "#/components/parameters/cursor"}


def _path_id(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


_INCIDENT_ID = _path_id("incident_id", "The incident's id (the plan's `incident_id`).")
_OFFER_ID = _path_id("offer_id", "One of this volunteer's offers.")
_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_SECONDS = {"type": "integer", "minimum": 0}
_METRES = {"type": "integer", "minimum": 0}
_MARKERS = [
    "aed_collected",
    "arrived",
    "cpr_started",
    "aed_arrived",
    "pads_attached",
    "shock_delivered",
    "rosc",
    "handed_over",
    "withdrawn",
]

_GUIDANCE_TEXT = (
    "The remote-guidance session and this participant's own token (the dispatcher's in a plan, "
    "the responder's in an accepted offer). The token is derived (HMAC-SHA256 of the session "
    "and participant ids under a key derived from the deployment secret) and only its hash is "
    "stored, so a replayed alert answers the same token."
)

_EVENTS_TEXT = (
    "Timeline entry types: `alert_received`, `plan_made`, `offers_sent` (per wave), "
    "`offer_accepted`, `offer_declined`, `offer_expired`, `offer_cancelled`, `escalated`, "
    "`cancelled`, `closed`, and each responder marker under its own name (e.g. `cpr_started`). "
    "Actors are a dispatch center id, a volunteer id, `admin` or `system`. Exercise incidents "
    'carry `"exercise": true` in every entry\'s data. The matching events (and callbacks) are '
    "incident.created, offer.created, offer.accepted, offer.declined, offer.expired, "
    "offer.cancelled, responder.status, incident.escalated, incident.cancelled, incident.closed."
)

SCHEMAS: dict[str, Any] = {
    "LocationOut": {
        "type": "object",
        "required": ["lat", "lng", "crs"],
        "description": "A location in the response's coordinate system (`?crs=`).",
        "properties": {
            "lat": {"type": "number"},
            "lng": {"type": "number"},
            "crs": {"type": "string", "enum": ["wgs84", "gcj02", "bd09"]},
        },
    },
    "AlertRequest": {
        "type": "object",
        "required": ["external_id", "location"],
        "additionalProperties": False,
        "properties": {
            "external_id": {
                "type": "string",
                "maxLength": 200,
                "description": "The 120 system's id, unique per dispatch center.",
            },
            "location": ref("Location"),
            "address": {"type": ["string", "null"], "maxLength": 500},
            "reported_at": _NULLABLE_TIME,
            "category": {
                "type": ["string", "null"],
                "enum": ["cardiac_arrest", "unconscious", "other", None],
            },
            "exercise": {"type": "boolean", "default": False},
            "callback_url": {
                "type": ["string", "null"],
                "format": "uri",
                "description": "Callbacks of this incident go here instead of the center's URL.",
            },
            "note": {"type": ["string", "null"], "maxLength": 2000},
        },
    },
    "PlanResponder": {
        "type": "object",
        "required": ["volunteer_id", "offer_id", "role", "eta_s", "distance_m", "aed_id"],
        "properties": {
            "volunteer_id": {"type": "string"},
            "offer_id": {"type": "string"},
            "role": {
                "type": "string",
                "enum": ["aed", "cpr"],
                "description": "`aed`: fetch the AED `aed_id` on the way; `cpr`: go straight.",
            },
            "eta_s": {**_SECONDS, "description": "Travel time (via the AED for role aed)."},
            "distance_m": {**_METRES, "description": "Straight-line distance to the patient."},
            "aed_id": {"type": ["string", "null"]},
        },
    },
    "PlanAed": {
        "type": "object",
        "required": [
            "id",
            "name",
            "address",
            "location",
            "level",
            "access_note",
            "opening_hours",
            "distance_m",
            "eta_s",
        ],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "address": {"type": ["string", "null"]},
            "location": ref("LocationOut"),
            "level": {"type": ["integer", "null"]},
            "access_note": {"type": ["string", "null"]},
            "opening_hours": {"type": "string"},
            "distance_m": {**_METRES, "description": "Straight-line distance from the patient."},
            "eta_s": {**_SECONDS, "description": "Walking time from the patient."},
        },
    },
    "Guidance": {
        "type": "object",
        "required": ["session_id", "url", "token"],
        "description": _GUIDANCE_TEXT,
        "properties": {
            "session_id": {"type": "string"},
            "url": {"type": "string", "description": "The session's WebSocket (`?token=`)."},
            "token": {"type": "string"},
        },
    },
    "Plan": {
        "type": "object",
        "required": [
            "incident_id",
            "external_id",
            "status",
            "created_at",
            "location",
            "district",
            "time_budget_s",
            "responders",
            "aeds",
            "guidance",
            "degraded",
            "exercise",
        ],
        "properties": {
            "incident_id": {"type": "string"},
            "external_id": {"type": "string"},
            "status": {"type": "string", "enum": ["open", "cancelled", "closed"]},
            "created_at": _TIME,
            "location": ref("LocationOut"),
            "district": {
                "type": ["string", "null"],
                "description": 'The district\'s adcode (e.g. "370202"), as on AEDs and volunteers.',
            },
            "time_budget_s": {"type": "integer", "examples": [300]},
            "exercise": {"type": "boolean"},
            "responders": {
                "type": "array",
                "items": ref("PlanResponder"),
                "description": (
                    "Eligible volunteers (on duty, fresh position, valid certificate, active, "
                    "not engaged, outside quiet hours) within the budget by their own travel "
                    "mode, each offered one role; sorted by eta_s."
                ),
            },
            "aeds": {
                "type": "array",
                "items": ref("PlanAed"),
                "description": (
                    "Active AEDs, pads and battery not expired, open now by opening_hours, "
                    "within the budget's walking time from the patient; nearest first."
                ),
            },
            "guidance": ref("Guidance"),
            "degraded": {
                "type": "array",
                "items": {"type": "string", "enum": ["volunteers"]},
                "description": "What could not be consulted; the plan holds what is known.",
            },
        },
    },
    "OfferAed": {
        "type": "object",
        "description": "The AED to fetch (role aed).",
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "address": {"type": ["string", "null"]},
            "location": ref("LocationOut"),
            "level": {"type": ["integer", "null"]},
            "indoor": {"type": ["boolean", "null"]},
            "access_note": {"type": ["string", "null"]},
            "opening_hours": {"type": "string"},
        },
    },
    "Offer": {
        "type": "object",
        "required": [
            "id",
            "incident_id",
            "role",
            "state",
            "eta_s",
            "distance_m",
            "offered_at",
            "expires_at",
            "exercise",
            "aed",
            "incident",
            "guidance",
        ],
        "properties": {
            "id": {"type": "string"},
            "incident_id": {"type": "string"},
            "role": {"type": "string", "enum": ["aed", "cpr"]},
            "state": {
                "type": "string",
                "enum": ["open", "accepted", "declined", "expired", "cancelled"],
            },
            "eta_s": _SECONDS,
            "distance_m": _METRES,
            "offered_at": _TIME,
            "expires_at": _TIME,
            "exercise": {"type": "boolean"},
            "aed": {"oneOf": [ref("OfferAed"), {"type": "null"}]},
            "incident": {
                "description": "The patient's location and address: only once accepted.",
                "oneOf": [
                    {
                        "type": "object",
                        "properties": {
                            "location": ref("LocationOut"),
                            "address": {"type": ["string", "null"]},
                        },
                    },
                    {"type": "null"},
                ],
            },
            "guidance": {"oneOf": [ref("Guidance"), {"type": "null"}]},
        },
    },
    "OfferList": {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": ref("Offer")},
            "next_cursor": {"type": ["string", "null"]},
        },
    },
    "IncidentOffer": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "volunteer_id": {"type": "string"},
            "role": {"type": "string", "enum": ["aed", "cpr"]},
            "state": {
                "type": "string",
                "enum": ["open", "accepted", "declined", "expired", "cancelled"],
            },
            "wave": {"type": "integer", "minimum": 1},
            "eta_s": _SECONDS,
            "distance_m": _METRES,
            "aed_id": {"type": ["string", "null"]},
            "offered_at": _TIME,
            "expires_at": _TIME,
            "answered_at": _NULLABLE_TIME,
            "last_status": {"type": ["string", "null"], "enum": [*_MARKERS, None]},
            "engaged": {"type": "boolean", "description": "Still engaged in this incident."},
        },
    },
    "TimelineEntry": {
        "type": "object",
        "required": ["at", "type", "actor", "data"],
        "properties": {
            "at": _TIME,
            "type": {"type": "string"},
            "actor": {"type": "string"},
            "data": {"type": "object"},
        },
    },
    "Outcome": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "ems_arrived_at": _NULLABLE_TIME,
            "rosc": {"type": ["boolean", "null"]},
            "transported": {"type": ["boolean", "null"]},
            "survived": {"type": ["boolean", "null"]},
            "notes": {"type": ["string", "null"], "maxLength": 5000},
        },
    },
    "Incident": {
        "description": "The plan as first answered, with the incident's current state.",
        "allOf": [
            ref("Plan"),
            {
                "type": "object",
                "properties": {
                    "address": {"type": ["string", "null"]},
                    "category": {"type": ["string", "null"]},
                    "reported_at": _NULLABLE_TIME,
                    "wave": {"type": "integer", "description": "Escalation waves so far."},
                    "budget_s": {
                        "type": "integer",
                        "description": "The reach now, after escalation.",
                    },
                    "closed_at": _NULLABLE_TIME,
                    "outcome": {
                        "description": 'Closed: the outcome; cancelled: `{"reason"}`.',
                        "oneOf": [ref("Outcome"), {"type": "object"}, {"type": "null"}],
                    },
                    "offers": {"type": "array", "items": ref("IncidentOffer")},
                    "timeline": {
                        "type": "array",
                        "items": ref("TimelineEntry"),
                        "description": _EVENTS_TEXT,
                    },
                },
            },
        ],
    },
}

_INCIDENT_RESPONSE = json_body(ref("Incident"), "The incident.")
_OFFER_RESPONSE = json_body(ref("Offer"), "The offer.")

PATHS: dict[str, Any] = {
    "/v1/alerts": {
        "post": {
            "summary": "Raise an alert (dispatch key): the plan, within milliseconds.",
            "description": (
                "201 with the plan of a new incident; 200 with the same plan (same guidance "
                "token) for a replay of the same `external_id` with the same body (compared as "
                "canonical JSON: key order and spacing do not matter), which notifies nobody "
                "again; 409 `external_id_conflict` for the same `external_id` with another "
                "body. Offers are made to the responders at once; escalation waves follow "
                "while roles lack accepted responders. With live positions unavailable the "
                'plan has no responders and `degraded: ["volunteers"]`; the incident is '
                "stored and escalation offers volunteers once they can be found."
            ),
            "tags": ["alerts"],
            "parameters": [_CRS],
            "requestBody": json_body(ref("AlertRequest")),
            "responses": {
                "201": json_body(ref("Plan"), "A new incident's plan."),
                "200": json_body(ref("Plan"), "The stored plan of a replayed alert."),
                **errors(400, 401, 403, 409, 413, 415, 422),
            },
        }
    },
    "/v1/incidents/{incident_id}": {
        "get": {
            "summary": "An incident: plan, every offer with its state, timeline, outcome.",
            "description": (
                "For the dispatch center that raised it, and administrators. Another center "
                "gets 404, not 403, so incident ids reveal nothing about other centers."
            ),
            "tags": ["incidents"],
            "parameters": [_INCIDENT_ID, _CRS],
            "responses": {"200": _INCIDENT_RESPONSE, **errors(400, 401, 403, 404)},
        }
    },
    "/v1/incidents/{incident_id}/cancel": {
        "post": {
            "summary": "Cancel an open incident.",
            "description": (
                "Once: open offers are cancelled, engaged volunteers released, the guidance "
                "session closed; phones and 120 hear it. 409 `incident_not_open` if it was "
                "already cancelled or closed."
            ),
            "tags": ["incidents"],
            "parameters": [_INCIDENT_ID, _CRS],
            "requestBody": json_body(
                {
                    "type": "object",
                    "required": ["reason"],
                    "additionalProperties": False,
                    "properties": {"reason": {"type": "string", "maxLength": 1000}},
                }
            ),
            "responses": {"200": _INCIDENT_RESPONSE, **errors(400, 401, 403, 404, 409, 413, 415)},
        }
    },
    "/v1/incidents/{incident_id}/close": {
        "post": {
            "summary": "Close an open incident with its outcome.",
            "description": "As cancel, recording the outcome. 409 `incident_not_open`.",
            "tags": ["incidents"],
            "parameters": [_INCIDENT_ID, _CRS],
            "requestBody": json_body(
                {
                    "type": "object",
                    "required": ["outcome"],
                    "additionalProperties": False,
                    "properties": {"outcome": ref("Outcome")},
                }
            ),
            "responses": {"200": _INCIDENT_RESPONSE, **errors(400, 401, 403, 404, 409, 413, 415)},
        }
    },
    "/v1/me/offers": {
        "get": {
            "summary": "The volunteer's open offers, and the accepted one it is engaged in.",
            "description": (
                "Open offers (not expired, of an open incident), plus the accepted offer the "
                "volunteer is still engaged in (until handed_over, withdrawn or the incident "
                "ends), so a phone that restarts finds its current job. Ordered by id."
            ),
            "tags": ["offers"],
            "parameters": [_LIMIT, _CURSOR, _CRS],
            "responses": {"200": json_body(ref("OfferList")), **errors(400, 401, 403)},
        }
    },
    "/v1/me/offers/{offer_id}/accept": {
        "post": {
            "summary": "Accept an offer: reveals the patient's location and the guidance session.",
            "description": (
                "The first acceptance wins. 409 `offer_not_open` when the offer was already "
                "answered, expired or cancelled; 409 `already_engaged` when the volunteer is "
                "engaged in another incident. Another volunteer's offer is a 404. The "
                "volunteer's other open offers are then cancelled (`offer.cancelled` with "
                '`"reason": "engaged_elsewhere"`), and their incidents may escalate at once.'
            ),
            "tags": ["offers"],
            "parameters": [_OFFER_ID, _CRS],
            "responses": {"200": _OFFER_RESPONSE, **errors(401, 403, 404, 409)},
        }
    },
    "/v1/me/offers/{offer_id}/decline": {
        "post": {
            "summary": "Decline an open offer.",
            "description": "409 `offer_not_open` when it is no longer open.",
            "tags": ["offers"],
            "parameters": [_OFFER_ID, _CRS],
            "responses": {"200": _OFFER_RESPONSE, **errors(401, 403, 404, 409)},
        }
    },
    "/v1/me/offers/{offer_id}/status": {
        "post": {
            "summary": "A responder's status marker on its accepted offer (a timeline entry).",
            "description": (
                "Only on an accepted offer the volunteer is still engaged in (else 409 "
                "`offer_not_engaged`); `handed_over` and `withdrawn` end the engagement."
            ),
            "tags": ["offers"],
            "parameters": [_OFFER_ID, _CRS],
            "requestBody": json_body(
                {
                    "type": "object",
                    "required": ["status"],
                    "additionalProperties": False,
                    "properties": {"status": {"type": "string", "enum": _MARKERS}},
                }
            ),
            "responses": {"200": _OFFER_RESPONSE, **errors(400, 401, 403, 404, 409, 413, 415)},
        }
    },
}
