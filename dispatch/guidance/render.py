"""Session messages from stored rows: the state, and each timeline entry as its live message.

A timeline entry and the live message sent when it was recorded are rendered by the same
function, so a client that reconnects sees in `state.timeline` exactly the messages it missed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from dispatch.guidance.models import (
    CHAT,
    CHAT_ENTRY,
    CLOSED,
    MARKER,
    MARKERS,
    PARTICIPANT,
    STATE,
    STEP,
    STEP_ENTRY,
    SYSTEM_REF,
    GuidanceConfig,
    Participant,
    ParticipantRole,
)

JOINED_ENTRY = "offer_accepted"
END_ENTRIES = ("cancelled", "closed")
# The timeline entries a session shows.
SESSION_ENTRY_TYPES = [*MARKERS, CHAT_ENTRY, STEP_ENTRY, JOINED_ENTRY, *END_ENTRIES]


def iso(at: dt.datetime | None) -> str | None:
    """RFC 3339, or None."""
    return at.isoformat() if at is not None else None


def render_participant(row: Mapping[str, Any]) -> dict[str, Any]:
    """A participant as the session lists it."""
    responder = row["role"] == ParticipantRole.RESPONDER
    return {
        "id": row["participant_id"],
        "role": row["role"],
        "volunteer_id": row["volunteer_id"],
        "responder_role": row["responder_role"] if responder else None,
        "joined_at": iso(row["joined_at"]),
        # A responder's last marker on its offer, and whether it is still engaged.
        "status": row["last_status"] if responder else None,
        "engaged": bool(row["engaged"]) if responder else True,
    }


class Directory:
    """Who the actors of a session's timeline are, as participants."""

    def __init__(self, participants: Sequence[Mapping[str, Any]], *, center_id: str) -> None:
        self.participants = [render_participant(p) for p in participants]
        self.by_id = {p["id"]: p for p in self.participants}
        self.by_volunteer = {p["volunteer_id"]: p for p in self.participants if p["volunteer_id"]}
        self._refs: dict[str, dict[str, str]] = {}
        for p in self.participants:
            ref = {"id": p["id"], "role": p["role"]}
            self._refs[p["id"]] = ref
            if p["volunteer_id"]:
                self._refs[p["volunteer_id"]] = ref
            elif p["role"] == ParticipantRole.DISPATCHER:
                # The dispatch center acts (cancel, close) through its dispatcher.
                self._refs[center_id] = ref

    def ref(self, actor: str) -> dict[str, str]:
        """`from` of an entry by this actor (a participant, volunteer, center, or the system)."""
        return self._refs.get(actor, SYSTEM_REF)


def entry_message(entry: Mapping[str, Any], directory: Directory) -> dict[str, Any] | None:
    """The session message of a timeline entry, or None if the session does not show it."""
    kind = entry["type"]
    data = entry["data"] or {}
    base: dict[str, Any] = {"id": entry["id"], "at": iso(entry["at"])}
    origin = directory.ref(entry["actor"])
    if kind in MARKERS:
        return {"type": MARKER, **base, "from": origin, "marker": kind}
    if kind == CHAT_ENTRY:
        return {"type": CHAT, **base, "from": origin, "text": data.get("text", "")}
    if kind == STEP_ENTRY:
        return {"type": STEP, **base, "from": origin, "step": data.get("step")}
    if kind == JOINED_ENTRY:
        joined = directory.by_volunteer.get(data.get("volunteer_id"))
        if joined is None:
            return None
        return {
            "type": PARTICIPANT,
            **base,
            "from": origin,
            "event": "joined",
            "participant": joined,
        }
    if kind in END_ENTRIES:
        return {
            "type": CLOSED,
            **base,
            "from": origin,
            "status": kind,
            "reason": data.get("reason") if kind == "cancelled" else None,
        }
    return None


def render_session(
    session: Mapping[str, Any],
    directory: Directory,
    entries: Sequence[Mapping[str, Any]],
    *,
    me: Participant,
    config: GuidanceConfig,
) -> dict[str, Any]:
    """The session as GET /v1/guidance/{id} answers it (and `state`, with its type)."""
    timeline = [m for m in (entry_message(e, directory) for e in entries) if m is not None]
    closed = session["closed_at"] is not None or session["status"] != "open"
    return {
        "session_id": session["id"],
        "incident_id": session["incident_id"],
        "exercise": session["exercise"],
        "status": "closed" if closed else "open",
        "created_at": iso(session["created_at"]),
        "closed_at": iso(session["closed_at"]),
        "me": directory.by_id.get(me.id, {"id": me.id, "role": me.role.value}),
        "participants": directory.participants,
        "step": session["step"] or config.first_step,
        "step_at": iso(session["step_at"]),
        "protocol": config.protocol,
        "timeline": timeline,
    }


def state_message(session: dict[str, Any]) -> dict[str, Any]:
    """The first message on a socket."""
    return {"type": STATE, **session}


def closing_message(session: dict[str, Any]) -> dict[str, Any]:
    """The `closed` message of an ended session (its last timeline message, else a new one)."""
    for message in reversed(session["timeline"]):
        if message["type"] == CLOSED:
            return dict(message)
    return {
        "type": CLOSED,
        "at": session["closed_at"] or iso(dt.datetime.now(dt.UTC)),
        "from": SYSTEM_REF,
        "status": "closed",
        "reason": None,
    }
