"""HTTP routes of missions, legal aid and aftercare (volunteers' own; administrators' all)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from dispatch import aftercare, missions
from dispatch.reports import csv_rows, parse_bool, parse_format, parse_period, start_csv
from dispatch.routes import domain_errors
from rescue.auth import Role, principal_of, requires
from rescue.http import decode_cursor, json_response, page, page_limit, read_json_object
from rescue.settings import Settings
from rescue.typedefs import db_key, settings_key
from rescue.validation import Fields

routes = web.RouteTableDef()

CSV_BATCH = 500
MISSION_CSV_COLUMNS = (
    "id",
    "incident_id",
    "volunteer_id",
    "role",
    "accepted_at",
    "status",
    "ended_at",
    "ended_by",
    "insurance_from",
    "insurance_until",
    "reward_eligible",
    "reward_rules_met",
    "markers",
    "legal_aid_status",
    "debrief_submitted_at",
    "call_requested",
)


def _rules(settings: Settings) -> dict[str, Any]:
    return {"rules": settings.reward_rules, "margin_s": settings.insurance_margin_s}


async def _mission(request: web.Request, *, volunteer_id: str | None) -> dict[str, Any]:
    async with request.app[db_key].acquire() as conn:
        return await missions.get_mission(
            conn,
            **_rules(request.app[settings_key]),
            volunteer_id=volunteer_id,
            mission_id=request.match_info["mission_id"],
        )


@routes.get("/v1/me/missions")
@requires(Role.VOLUNTEER)
async def my_missions(request: web.Request) -> web.Response:
    """The volunteer's own missions (real incidents it accepted), oldest first."""
    limit = page_limit(request)
    after = decode_cursor(request)
    async with request.app[db_key].acquire() as conn:
        items = await missions.list_missions(
            conn,
            **_rules(request.app[settings_key]),
            volunteer_id=principal_of(request).id,
            after=after,
            limit=limit + 1,
        )
    return json_response(page(items, [m["id"] for m in items], limit))


@routes.get("/v1/me/missions/{mission_id}")
@requires(Role.VOLUNTEER)
@domain_errors
async def my_mission(request: web.Request) -> web.Response:
    """One of the volunteer's missions; another's is a 404."""
    return json_response(await _mission(request, volunteer_id=principal_of(request).id))


@routes.post("/v1/me/missions/{mission_id}/legal-aid")
@requires(Role.VOLUNTEER)
@domain_errors
async def ask_legal_aid(request: web.Request) -> web.Response:
    """The volunteer asks for legal aid on its mission: 201; 409 if already asked."""
    fields = Fields(await read_json_object(request))
    fields.unknown(["description", "contact_phone"])
    description = fields.str("description", required=True, max_len=5000)
    contact_phone = fields.str("contact_phone", max_len=50)
    fields.check()
    assert description is not None
    async with request.app[db_key].acquire() as conn:
        row = await missions.request_legal_aid(
            conn,
            volunteer_id=principal_of(request).id,
            mission_id=request.match_info["mission_id"],
            description=description,
            contact_phone=contact_phone,
        )
    return json_response(missions.render_legal_aid(row), status=201)


@routes.get("/v1/me/missions/{mission_id}/debrief")
@requires(Role.VOLUNTEER)
@domain_errors
async def my_debrief(request: web.Request) -> web.Response:
    """The mission's debrief: the questions, and the answers if given."""
    mission = await _mission(request, volunteer_id=principal_of(request).id)
    async with request.app[db_key].acquire() as conn:
        return json_response(await aftercare.get_debrief(conn, mission))


@routes.post("/v1/me/missions/{mission_id}/debrief")
@requires(Role.VOLUNTEER)
@domain_errors
async def answer_debrief(request: web.Request) -> web.Response:
    """Answer the debrief (again, if wished): 201 the first time, then 200."""
    fields = Fields(await read_json_object(request))
    fields.unknown(["answers", "call_requested", "callback_phone"])
    raw = fields.object("answers")
    answers = aftercare.parse_answers(fields, raw) if raw is not None else {}
    call_requested = fields.bool("call_requested")
    callback_phone = fields.str("callback_phone", max_len=50)
    fields.check()
    mission = await _mission(request, volunteer_id=principal_of(request).id)
    async with request.app[db_key].acquire() as conn:
        created, debrief = await aftercare.submit_debrief(
            conn,
            mission,
            answers=answers,
            call_requested=bool(call_requested),
            callback_phone=callback_phone,
        )
    return json_response(debrief, status=201 if created else 200)


