"""Aftercare: a short debrief offered to the volunteer after each mission, and "please call me".

Every question is optional; the volunteer may answer again later (the latest answers are
kept) and ask to be called at any time. Administrators list who asked to be called (GET
/v1/debriefs?call_requested=true) with the phone to call.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import asyncpg

from dispatch.errors import DispatchError
from rescue.errors import ApiError, conflict
from rescue.ids import new_id
from rescue.validation import Fields

QUESTIONS: list[dict[str, Any]] = [
    {
        "id": "wellbeing",
        "type": "scale",
        "min": 1,
        "max": 5,
        "text_zh": "你现在感觉怎么样？（1 很差，5 很好）",
        "text_en": "How are you feeling now? (1 very bad, 5 very good)",
    },
    {
        "id": "intrusive_thoughts",
        "type": "boolean",
        "text_zh": "救援的画面或想法是否反复出现、让你困扰？",
        "text_en": "Do images or thoughts of the rescue keep coming back and trouble you?",
    },
    {
        "id": "sleep_affected",
        "type": "boolean",
        "text_zh": "你的睡眠受到影响了吗？",
        "text_en": "Has your sleep been affected?",
    },
    {
        "id": "injury_or_exposure",
        "type": "boolean",
        "text_zh": "你是否受伤，或接触了血液、体液？",
        "text_en": "Were you injured, or exposed to blood or body fluids?",
    },
    {
        "id": "felt_supported",
        "type": "boolean",
        "text_zh": "现场和远程指导给了你足够的支持吗？",
        "text_en": "Did the guidance and the people on scene support you enough?",
    },
    {
        "id": "comment",
        "type": "text",
        "max_length": 2000,
        "text_zh": "还有什么想告诉我们的吗？",
        "text_en": "Anything else you would like to tell us?",
    },
]
CALL_REQUEST = {
    "text_zh": "请给我打电话（心理支持或任何需要）",
    "text_en": "Please call me (peer support, or anything else)",
}

UPSERT_DEBRIEF = """
INSERT INTO debriefs (id, offer_id, volunteer_id, answers, call_requested, callback_phone)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (offer_id) DO UPDATE
SET answers = EXCLUDED.answers, call_requested = EXCLUDED.call_requested,
    callback_phone = EXCLUDED.callback_phone, updated_at = now()
RETURNING (xmax = 0) AS created
"""

GET_DEBRIEF = """
SELECT answers, call_requested, callback_phone, submitted_at, updated_at
FROM debriefs WHERE offer_id = $1
"""

LIST_DEBRIEFS = """
SELECT d.id, d.offer_id, o.incident_id, d.volunteer_id, v.name, v.phone, d.answers,
       d.call_requested, d.callback_phone, d.submitted_at, d.updated_at
FROM debriefs d
JOIN offers o ON o.id = d.offer_id
JOIN volunteers v ON v.id = d.volunteer_id
WHERE ($1::boolean IS NULL OR d.call_requested = $1) AND ($2::text IS NULL OR d.id > $2)
ORDER BY d.id
LIMIT $3
"""


class MissionOngoing(DispatchError):
    """The debrief comes after the mission."""

    def to_api(self) -> ApiError:
        """409 mission_ongoing."""
        return conflict(
            "mission_ongoing",
            "the debrief opens when the mission ends (hand-over, withdrawal or the incident's end)",
        )


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def parse_answers(fields: Fields, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The answers, each checked against its question (problems recorded in `fields`)."""
    sub = Fields(raw, prefix="answers.")
    sub.unknown(q["id"] for q in QUESTIONS)
    answers: dict[str, Any] = {}
    for q in QUESTIONS:
        value: Any
        if q["type"] == "scale":
            value = sub.int(q["id"], lo=q["min"], hi=q["max"])
        elif q["type"] == "boolean":
            value = sub.bool(q["id"])
        else:
            value = sub.str(q["id"], max_len=q["max_length"])
        if value is not None:
            answers[q["id"]] = value
    fields.problems.extend(sub.problems)
    return answers


def render_debrief(mission: Mapping[str, Any], row: Mapping[str, Any] | None) -> dict[str, Any]:
    """The debrief of a mission as its volunteer sees it: the questions and its answers."""
    return {
        "mission_id": mission["id"],
        "available": mission["status"] == "ended",
        "questions": QUESTIONS,
        "call_request": CALL_REQUEST,
        "answers": row["answers"] if row is not None else None,
        "call_requested": bool(row["call_requested"]) if row is not None else False,
        "callback_phone": row["callback_phone"] if row is not None else None,
        "submitted_at": _iso(row["submitted_at"]) if row is not None else None,
        "updated_at": _iso(row["updated_at"]) if row is not None else None,
    }


async def get_debrief(conn: asyncpg.Connection, mission: Mapping[str, Any]) -> dict[str, Any]:
    """A mission's debrief (answered or not)."""
    return render_debrief(mission, await conn.fetchrow(GET_DEBRIEF, mission["id"]))


async def submit_debrief(
    conn: asyncpg.Connection,
    mission: Mapping[str, Any],
    *,
    answers: dict[str, Any],
    call_requested: bool,
    callback_phone: str | None,
) -> tuple[bool, dict[str, Any]]:
    """Save the volunteer's answers (after the mission); (created, the debrief)."""
    if mission["status"] != "ended":
        raise MissionOngoing()
    created = await conn.fetchval(
        UPSERT_DEBRIEF,
        new_id("dbf"),
        mission["id"],
        mission["volunteer_id"],
        answers,
        call_requested,
        callback_phone,
    )
    return bool(created), await get_debrief(conn, mission)


async def list_debriefs(
    conn: asyncpg.Connection, *, call_requested: bool | None, after: str | None, limit: int
) -> list[asyncpg.Record]:
    """Debriefs by id (limit rows)."""
    return list(await conn.fetch(LIST_DEBRIEFS, call_requested, after, limit))


def render_listed_debrief(row: Mapping[str, Any]) -> dict[str, Any]:
    """A debrief as administrators list it: who, how to call, what they answered."""
    return {
        "id": row["id"],
        "mission_id": row["offer_id"],
        "incident_id": row["incident_id"],
        "volunteer": {"id": row["volunteer_id"], "name": row["name"], "phone": row["phone"]},
        "call_requested": row["call_requested"],
        "callback_phone": row["callback_phone"],
        "answers": row["answers"],
        "submitted_at": _iso(row["submitted_at"]),
        "updated_at": _iso(row["updated_at"]),
    }
