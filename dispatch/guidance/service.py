"""Guidance use cases: who a token is, the session's state, and what participants record."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import asyncpg
from redis.asyncio import Redis

from dispatch import offers
from dispatch.errors import OfferNotEngaged
from dispatch.events import IncidentRef, emit_all, entry_data
from dispatch.guidance import queries
from dispatch.guidance.errors import GuidanceError, SessionClosed
from dispatch.guidance.models import (
    CHAT,
    CHAT_ENTRY,
    CHAT_MAX_CHARS,
    GUIDANCE_MARKER,
    GUIDANCE_STEP,
    MARKER,
    MARKERS,
    RESPONDER_ONLY,
    STEP,
    STEP_ENTRY,
    GuidanceConfig,
    Participant,
    ParticipantRole,
)
from dispatch.guidance.render import SESSION_ENTRY_TYPES, Directory, iso, render_session
from dispatch.models import STATUS_MARKERS, DispatchConfig
from rescue.auth import hash_token

logger = logging.getLogger(__name__)


async def authenticate(conn: asyncpg.Connection, token: str) -> Participant | None:
    """The participant a guidance token belongs to, or None."""
    row = await conn.fetchrow(queries.PARTICIPANT_BY_TOKEN, hash_token(token))
    if row is None:
        return None
    return Participant(
        id=row["participant_id"],
        session_id=row["session_id"],
        incident_id=row["incident_id"],
        role=ParticipantRole(row["role"]),
        volunteer_id=row["volunteer_id"],
    )


async def load_session(
    conn: asyncpg.Connection, *, me: Participant, config: GuidanceConfig
) -> dict[str, Any]:
    """The session as its participant sees it: participants, step, protocol, timeline.

    Read in one repeatable-read snapshot, so the participants and the timeline agree.
    """
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        session = await conn.fetchrow(queries.SESSION, me.session_id)
        if session is None:  # pragma: no cover - sessions are never deleted
            raise RuntimeError(f"session {me.session_id} of a valid token does not exist")
        participants = await conn.fetch(queries.PARTICIPANTS, me.session_id)
        entries = await conn.fetch(
            queries.SESSION_TIMELINE, session["incident_id"], SESSION_ENTRY_TYPES
        )
    directory = Directory(participants, center_id=session["center_id"])
    return render_session(session, directory, entries, me=me, config=config)


async def participant_ids(conn: asyncpg.Connection, session_id: str) -> set[str]:
    """The ids of a session's participants (the addressees signalling may name)."""
    return {r["participant_id"] for r in await conn.fetch(queries.PARTICIPANT_IDS, session_id)}


async def _record(
    pool: asyncpg.Pool,
    me: Participant,
    *,
    entry: str,
    data: dict[str, Any],
    event: str | None,
    step: str | None = None,
) -> tuple[int, dt.datetime]:
    """A timeline entry by a participant (and its event), only while the incident is open."""
    at = dt.datetime.now(dt.UTC)
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(queries.LOCK_OPEN_INCIDENT, me.incident_id)
        if row is None:
            raise SessionClosed()
        ref = IncidentRef.of(row)
        if step is not None:
            await conn.execute(queries.SET_STEP, me.session_id, step, at)
        entry_id: int = await conn.fetchval(
            queries.INSERT_ENTRY, ref.id, at, entry, me.id, entry_data(ref, data)
        )
        if event is not None:
            await emit_all(conn, ref, [(event, data)], at=at)
    return entry_id, at


def _context(me: Participant) -> dict[str, Any]:
    return {
        "session_id": me.session_id,
        "participant_id": me.id,
        "role": me.role.value,
        "volunteer_id": me.volunteer_id,
    }


async def record_marker(
    *,
    pool: asyncpg.Pool,
    redis: Redis,
    dispatch: DispatchConfig,
    me: Participant,
    marker: Any,
) -> dict[str, Any] | None:
    """Record a marker; the live message to publish, or None when the bus broadcasts it.

    A responder's marker of the offer vocabulary while it is engaged is its offer's status,
    exactly as from the phone (handed_over and withdrawn end the engagement); the "guidance"
    bus group broadcasts it like a phone's.
    """
    if not isinstance(marker, str) or marker not in MARKERS:
        raise GuidanceError("invalid_marker", f"marker must be one of {', '.join(MARKERS)}")
    if me.role is ParticipantRole.DISPATCHER and marker in RESPONDER_ONLY:
        raise GuidanceError(
            "marker_not_allowed", f"only a responder reports {marker!r}, about itself"
        )
    if me.role is ParticipantRole.RESPONDER and marker in STATUS_MARKERS:
        assert me.volunteer_id is not None
        async with pool.acquire() as conn:
            offer = await conn.fetchrow(queries.ACCEPTED_OFFER, me.incident_id, me.volunteer_id)
        if offer is not None and offer["engaged"]:
            try:
                await offers.report_status(
                    pool=pool,
                    redis=redis,
                    config=dispatch,
                    volunteer_id=me.volunteer_id,
                    offer_id=offer["id"],
                    status=marker,
                )
                return None
            except OfferNotEngaged:
                pass  # it ended meanwhile: recorded as a guidance marker (or refused) below
    if me.role is ParticipantRole.RESPONDER and marker in RESPONDER_ONLY:
        raise GuidanceError(
            "not_engaged", f"{marker!r} ends an engagement, and yours has already ended"
        )
    entry_id, at = await _record(
        pool, me, entry=marker, data={**_context(me), "marker": marker}, event=GUIDANCE_MARKER
    )
    return {"type": MARKER, "id": entry_id, "at": iso(at), "from": me.ref, "marker": marker}


async def record_chat(*, pool: asyncpg.Pool, me: Participant, text: Any) -> dict[str, Any]:
    """Record a chat message; the live message to publish."""
    if not isinstance(text, str) or not text.strip():
        raise GuidanceError("invalid_message", "text: a non-empty string is required")
    text = text.strip()
    if len(text) > CHAT_MAX_CHARS:
        raise GuidanceError("invalid_message", f"text: at most {CHAT_MAX_CHARS} characters")
    entry_id, at = await _record(
        pool, me, entry=CHAT_ENTRY, data={**_context(me), "text": text}, event=None
    )
    return {"type": CHAT, "id": entry_id, "at": iso(at), "from": me.ref, "text": text}


async def record_step(
    *, pool: asyncpg.Pool, me: Participant, step: Any, config: GuidanceConfig
) -> dict[str, Any]:
    """The dispatcher moves the protocol to a step; the live message to publish."""
    if me.role is not ParticipantRole.DISPATCHER:
        raise GuidanceError("forbidden", "only the dispatcher advances the protocol")
    if not isinstance(step, str) or step not in config.step_ids:
        steps = ", ".join(s["id"] for s in config.protocol["steps"])
        raise GuidanceError("unknown_step", f"step must be one of {steps}")
    data = {"session_id": me.session_id, "participant_id": me.id, "step": step}
    entry_id, at = await _record(
        pool, me, entry=STEP_ENTRY, data=data, event=GUIDANCE_STEP, step=step
    )
    return {"type": STEP, "id": entry_id, "at": iso(at), "from": me.ref, "step": step}
