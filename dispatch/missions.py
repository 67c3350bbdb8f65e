"""Missions: what protects the volunteers who acted (insurance cover, reward, legal aid).

A mission is a responder's accepted offer in a real (not exercise) incident; its id is the
offer's id. Missions are derived on read from the offer, the incident and the timeline, so
they always agree with the record; only the volunteer's legal-aid request (and debrief, see
dispatch/aftercare.py) is stored.

- Insurance cover: from the acceptance until the volunteer's first `handed_over` or
  `withdrawn`, else the incident's end (closed or cancelled), plus RESCUE_INSURANCE_MARGIN_S;
  open-ended while the mission is ongoing.
- Reward: RESCUE_REWARD_RULES, comma-separated rules, any of which makes the mission eligible;
  a rule is one marker or several joined by `+` (all needed), e.g. `arrived` or
  `arrived+cpr_started,pads_attached`. A marker counts when the volunteer reported it or an act
  that implies it: `arrived` by any on-scene marker, `aed_arrived` by `pads_attached` or
  `shock_delivered`, `pads_attached` by `shock_delivered`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from dispatch.errors import DispatchError
from dispatch.models import ENDING_MARKERS, STATUS_MARKERS
from dispatch.records import ON_SCENE_MARKERS
from rescue.errors import ApiError, conflict, not_found
from rescue.ids import new_id

IMPLIED_BY: dict[str, frozenset[str]] = {
    "arrived": ON_SCENE_MARKERS,
    "aed_arrived": frozenset({"aed_arrived", "pads_attached", "shock_delivered"}),
    "pads_attached": frozenset({"pads_attached", "shock_delivered"}),
}
LEGAL_AID_STATUSES = ("open", "in_progress", "resolved", "declined")

# $1 volunteer (NULL: all), $2 mission id, $3/$4 accepted in [from, to), $5 cursor, $6 limit.
MISSIONS = """
SELECT o.id, o.incident_id, o.volunteer_id, o.role, o.answered_at AS accepted_at,
       i.status AS incident_status, i.created_at AS alert_at, i.closed_at AS incident_ended_at,
       i.district, i.address,
       la.id AS legal_aid_id, la.status AS legal_aid_status, la.description, la.contact_phone,
       la.note, la.created_at AS legal_aid_created_at, la.updated_at AS legal_aid_updated_at,
       d.submitted_at AS debrief_submitted_at, d.call_requested
FROM offers o
JOIN incidents i ON i.id = o.incident_id
LEFT JOIN legal_aid_requests la ON la.offer_id = o.id
LEFT JOIN debriefs d ON d.offer_id = o.id
WHERE o.state = 'accepted' AND NOT i.exercise
  AND ($1::text IS NULL OR o.volunteer_id = $1)
  AND ($2::text IS NULL OR o.id = $2)
  AND ($3::timestamptz IS NULL OR o.answered_at >= $3)
  AND ($4::timestamptz IS NULL OR o.answered_at < $4)
  AND ($5::text IS NULL OR o.id > $5)
ORDER BY o.id
LIMIT $6
"""

# The markers the missions' volunteers reported in their incidents (phone or session).
MISSION_MARKERS = """
SELECT incident_id, at, type, data->>'volunteer_id' AS volunteer_id FROM timeline
WHERE incident_id = ANY($1::text[]) AND type = ANY($2::text[])
  AND data->>'volunteer_id' = ANY($3::text[])
ORDER BY at, id
"""

# Atomic: only on the volunteer's own mission; a second request is a unique violation.
INSERT_LEGAL_AID = """
INSERT INTO legal_aid_requests (id, offer_id, volunteer_id, description, contact_phone)
SELECT $1, o.id, o.volunteer_id, $4, $5
FROM offers o JOIN incidents i ON i.id = o.incident_id
WHERE o.id = $2 AND o.volunteer_id = $3 AND o.state = 'accepted' AND NOT i.exercise
RETURNING id
"""

_LEGAL_AID = """
SELECT la.id, la.offer_id, o.incident_id, la.volunteer_id, la.status, la.description,
       la.contact_phone, la.note, la.created_at, la.updated_at, v.name, v.phone
