"""The guidance domain's types: participants, the vocabulary, the per-worker config.

Session messages (API.md "Remote guidance"), server to client: `state` first, then `marker`,
`chat`, `step`, `participant`, `signal`, `closed` and `error`. Every message but `state` and
`error` has `at` (server time) and `from` (`{"id", "role"}`: a participant, or
`{"id": "system", "role": "system"}`). Messages that are recorded (all but `signal` and
`error`) carry `id`, their timeline entry's id: the `timeline` of `state` holds the same
messages, so a client that reconnects applies the state and ignores a live message whose id it
has already seen.

Recorded in the incident's timeline (append-only) and on the bus:
- a marker: the timeline entry is named after the marker (as from the phone); a responder's
  marker of the offer vocabulary, while it is engaged, is its offer's status (event
  `responder.status`, exactly as POST /v1/me/offers/{id}/status); any other marker (the
  dispatcher's, `ems_arrived`, a responder's after it handed over) is event `guidance.marker`
  with data `session_id, participant_id, role, volunteer_id, marker`;
- a step: timeline `guidance_step` and event `guidance.step` (`session_id, participant_id,
  step`);
- chat: timeline `guidance_chat` only (conversation, not a state change of the incident: 120's
  dispatcher is in the session). Signalling (WebRTC offer/answer/ICE) is relayed, never stored.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from dispatch.models import ENDING_MARKERS, STATUS_MARKERS

# The markers of a session: the responders' vocabulary plus the dispatcher's ems_arrived.
EMS_ARRIVED = "ems_arrived"
MARKERS = (*STATUS_MARKERS, EMS_ARRIVED)
# Markers only a responder can report about itself.
RESPONDER_ONLY = ENDING_MARKERS

GUIDANCE_MARKER = "guidance.marker"
GUIDANCE_STEP = "guidance.step"
STEP_ENTRY = "guidance_step"
CHAT_ENTRY = "guidance_chat"

# Server-to-client message types (fixed by the contract).
STATE = "state"
MARKER = "marker"
CHAT = "chat"
STEP = "step"
PARTICIPANT = "participant"
SIGNAL = "signal"
CLOSED = "closed"
ERROR = "error"

CHAT_MAX_CHARS = 2000
SIGNAL_MAX_BYTES = 65_536

SYSTEM_REF = {"id": "system", "role": "system"}


class ParticipantRole(enum.StrEnum):
    """Who a participant is in the session."""

    DISPATCHER = "dispatcher"
    RESPONDER = "responder"


@dataclass(frozen=True, slots=True)
class Participant:
    """An authenticated participant: who holds the token, in which session and incident."""

    id: str
    session_id: str
    incident_id: str
    role: ParticipantRole
    volunteer_id: str | None

    @property
    def ref(self) -> dict[str, str]:
        """How messages name this participant in `from`."""
        return {"id": self.id, "role": self.role.value}


@dataclass(frozen=True, slots=True)
class GuidanceConfig:
    """What the guidance sessions compute once per worker."""

    protocol: dict[str, Any]
    step_ids: frozenset[str]
    first_step: str
    # Per socket: recorded messages (marker, chat, step) allowed in a burst, and per second.
    burst: int = 20
    per_s: float = 2.0
    # Per socket: signalling messages (ICE candidates come in bursts).
    signal_burst: int = 200
    signal_per_s: float = 50.0
