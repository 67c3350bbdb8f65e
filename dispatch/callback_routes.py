"""HTTP routes of the callbacks: an incident's deliveries, with every attempt."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
from aiohttp import web

from rescue.auth import Role, principal_of, requires
from rescue.errors import not_found
from rescue.http import decode_cursor, json_response, page, page_limit
from rescue.typedefs import db_key

# An incident of another dispatch center is not found, as for GET /v1/incidents/{incident_id}.
INCIDENT_VISIBLE = "SELECT 1 FROM incidents WHERE id = $1 AND ($2::text IS NULL OR center_id = $2)"

# A page of an incident's deliveries with their progress (the view webhook_delivery_states,
# migration 014: a delivery's own row is written once; its state comes from its pending row
# and its attempts).
LIST_DELIVERIES = """
SELECT d.* FROM webhook_delivery_states d
WHERE d.incident_id = $1
  AND ($2::text IS NULL OR (d.event_at, d.stage, d.seq) > (
      SELECT c.event_at, c.stage, c.seq FROM webhook_deliveries c
      WHERE c.id = $2 AND c.incident_id = $1))
ORDER BY d.event_at, d.stage, d.seq
LIMIT $3
"""

LIST_ATTEMPTS = """
SELECT * FROM webhook_attempts WHERE delivery_id = ANY($1::text[]) ORDER BY delivery_id, attempt
"""


routes = web.RouteTableDef()


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _render(row: asyncpg.Record, attempts: list[asyncpg.Record]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "event_id": row["event_id"],
        "type": row["event_type"],
        "event_at": _iso(row["event_at"]),
        "url": row["url"],
        "state": row["state"],
        "attempts": row["attempts"],
        "next_attempt_at": _iso(row["next_attempt_at"]),  # the view's: pending ones only
        "last_status_code": row["last_status_code"],
        "last_error": row["last_error"],
        "delivered_at": _iso(row["delivered_at"]),
        "created_at": _iso(row["created_at"]),
        "payload": row["payload"],
        "attempt_log": [
            {
                "attempt": a["attempt"],
                "at": _iso(a["at"]),
                "status_code": a["status_code"],
                "error": a["error"],
                "duration_ms": a["duration_ms"],
            }
            for a in attempts
        ],
    }


@routes.get("/v1/incidents/{incident_id}/callbacks")
@requires(Role.ADMIN, Role.DISPATCH)
async def list_callbacks(request: web.Request) -> web.Response:
    """The callbacks of an incident, in delivery order, with every attempt."""
    incident_id = request.match_info["incident_id"]
    limit = page_limit(request)
    after = decode_cursor(request)
    principal = principal_of(request)
    center_id = principal.id if principal.role is Role.DISPATCH else None
    async with request.app[db_key].acquire() as conn:
        if await conn.fetchval(INCIDENT_VISIBLE, incident_id, center_id) is None:
            raise not_found("incident", incident_id)
        rows = await conn.fetch(LIST_DELIVERIES, incident_id, after, limit + 1)
        attempts = await conn.fetch(LIST_ATTEMPTS, [r["id"] for r in rows[:limit]])
    by_delivery: dict[str, list[asyncpg.Record]] = {}
    for a in attempts:
        by_delivery.setdefault(a["delivery_id"], []).append(a)
    items = [_render(r, by_delivery.get(r["id"], [])) for r in rows]
    return json_response(page(items, [r["id"] for r in rows], limit))