FROM legal_aid_requests la
JOIN offers o ON o.id = la.offer_id
JOIN volunteers v ON v.id = la.volunteer_id
"""

GET_LEGAL_AID = _LEGAL_AID + "WHERE la.id = $1"

LIST_LEGAL_AID = (
    _LEGAL_AID
    + """
WHERE ($1::text IS NULL OR la.status = $1) AND ($2::text IS NULL OR la.id > $2)
ORDER BY la.id
LIMIT $3
"""
)

# $4: whether the note is being set (it may be set to null).
UPDATE_LEGAL_AID = """
UPDATE legal_aid_requests
SET status = coalesce($2, status),
    note = CASE WHEN $4 THEN $3 ELSE note END,
    updated_at = now()
WHERE id = $1
RETURNING id
"""


class MissionNotFound(DispatchError):
    """No such mission among this volunteer's (or at all)."""

    def __init__(self, mission_id: str) -> None:
        super().__init__(mission_id)
        self.mission_id = mission_id

    def to_api(self) -> ApiError:
        """404 not_found."""
        return not_found("mission", self.mission_id)


class LegalAidExists(DispatchError):
    """The mission already has a legal-aid request."""

    def to_api(self) -> ApiError:
        """409 legal_aid_exists."""
        return conflict(
            "legal_aid_exists",
            "this mission already has a legal-aid request; its status is in the mission",
        )


class LegalAidNotFound(DispatchError):
    """No such legal-aid request."""

    def __init__(self, legal_aid_id: str) -> None:
        super().__init__(legal_aid_id)
        self.legal_aid_id = legal_aid_id

    def to_api(self) -> ApiError:
        """404 not_found."""
        return not_found("legal-aid request", self.legal_aid_id)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def rule_name(rule: Sequence[str]) -> str:
    """A rule as written in RESCUE_REWARD_RULES."""
    return "+".join(rule)


def reward(rules: Sequence[Sequence[str]], reported: set[str]) -> dict[str, Any]:
    """Which reward rules the reported markers meet."""

    def met(marker: str) -> bool:
        return bool(IMPLIED_BY.get(marker, frozenset({marker})) & reported)

    names = [rule_name(r) for r in rules]
    satisfied = [rule_name(r) for r in rules if all(met(m) for m in r)]
    return {"eligible": bool(satisfied), "rules": names, "met": satisfied}


def build_mission(
    row: Mapping[str, Any],
    markers: Sequence[tuple[str, dt.datetime]],
    *,
    rules: Sequence[Sequence[str]],
    margin_s: int,
    now: dt.datetime,
) -> dict[str, Any]:
    """A mission as JSON, from its row and its volunteer's markers (in time order)."""
    ends = [(at, kind) for kind, at in markers if kind in ENDING_MARKERS]
    ended_at: dt.datetime | None
    if ends:
        ended_at, ended_by = min(ends)
    elif row["incident_status"] != "open":
        ended_at, ended_by = row["incident_ended_at"], f"incident_{row['incident_status']}"
    else:
        ended_at, ended_by = None, None
    until = ended_at + dt.timedelta(seconds=margin_s) if ended_at is not None else None
    legal_aid = None
    if row["legal_aid_id"] is not None:
        legal_aid = {
            "id": row["legal_aid_id"],
            "status": row["legal_aid_status"],
            "description": row["description"],
            "contact_phone": row["contact_phone"],
            "note": row["note"],
            "created_at": _iso(row["legal_aid_created_at"]),
            "updated_at": _iso(row["legal_aid_updated_at"]),
        }
    debrief = None
    if row["debrief_submitted_at"] is not None:
        debrief = {
            "submitted_at": _iso(row["debrief_submitted_at"]),
            "call_requested": row["call_requested"],
        }
    return {
        "id": row["id"],
        "incident_id": row["incident_id"],
        "volunteer_id": row["volunteer_id"],
        "role": row["role"],
        "accepted_at": _iso(row["accepted_at"]),
        "status": "ongoing" if ended_at is None else "ended",
        "ended_at": _iso(ended_at),
        "ended_by": ended_by,
        "incident": {
            "status": row["incident_status"],
            "alert_at": _iso(row["alert_at"]),
            "district": row["district"],
            "address": row["address"],
        },
        "markers": [{"marker": kind, "at": _iso(at)} for kind, at in markers],
        "insurance": {
            "from": _iso(row["accepted_at"]),
            "until": _iso(until),
            "margin_s": margin_s,
            "active": until is None or now < until,
        },
        "reward": reward(rules, {kind for kind, _ in markers}),
        "legal_aid": legal_aid,
        "debrief": debrief,
    }


