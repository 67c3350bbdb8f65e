"""OpenAPI of remote guidance, the incident record and reports, missions and aftercare."""

from __future__ import annotations

from typing import Any

from dispatch.guidance.models import MARKERS
from dispatch.missions import LEGAL_AID_STATUSES
from dispatch.records import INTERVALS, MILESTONES, SUMMARY_COUNTS, SUMMARY_MEDIANS
from rescue.openapi.common import errors, json_body, ref

_LIMIT = {"$ref": "#/components/parameters/limit"}
_CURSOR = {"$ref": "#/components/parameters/cursor"}
_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_NULLABLE_SECONDS = {"type": ["integer", "null"]}
_NULLABLE_BOOL = {"type": ["boolean", "null"]}
# The vocabularies come from the code, so the document follows it.
_MARKERS = list(MARKERS)
_MILESTONES = list(MILESTONES)
_INTERVALS = [name for name, _, _ in INTERVALS]
_COUNTS = list(SUMMARY_COUNTS)
_MEDIANS = list(SUMMARY_MEDIANS)
_LEGAL_AID_STATUSES = list(LEGAL_AID_STATUSES)


def _path_id(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": schema}


def _list_of(name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": ref(name)},
            "next_cursor": {"type": ["string", "null"]},
        },
    }


_SESSION_ID = _path_id("session_id", "The plan's or accepted offer's `guidance.session_id`.")
_MISSION_ID = _path_id("mission_id", "A mission's id (the accepted offer's id).")
_LEGAL_AID_ID = _path_id("legal_aid_id", "A legal-aid request's id.")
_FROM = _query(
    "from",
    "Start (inclusive) by the alert's time: RFC 3339, or a date in the deployment's zone. "
    "Default: 30 days before `to`.",
    {"type": "string"},
)
_TO = _query(
    "to",
    "End (exclusive) by the alert's time: RFC 3339, or a date (that whole day included). "
    "Default: now.",
    {"type": "string"},
)
_FORMAT = _query("format", "json (default) or csv.", {"type": "string", "enum": ["json", "csv"]})
_SESSION_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]

_GUIDANCE_TEXT = (
    "Authenticated by a guidance session token (the dispatcher's, from the plan; a responder's, "
    "from its accepted offer) as `Authorization: Bearer`, or `?token=` on the WebSocket. "
    "401: no token or an unknown one; 403: a participant of another session, or an admin, "
    "dispatch or volunteer token."
)

_WS_TEXT = (
    "WebSocket (`Upgrade`; otherwise 400 `websocket_required`). " + _GUIDANCE_TEXT + "\n\n"
    "Server → client: first `state` (the session as `GET /v1/guidance/{session_id}`, with "
    '`"type": "state"`), then `marker` (`marker`), `chat` (`text`), `step` (`step`), '
    '`participant` (`event: "joined"`, `participant`; or, not recorded, `event: "online"` / '
    '`"offline"` with `participant` `{id, role}`: someone opened their first socket to the '
    "session, or closed their last, or the worker holding it stopped answering for "
    "60 s), `signal` (`to`, `data`), `closed` "
    "(`status`: closed|cancelled, `reason`), each with `at` (server time) and `from` "
    "(`{id, role}`: a participant, or `system`). Recorded messages carry `id` (their timeline "
    "entry's): the state's `timeline` holds the same messages, so a client that reconnects "
    "gets everything it missed, and ignores an `id` it has seen. After `closed` the server "
    "closes the socket; a socket opened on an ended session gets `state`, `closed`, then the "
    "close. A bad message gets `{type: error, error: {code, message}}` (codes: "
    "invalid_message, unknown_type, invalid_marker, marker_not_allowed, not_engaged, "
    "unknown_step, forbidden, unknown_participant, rate_limited, session_closed, unavailable) "
    "and the socket stays open.\n\n"
    "Client → server: `{type: marker, marker}` (the markers plus `ems_arrived`; `handed_over` "
    "and `withdrawn` only a responder about itself), `{type: chat, text}` (1-2000 "
    "characters), `{type: step, step}` (dispatcher only; a step id of `protocol.steps`), "
    "`{type: signal, to: <participant id>, data: {...}}` (WebRTC offer/answer/ICE, at most "
    "64 KiB, relayed to that participant only, on whichever worker, never stored).\n\n"
    "Markers are timestamped by the server and written to the incident's timeline (named after "
    "the marker). A responder's marker of the offer vocabulary while engaged is its offer's "
    "status (event `responder.status`, as `POST /v1/me/offers/{id}/status`; `withdrawn` and "
    "`handed_over` end the engagement); any other is event `guidance.marker` (data "
    "`session_id, participant_id, role, volunteer_id, marker`). Steps are timeline "
    "`guidance_step` and event `guidance.step`; chat is timeline `guidance_chat` only. Every "
    "event is a callback to 120. The session closes when the incident is closed or cancelled."
)