def _optional_period(request: web.Request) -> tuple[dt.datetime | None, dt.datetime | None]:
    if "from" not in request.query and "to" not in request.query:
        return None, None
    return parse_period(request)


def _flat_mission(m: dict[str, Any]) -> dict[str, Any]:
    return {
        **{k: m[k] for k in ("id", "incident_id", "volunteer_id", "role", "accepted_at")},
        "status": m["status"],
        "ended_at": m["ended_at"],
        "ended_by": m["ended_by"],
        "insurance_from": m["insurance"]["from"],
        "insurance_until": m["insurance"]["until"],
        "reward_eligible": m["reward"]["eligible"],
        "reward_rules_met": " ".join(m["reward"]["met"]),
        "markers": " ".join(x["marker"] for x in m["markers"]),
        "legal_aid_status": m["legal_aid"]["status"] if m["legal_aid"] else None,
        "debrief_submitted_at": m["debrief"]["submitted_at"] if m["debrief"] else None,
        "call_requested": m["debrief"]["call_requested"] if m["debrief"] else None,
    }


@routes.get("/v1/missions")
@requires(Role.ADMIN)
async def all_missions(request: web.Request) -> web.StreamResponse:
    """Every mission (filter by volunteer_id, accepted from/to), as JSON or CSV."""
    fmt = parse_format(request)
    start, end = _optional_period(request)
    volunteer_id = request.query.get("volunteer_id") or None
    rules = _rules(request.app[settings_key])
    pool = request.app[db_key]
    query: dict[str, Any] = {**rules, "volunteer_id": volunteer_id, "start": start, "end": end}
    if fmt == "csv":
        response = await start_csv(request, "missions", MISSION_CSV_COLUMNS)
        after: str | None = None
        while True:
            async with pool.acquire() as conn:
                batch = await missions.list_missions(conn, **query, after=after, limit=CSV_BATCH)
            if not batch:
                break
            await response.write(csv_rows(map(_flat_mission, batch), MISSION_CSV_COLUMNS))
            after = batch[-1]["id"]
        await response.write_eof()
        return response
    limit = page_limit(request)
    cursor = decode_cursor(request)
    async with pool.acquire() as conn:
        items = await missions.list_missions(conn, **query, after=cursor, limit=limit + 1)
    return json_response(page(items, [m["id"] for m in items], limit))


@routes.get("/v1/legal-aid")
@requires(Role.ADMIN)
async def legal_aid_requests(request: web.Request) -> web.Response:
    """Volunteers' legal-aid requests (filter by status), oldest first."""
    status = request.query.get("status") or None
    fields = Fields({"status": status})
    fields.enum("status", missions.LEGAL_AID_STATUSES)
    fields.check()
    limit = page_limit(request)
    after = decode_cursor(request)
    async with request.app[db_key].acquire() as conn:
        rows = await missions.list_legal_aid(conn, status=status, after=after, limit=limit + 1)
    items = [missions.render_legal_aid(r) for r in rows]
    return json_response(page(items, [r["id"] for r in rows], limit))


@routes.patch("/v1/legal-aid/{legal_aid_id}")
@requires(Role.ADMIN)
@domain_errors
async def update_legal_aid(request: web.Request) -> web.Response:
    """Move a legal-aid request along (`status`) and note what was done (`note`)."""
    body = await read_json_object(request)
    fields = Fields(body)
    fields.unknown(["status", "note"])
    status = fields.enum("status", missions.LEGAL_AID_STATUSES)
    note = fields.str("note", max_len=5000)
    if not body:
        fields.fail("status", "give status, note or both")
    fields.check()
    async with request.app[db_key].acquire() as conn:
        row = await missions.update_legal_aid(
            conn,
            legal_aid_id=request.match_info["legal_aid_id"],
            status=status,
            note=note,
            set_note="note" in body,
        )
    return json_response(missions.render_legal_aid(row))


@routes.get("/v1/debriefs")
@requires(Role.ADMIN)
async def debriefs(request: web.Request) -> web.Response:
    """Volunteers' debriefs; `?call_requested=true`: who asked to be called."""
    call_requested = parse_bool(request, "call_requested")
    limit = page_limit(request)
    after = decode_cursor(request)
    async with request.app[db_key].acquire() as conn:
        rows = await aftercare.list_debriefs(
            conn, call_requested=call_requested, after=after, limit=limit + 1
        )
    items = [aftercare.render_listed_debrief(r) for r in rows]
    return json_response(page(items, [r["id"] for r in rows], limit))
