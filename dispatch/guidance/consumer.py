"""The bus group "guidance": what happens outside a session, said in it.

- offer.accepted -> `participant` (event "joined"): a responder joined;
- responder.status -> `marker`: a responder's marker, from its phone or from the session;
- incident.cancelled / incident.closed -> `closed`, to everyone; then the sockets close.

Each message is rendered from the event's own timeline entry (written in the same transaction,
at the same instant), exactly as the session's state shows it, so its `id` lets a client that
reconnected ignore what its state already had. Subscribed transactionally: a publish that fails
raises and the bus delivers the event again (a socket ignores an id it has already had).
"""

from __future__ import annotations

import datetime as dt
import logging

from dispatch.guidance import queries
from dispatch.guidance.hub import publish
from dispatch.guidance.render import Directory, entry_message
from dispatch.models import (
    INCIDENT_CANCELLED,
    INCIDENT_CLOSED,
    OFFER_ACCEPTED,
    RESPONDER_STATUS,
    TIMELINE_TYPES,
)
from rescue.bus import Event, HandlerContext

logger = logging.getLogger(__name__)

GROUP = "guidance"
TYPES = frozenset({OFFER_ACCEPTED, RESPONDER_STATUS, INCIDENT_CANCELLED, INCIDENT_CLOSED})
_BY_VOLUNTEER = frozenset({OFFER_ACCEPTED, RESPONDER_STATUS})


def _entry_type(event: Event) -> str:
    if event.type == RESPONDER_STATUS:
        return str(event.data["status"])
    return TIMELINE_TYPES[event.type]


async def handle(event: Event, ctx: HandlerContext) -> None:
    """Publish the session message of an incident event (if the incident has a session)."""
    conn = ctx.conn
    incident_id = event.data.get("incident_id")
    session = await conn.fetchrow(queries.SESSION_OF_INCIDENT, incident_id)
    if session is None:
        return
    # The entry's actor: the volunteer for its own acts; the center or an admin ends it.
    actor = event.data.get("volunteer_id") if event.type in _BY_VOLUNTEER else None
    at = event.at.astimezone(dt.UTC)
    entry = await conn.fetchrow(queries.ENTRY_OF_EVENT, incident_id, _entry_type(event), at, actor)
    if entry is None:
        logger.warning("event %s (%s) has no timeline entry", event.id, event.type)
        return
    participants = await conn.fetch(queries.PARTICIPANTS, session["id"])
    message = entry_message(entry, Directory(participants, center_id=session["center_id"]))
    if message is not None:
        await publish(ctx.redis, session["id"], message)
