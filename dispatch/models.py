"""The dispatch domain's types: roles, states, the planner's input and output, the config.

Events and their timeline entries. Every event's data has incident_id, external_id, center_id
and exercise. Every event has its timeline entry (at the same moment, in the same transaction):

- incident.created (time_budget_s, responders, aeds, degraded): timeline alert_received and
  plan_made;
- offer.created (offer_id, volunteer_id, role, wave, eta_s, aed_id, distance_m, expires_at):
  one offers_sent entry per wave listing the offers;
- offer.accepted (offer_id, volunteer_id, role, aed_id): offer_accepted;
- offer.declined / offer.expired / offer.cancelled (offer_id, volunteer_id, role; a cancel
  because the volunteer accepted another offer adds reason "engaged_elsewhere"):
  offer_declined / offer_expired / offer_cancelled;
- responder.status (offer_id, volunteer_id, status): the marker itself, e.g. cpr_started;
- incident.escalated (wave, budget_s, offers: how many were sent): escalated;
- incident.cancelled (reason): cancelled;
- incident.closed (outcome): closed.

Status markers are timeline entries named after the marker so that the same vocabulary reads
the same whether it came from the phone or from the guidance session.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Protocol

from geo import IndexedAed, TravelMode, TravelModel


class Role(enum.StrEnum):
    """What an offered volunteer is asked to do."""

    AED = "aed"
    CPR = "cpr"


class OfferState(enum.StrEnum):
    """An offer's life: open until answered, expired or cancelled."""

    OPEN = "open"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class IncidentStatus(enum.StrEnum):
    """An incident is open until 120 cancels or closes it."""

    OPEN = "open"
    CANCELLED = "cancelled"
    CLOSED = "closed"


CATEGORIES = ("cardiac_arrest", "unconscious", "other")

# The responder markers of the contract; the last two end the volunteer's engagement.
STATUS_MARKERS = (
    "aed_collected",
    "arrived",
    "cpr_started",
    "aed_arrived",
    "pads_attached",
    "shock_delivered",
    "rosc",
    "handed_over",
    "withdrawn",
)
ENDING_MARKERS = frozenset({"handed_over", "withdrawn"})

# Event types (the callbacks to 120 and the phones' fan-out rely on these names).
INCIDENT_CREATED = "incident.created"
INCIDENT_ESCALATED = "incident.escalated"
INCIDENT_CANCELLED = "incident.cancelled"
INCIDENT_CLOSED = "incident.closed"
OFFER_CREATED = "offer.created"
OFFER_ACCEPTED = "offer.accepted"
OFFER_DECLINED = "offer.declined"
OFFER_EXPIRED = "offer.expired"
OFFER_CANCELLED = "offer.cancelled"
RESPONDER_STATUS = "responder.status"

SYSTEM_ACTOR = "system"


# The timeline entry written with each event (incident.created, offer.created and
# responder.status are described in the module's docstring).
TIMELINE_TYPES = {
    OFFER_ACCEPTED: "offer_accepted",
    OFFER_DECLINED: "offer_declined",
    OFFER_EXPIRED: "offer_expired",
    OFFER_CANCELLED: "offer_cancelled",
    INCIDENT_ESCALATED: "escalated",
    INCIDENT_CANCELLED: "cancelled",
    INCIDENT_CLOSED: "closed",
}


class CandidateLike(Protocol):
    """A volunteer the live-position search found (volunteers.positions.Candidate)."""

    @property
    def volunteer_id(self) -> str: ...
    @property
    def lat(self) -> float: ...
    @property
    def lng(self) -> float: ...
    @property
    def distance_m(self) -> float: ...
    @property
    def travel_mode(self) -> TravelMode: ...


@dataclass(frozen=True, slots=True)
class PlanInput:
    """Everything a plan strategy needs; it does no I/O."""

    lat: float
    lng: float
    budget_s: float
    candidates: Sequence[CandidateLike]
    # AEDs available now around the patient, with their distance to the patient, nearest first.
    aeds: Sequence[tuple[IndexedAed, float]]
    model: TravelModel
    offers_aed: int
    offers_cpr: int
    # Volunteers not to offer (already offered in this incident).
    exclude: frozenset[str] = frozenset()
    # AEDs other fetchers already go to: used again only when no other AED fits.
    busy_aeds: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Assignment:
    """One role offered to one volunteer."""

    volunteer_id: str
    role: Role
    eta_s: float
    distance_m: float
    aed: IndexedAed | None = None


@dataclass(frozen=True, slots=True)
class PlannedAed:
    """An AED in the plan: reachable from the patient within the budget."""

    aed: IndexedAed
    distance_m: float
    eta_s: float


@dataclass(frozen=True, slots=True)
class Plan:
    """A strategy's answer: responders sorted by ETA, AEDs nearest first."""

    responders: list[Assignment] = field(default_factory=list)
    aeds: list[PlannedAed] = field(default_factory=list)


PlanStrategy = Callable[[PlanInput], Plan]


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    """What the dispatch package computes once per worker from the settings."""

    model: TravelModel
    strategy: PlanStrategy
    time_budget_s: int
    max_time_budget_s: int
    escalation_step_s: int
    escalation_window_s: int
    offer_ttl_s: int
    position_ttl_s: int
    offers_aed: int
    offers_cpr: int
    needed_aed: int
    needed_cpr: int
    guidance_url: str  # base URL of the guidance WebSockets, "{session_id}/ws" is appended
    timezone: tzinfo
    token_key: bytes = field(repr=False)

    def reach_by_mode(self, budget_s: float) -> dict[TravelMode, float]:
        """Each travel mode's straight-line reach of the budget (what a search reads)."""
        return {mode: self.model.reach_m(budget_s, mode) for mode in TravelMode}

    def aed_radius_m(self, budget_s: float) -> float:
        """How far from the patient an AED can be and still be in the plan or on a route.

        The plan lists AEDs within walking reach; a fetcher in a faster mode may bring one
        from farther (volunteer -> AED -> patient is at least AED -> patient).
        """
        model = self.model
        fastest = max(TravelMode, key=model.speed_mps)
        least_retrieval = model.retrieval_s(indoor=False, level=None)
        return max(
            model.reach_m(budget_s, TravelMode.WALK),
            model.reach_m(budget_s, fastest, least_retrieval),
        )