_STEP_TEXT = {
    "type": "object",
    "properties": {"text_zh": {"type": "string"}, "text_en": {"type": "string"}},
}

SCHEMAS: dict[str, Any] = {
    "GuidanceParticipant": {
        "type": "object",
        "required": ["id", "role", "volunteer_id", "responder_role", "joined_at"],
        "properties": {
            "id": {"type": "string", "description": "The participant id (signal `to`)."},
            "role": {"type": "string", "enum": ["dispatcher", "responder"]},
            "volunteer_id": {"type": ["string", "null"]},
            "responder_role": {"type": ["string", "null"], "enum": ["aed", "cpr", None]},
            "joined_at": _TIME,
            "status": {
                "type": ["string", "null"],
                "description": "A responder's last marker on its offer.",
            },
            "engaged": {"type": "boolean", "description": "Still engaged (responders)."},
            "online": {
                "type": "boolean",
                "description": "Has a socket open to the session now (best effort: false "
                "when the server cannot tell).",
            },
        },
    },
    "GuidanceFrom": {
        "type": "object",
        "required": ["id", "role"],
        "description": 'Who sent a message: a participant, or `{"id": "system"}`.',
        "properties": {
            "id": {"type": "string"},
            "role": {"type": "string", "enum": ["dispatcher", "responder", "system"]},
        },
    },
    "GuidanceMessage": {
        "type": "object",
        "required": ["type", "at", "from"],
        "description": "A live or recorded session message (see the WebSocket).",
        "properties": {
            "type": {
                "type": "string",
                "enum": ["marker", "chat", "step", "participant", "signal", "closed"],
            },
            "id": {"type": "integer", "description": "The timeline entry (recorded ones)."},
            "at": _TIME,
            "from": ref("GuidanceFrom"),
            "marker": {"type": "string", "enum": _MARKERS},
            "text": {"type": "string"},
            "step": {"type": "string"},
            "event": {"type": "string", "enum": ["joined", "online", "offline"]},
            "participant": {"oneOf": [ref("GuidanceParticipant"), ref("GuidanceFrom")]},
            "to": {"type": "string"},
            "data": {"type": "object"},
            "status": {"type": "string", "enum": ["closed", "cancelled"]},
            "reason": {"type": ["string", "null"]},
        },
    },
    "GuidanceStep": {
        "type": "object",
        "required": ["id", "n", "title_zh", "title_en", "roles", "metronome"],
        "properties": {
            "id": {"type": "string"},
            "n": {"type": "integer"},
            "title_zh": {"type": "string"},
            "title_en": {"type": "string"},
            "text_zh": {"type": "string"},
            "text_en": {"type": "string"},
            "roles": {
                "type": "object",
                "description": "The step's text for each role: dispatcher, cpr, aed.",
                "additionalProperties": _STEP_TEXT,
            },
            "metronome": {
                "type": "boolean",
                "description": "Compressions run during this step: play the cadence.",
            },
            "cadence_per_min": {"type": ["integer", "null"]},
            "markers": {"type": "array", "items": {"type": "string", "enum": _MARKERS}},
        },
    },
    "GuidanceProtocol": {
        "type": "object",
        "description": (
            "Adult cardiac arrest, per role (dispatcher, cpr, aed), in Chinese and English. "
            "Compressions 100-120/min, 5-6 cm; the metronome's cadence is "
            "RESCUE_METRONOME_PER_MIN (110 by default)."
        ),
        "properties": {
            "id": {"type": "string", "examples": ["adult_cardiac_arrest"]},
            "version": {"type": "integer"},
            "title_zh": {"type": "string"},
            "title_en": {"type": "string"},
            "roles": {"type": "array", "items": {"type": "string"}},
            "first_step": {"type": "string"},
            "metronome": {
                "type": "object",
                "properties": {
                    "cadence_per_min": {"type": "integer", "minimum": 100, "maximum": 120},
                    "min_per_min": {"type": "integer"},
                    "max_per_min": {"type": "integer"},
                },
            },
            "compressions": {"type": "object"},
            "steps": {"type": "array", "items": ref("GuidanceStep")},
        },
    },
    "GuidanceSession": {
        "type": "object",
        "required": ["session_id", "incident_id", "status", "me", "participants", "step"],
        "properties": {
            "session_id": {"type": "string"},
            "incident_id": {"type": "string"},
            "exercise": {"type": "boolean"},
            "status": {"type": "string", "enum": ["open", "closed"]},
            "created_at": _TIME,
            "closed_at": _NULLABLE_TIME,
            "me": ref("GuidanceParticipant"),
            "participants": {"type": "array", "items": ref("GuidanceParticipant")},
            "step": {"type": "string", "description": "The current protocol step's id."},
            "step_at": _NULLABLE_TIME,
            "protocol": ref("GuidanceProtocol"),
            "timeline": {
                "type": "array",
                "items": ref("GuidanceMessage"),
                "description": "Markers, steps, chat, joins and the end, as live messages.",
            },
        },
    },
    "IncidentRecord": {
        "type": "object",
        "description": (
            "The Utstein-style record, from the timeline. Milestones: call (reported_at), "
            "alert, first_offer, first_acceptance, on_scene (a responder's first on-scene "
            "marker), first_compression (first cpr_started, bystander CPR recorded by the "
            "dispatcher included), aed_on_scene (aed_arrived, or pads/shock if earlier), "
            "pads_attached, first_shock, rosc, ems_arrival (the earlier of the ems_arrived "
            "marker and outcome.ems_arrived_at). Intervals in whole seconds, null unless both "
            "ends are known; on_scene_before_ems_s > 0: responders were first."
        ),
        "properties": {
            "incident_id": {"type": "string"},
            "external_id": {"type": "string"},
            "center_id": {"type": "string"},
            "exercise": {"type": "boolean"},
            "status": {"type": "string", "enum": ["open", "cancelled", "closed"]},
            "category": {"type": ["string", "null"]},
            "district": {"type": ["string", "null"]},
            "times": {
                "type": "object",
                "properties": {m: _NULLABLE_TIME for m in _MILESTONES},
            },
            "intervals_s": {
                "type": "object",
                "properties": {i: _NULLABLE_SECONDS for i in _INTERVALS},
            },
            "responders": {
                "type": "object",
                "properties": {"offered": {"type": "integer"}, "accepted": {"type": "integer"}},
            },
            "shocks": {"type": "integer"},
            "outcome": {
                "type": "object",
                "properties": {
                    "rosc": {**_NULLABLE_BOOL, "description": "Any ROSC (marker or outcome)."},
                    "transported": _NULLABLE_BOOL,
                    "survived": _NULLABLE_BOOL,
                    "on_scene_before_ems": _NULLABLE_BOOL,
                },
            },
        },
    },
    "IncidentRecordList": {
        "allOf": [
            _list_of("IncidentRecord"),
            {"type": "object", "properties": {"from": _TIME, "to": _TIME}},
        ]
    },
    "ReportCounts": {
        "type": "object",
        "description": (
            "Incidents counted (volunteers_offered, responders_accepted and shocks: totals); "
            "medians in seconds over the incidents where the interval is known."
        ),
        "properties": {
            **{c: {"type": "integer"} for c in _COUNTS},
            "median_s": {
                "type": "object",
                "properties": {m: {"type": ["number", "null"]} for m in _MEDIANS},
            },
        },
    },
    "ReportSummary": {
        "type": "object",
        "required": ["from", "to", "real", "exercises"],
        "properties": {
            "from": _TIME,
            "to": _TIME,
            "real": ref("ReportCounts"),
            "exercises": ref("ReportCounts"),
        },
    },
    "LegalAid": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "mission_id": {"type": "string"},
            "incident_id": {"type": "string"},
            "volunteer": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "name": {"type": "string"},
                    "phone": {"type": "string"},
                },
            },
            "status": {"type": "string", "enum": _LEGAL_AID_STATUSES},
            "description": {"type": "string"},
            "contact_phone": {"type": ["string", "null"]},
            "note": {"type": ["string", "null"]},
            "created_at": _TIME,
            "updated_at": _TIME,
        },
    },
    "Mission": {
        "type": "object",
        "description": (
            "A responder's accepted offer in a real incident (id: the offer's id), derived "
            "from the record. Insurance covers from acceptance until its first handed_over or "
            "withdrawn, else the incident's end, plus RESCUE_INSURANCE_MARGIN_S. Reward: "
            "RESCUE_REWARD_RULES, any rule met (a rule: markers joined by `+`, all needed; "
            "`arrived` is implied by any on-scene marker, `aed_arrived` by pads or shock, "
            "`pads_attached` by a shock)."
        ),
        "properties": {
            "id": {"type": "string"},
            "incident_id": {"type": "string"},
            "volunteer_id": {"type": "string"},
            "role": {"type": "string", "enum": ["aed", "cpr"]},
            "accepted_at": _TIME,
            "status": {"type": "string", "enum": ["ongoing", "ended"]},
            "ended_at": _NULLABLE_TIME,
            "ended_by": {
                "type": ["string", "null"],
                "enum": [
                    "handed_over",
                    "withdrawn",
                    "incident_closed",
                    "incident_cancelled",
                    None,
                ],
            },
            "incident": {
                "type": "object",
                "properties": {
                    "status": {"type": "string"},
                    "alert_at": _TIME,
                    "district": {"type": ["string", "null"]},
                    "address": {"type": ["string", "null"]},
                },
            },
            "markers": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"marker": {"type": "string"}, "at": _TIME},
                },
            },
            "insurance": {
                "type": "object",
                "properties": {
                    "from": _TIME,
                    "until": {**_NULLABLE_TIME, "description": "null while ongoing."},
                    "margin_s": {"type": "integer"},
                    "active": {"type": "boolean"},
                },
            },
            "reward": {
                "type": "object",
                "properties": {
                    "eligible": {"type": "boolean"},
                    "rules": {"type": "array", "items": {"type": "string"}},
                    "met": {"type": "array", "items": {"type": "string"}},
                },
            },
            "legal_aid": {"oneOf": [{"type": "object"}, {"type": "null"}]},
            "debrief": {
                "oneOf": [
                    {
                        "type": "object",
                        "properties": {
                            "submitted_at": _TIME,
                            "call_requested": {"type": "boolean"},
                        },
                    },
                    {"type": "null"},
                ]
            },
        },
    },
    "DebriefAnswers": {
        "type": "object",
        "additionalProperties": False,
        "description": "Every answer is optional.",
        "properties": {
            "wellbeing": {"type": "integer", "minimum": 1, "maximum": 5},
            "intrusive_thoughts": {"type": "boolean"},
            "sleep_affected": {"type": "boolean"},
            "injury_or_exposure": {"type": "boolean"},
            "felt_supported": {"type": "boolean"},
            "comment": {"type": "string", "maxLength": 2000},
        },
    },
    "Debrief": {
        "type": "object",
        "properties": {
            "mission_id": {"type": "string"},
            "available": {"type": "boolean", "description": "The mission has ended."},
            "questions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "type": {"type": "string", "enum": ["scale", "boolean", "text"]},
                        "text_zh": {"type": "string"},
                        "text_en": {"type": "string"},
                    },
                },
            },
            "call_request": _STEP_TEXT,
            "answers": {"oneOf": [ref("DebriefAnswers"), {"type": "null"}]},
            "call_requested": {"type": "boolean"},
            "callback_phone": {"type": ["string", "null"]},
            "submitted_at": _NULLABLE_TIME,
            "updated_at": _NULLABLE_TIME,
        },
    },
    "ListedDebrief": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "mission_id": {"type": "string"},
            "incident_id": {"type": "string"},
            "volunteer": {"type": "object"},
            "call_requested": {"type": "boolean"},
            "callback_phone": {"type": ["string", "null"]},
            "answers": ref("DebriefAnswers"),
            "submitted_at": _TIME,
            "updated_at": _TIME,
        },
    },
    "MissionList": _list_of("Mission"),
    "LegalAidList": _list_of("LegalAid"),
    "DebriefList": _list_of("ListedDebrief"),
}