async def list_missions(
    conn: asyncpg.Connection,
    *,
    rules: Sequence[Sequence[str]],
    margin_s: int,
    volunteer_id: str | None = None,
    mission_id: str | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    after: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Missions by id (a volunteer's, or everyone's for administrators)."""
    rows = await conn.fetch(MISSIONS, volunteer_id, mission_id, start, end, after, limit)
    if not rows:
        return []
    found = await conn.fetch(
        MISSION_MARKERS,
        list({r["incident_id"] for r in rows}),
        list(STATUS_MARKERS),
        list({r["volunteer_id"] for r in rows}),
    )
    markers: dict[tuple[str, str], list[tuple[str, dt.datetime]]] = {}
    for m in found:
        markers.setdefault((m["incident_id"], m["volunteer_id"]), []).append((m["type"], m["at"]))
    now = dt.datetime.now(dt.UTC)
    return [
        build_mission(
            r,
            markers.get((r["incident_id"], r["volunteer_id"]), []),
            rules=rules,
            margin_s=margin_s,
            now=now,
        )
        for r in rows
    ]


async def get_mission(
    conn: asyncpg.Connection,
    *,
    rules: Sequence[Sequence[str]],
    margin_s: int,
    volunteer_id: str | None,
    mission_id: str,
) -> dict[str, Any]:
    """One mission (the volunteer's own when volunteer_id is given)."""
    found = await list_missions(
        conn,
        rules=rules,
        margin_s=margin_s,
        volunteer_id=volunteer_id,
        mission_id=mission_id,
        limit=1,
    )
    if not found:
        raise MissionNotFound(mission_id)
    return found[0]


def render_legal_aid(row: Mapping[str, Any]) -> dict[str, Any]:
    """A legal-aid request as administrators list it (with whom to contact)."""
    return {
        "id": row["id"],
        "mission_id": row["offer_id"],
        "incident_id": row["incident_id"],
        "volunteer": {"id": row["volunteer_id"], "name": row["name"], "phone": row["phone"]},
        "status": row["status"],
        "description": row["description"],
        "contact_phone": row["contact_phone"],
        "note": row["note"],
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
    }


async def request_legal_aid(
    conn: asyncpg.Connection,
    *,
    volunteer_id: str,
    mission_id: str,
    description: str,
    contact_phone: str | None,
) -> asyncpg.Record:
    """The volunteer asks for legal aid on one of its missions (once per mission)."""
    try:
        legal_aid_id = await conn.fetchval(
            INSERT_LEGAL_AID, new_id("lga"), mission_id, volunteer_id, description, contact_phone
        )
    except asyncpg.UniqueViolationError:
        raise LegalAidExists() from None
    if legal_aid_id is None:
        raise MissionNotFound(mission_id)
    row = await conn.fetchrow(GET_LEGAL_AID, legal_aid_id)
    assert row is not None
    return row


async def list_legal_aid(
    conn: asyncpg.Connection, *, status: str | None, after: str | None, limit: int
) -> list[asyncpg.Record]:
    """Legal-aid requests by id (limit rows)."""
    return list(await conn.fetch(LIST_LEGAL_AID, status, after, limit))


async def update_legal_aid(
    conn: asyncpg.Connection,
    *,
    legal_aid_id: str,
    status: str | None,
    note: str | None,
    set_note: bool,
) -> asyncpg.Record:
    """An administrator moves a request along and notes what was done."""
    if await conn.fetchval(UPDATE_LEGAL_AID, legal_aid_id, status, note, set_note) is None:
        raise LegalAidNotFound(legal_aid_id)
    row = await conn.fetchrow(GET_LEGAL_AID, legal_aid_id)
    assert row is not None
    return row