_CSV = {"text/csv": {"schema": {"type": "string"}}}


def _json_or_csv(schema: str, csv_text: str) -> dict[str, Any]:
    body = json_body(ref(schema), f"JSON; with `format=csv`, {csv_text}")
    body["content"].update(_CSV)
    return body


PATHS: dict[str, Any] = {
    "/v1/guidance/{session_id}": {
        "get": {
            "summary": "A guidance session: participants, current step, protocol, timeline.",
            "description": _GUIDANCE_TEXT,
            "tags": ["guidance"],
            "security": _SESSION_SECURITY,
            "parameters": [_SESSION_ID],
            "responses": {"200": json_body(ref("GuidanceSession")), **errors(401, 403)},
        }
    },
    "/v1/guidance/{session_id}/ws": {
        "get": {
            "summary": "The session's WebSocket: state, steps, markers, chat, WebRTC signalling.",
            "description": _WS_TEXT,
            "tags": ["guidance"],
            "security": _SESSION_SECURITY,
            "parameters": [
                _SESSION_ID,
                _query(
                    "token", "The session token (browsers cannot set headers).", {"type": "string"}
                ),
            ],
            "responses": {
                "101": {"description": "Switching to the WebSocket protocol."},
                **errors(400, 401, 403),
            },
        }
    },
    "/v1/reports/incidents": {
        "get": {
            "summary": "Each incident's Utstein-style record in a period (admin), JSON or CSV.",
            "description": (
                "Incidents alerted in [from, to), by id; JSON is paged (`limit`, `cursor`), "
                "CSV streams every record of the period (one row each: times `<milestone>_at`, "
                "the intervals, counts and outcome). `exercise=true|false` filters."
            ),
            "tags": ["reports"],
            "parameters": [
                _FROM,
                _TO,
                _FORMAT,
                _query("exercise", "Only exercises, or only real incidents.", {"type": "boolean"}),
                _LIMIT,
                _CURSOR,
            ],
            "responses": {
                "200": _json_or_csv("IncidentRecordList", "text/csv."),
                **errors(400, 401, 403),
            },
        }
    },
    "/v1/reports/summary": {
        "get": {
            "summary": "A period's counts and median intervals (admin); exercises apart.",
            "tags": ["reports"],
            "parameters": [_FROM, _TO],
            "responses": {"200": json_body(ref("ReportSummary")), **errors(400, 401, 403)},
        }
    },
    "/v1/me/missions": {
        "get": {
            "summary": "The volunteer's own missions (insurance cover, reward, legal aid).",
            "tags": ["missions"],
            "parameters": [_LIMIT, _CURSOR],
            "responses": {"200": json_body(ref("MissionList")), **errors(400, 401, 403)},
        }
    },
    "/v1/me/missions/{mission_id}": {
        "get": {
            "summary": "One of the volunteer's missions (another's is a 404).",
            "tags": ["missions"],
            "parameters": [_MISSION_ID],
            "responses": {"200": json_body(ref("Mission")), **errors(401, 403, 404)},
        }
    },
    "/v1/me/missions/{mission_id}/legal-aid": {
        "post": {
            "summary": "Ask for legal aid on this mission (once; 409 `legal_aid_exists`).",
            "tags": ["missions"],
            "parameters": [_MISSION_ID],
            "requestBody": json_body(
                {
                    "type": "object",
                    "required": ["description"],
                    "additionalProperties": False,
                    "properties": {
                        "description": {"type": "string", "maxLength": 5000},
                        "contact_phone": {"type": ["string", "null"], "maxLength": 50},
                    },
                }
            ),
            "responses": {
                "201": json_body(ref("LegalAid"), "Created."),
                **errors(400, 401, 403, 404, 409, 413, 415),
            },
        }
    },
    "/v1/me/missions/{mission_id}/debrief": {
        "get": {
            "summary": "The mission's aftercare debrief: questions (zh/en) and answers.",
            "tags": ["missions"],
            "parameters": [_MISSION_ID],
            "responses": {"200": json_body(ref("Debrief")), **errors(401, 403, 404)},
        },
        "post": {
            "summary": "Answer the debrief and/or ask to be called (after the mission).",
            "description": (
                "201 the first time, 200 when answered again (the latest answers are kept). "
                "409 `mission_ongoing` before the mission ended."
            ),
            "tags": ["missions"],
            "parameters": [_MISSION_ID],
            "requestBody": json_body(
                {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "answers": ref("DebriefAnswers"),
                        "call_requested": {"type": "boolean", "default": False},
                        "callback_phone": {"type": ["string", "null"], "maxLength": 50},
                    },
                }
            ),
            "responses": {
                "201": json_body(ref("Debrief"), "Answered."),
                "200": json_body(ref("Debrief"), "Answered again."),
                **errors(400, 401, 403, 404, 409, 413, 415),
            },
        },
    },
    "/v1/missions": {
        "get": {
            "summary": "Every mission (admin), JSON or CSV.",
            "description": "Filter by `volunteer_id` and by acceptance time (`from`, `to`).",
            "tags": ["missions"],
            "parameters": [
                _query("volunteer_id", "One volunteer's missions.", {"type": "string"}),
                _FROM,
                _TO,
                _FORMAT,
                _LIMIT,
                _CURSOR,
            ],
            "responses": {
                "200": _json_or_csv("MissionList", "text/csv, one row per mission."),
                **errors(400, 401, 403),
            },
        }
    },
    "/v1/legal-aid": {
        "get": {
            "summary": "Volunteers' legal-aid requests (admin).",
            "tags": ["missions"],
            "parameters": [
                _query(
                    "status",
                    "Only requests in this status.",
                    {"type": "string", "enum": _LEGAL_AID_STATUSES},
                ),
                _LIMIT,
                _CURSOR,
            ],
            "responses": {"200": json_body(ref("LegalAidList")), **errors(400, 401, 403)},
        }
    },
    "/v1/legal-aid/{legal_aid_id}": {
        "patch": {
            "summary": "Update a legal-aid request's status and note (admin).",
            "tags": ["missions"],
            "parameters": [_LEGAL_AID_ID],
            "requestBody": json_body(
                {
                    "type": "object",
                    "additionalProperties": False,
                    "minProperties": 1,
                    "properties": {
                        "status": {
                            "type": "string",
                            "enum": _LEGAL_AID_STATUSES,
                        },
                        "note": {"type": ["string", "null"], "maxLength": 5000},
                    },
                }
            ),
            "responses": {
                "200": json_body(ref("LegalAid")),
                **errors(400, 401, 403, 404, 413, 415),
            },
        }
    },
    "/v1/debriefs": {
        "get": {
            "summary": "Volunteers' debriefs (admin); `call_requested=true`: who asked.",
            "tags": ["missions"],
            "parameters": [
                _query(
                    "call_requested",
                    "Only those who asked (not) to be called.",
                    {"type": "boolean"},
                ),
                _LIMIT,
                _CURSOR,
            ],
            "responses": {"200": json_body(ref("DebriefList")), **errors(400, 401, 403)},
        }
    },
}
