"""The planner: who is offered which role. Pure; the strategy is a replaceable function.

The default strategy follows published practice (Heartrunner, HartslagNu, FirstAED): some
volunteers fetch an AED on their way (role `aed`), others go straight to the patient (role
`cpr`), and each role is offered to several volunteers because only about a third accept.

1. A candidate counts only if it can reach the patient within the budget by its own travel
   mode; its direct ETA is the `cpr` time. Its `aed` time is the best volunteer -> AED ->
   patient route among the AEDs nearest the patient (retrieval overhead included).
2. The nearest direct responder is kept for `cpr` (time to first compression) unless nobody
   else can fetch an AED (time to AED on scene matters more than one more pair of hands).
3. Fetchers are taken by best route ETA, each to a distinct AED first (AEDs other fetchers
   already go to count as taken), then sharing AEDs if there are not enough of them.
4. The remaining candidates, nearest first, get `cpr`. A volunteer gets at most one role.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from dispatch.models import (
    Assignment,
    CandidateLike,
    Plan,
    PlanInput,
    PlannedAed,
    PlanStrategy,
    Role,
)
from geo import EARTH_RADIUS_M, IndexedAed, TravelMode

# Routes are tried through the AEDs nearest the patient only: a farther AED is never on the
# best route of anyone who can still arrive in time, and this bounds the work per alert.
MAX_ROUTE_AEDS = 16

_M_PER_DEG = EARTH_RADIUS_M * math.pi / 180.0


Route = tuple[float, IndexedAed]  # (eta_s via the AED, the AED)


@dataclass(slots=True)
class _Person:
    candidate: CandidateLike
    direct_s: float
    routes: list[Route] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _RouteAed:
    aed: IndexedAed
    to_patient_m: float
    retrieval_s: float
    x: float
    y: float


def plan_aeds(inp: PlanInput) -> list[PlannedAed]:
    """AEDs whose walking time from the patient is within the budget, nearest first."""
    per_m = inp.model.detour_factor / inp.model.speed_mps(TravelMode.WALK)
    planned = []
    for aed, distance in inp.aeds:
        eta = distance * per_m  # TravelModel.eta_s(distance, WALK)
        if eta <= inp.budget_s:
            planned.append(PlannedAed(aed=aed, distance_m=distance, eta_s=eta))
    return planned


def role_policy(inp: PlanInput) -> Plan:
    """The default strategy (see the module's docstring)."""
    model = inp.model
    budget = inp.budget_s
    # Seconds per straight-line metre by mode: eta_s(d, mode) == d * per_m[mode].
    per_m = {mode: model.detour_factor / model.speed_mps(mode) for mode in TravelMode}
    # Flat local coordinates around the patient: exact enough within a few kilometres and
    # much cheaper than a haversine per volunteer-AED pair.
    kx = math.cos(math.radians(inp.lat)) * _M_PER_DEG
    route_aeds = [
        _RouteAed(
            aed=aed,
            to_patient_m=distance,
            retrieval_s=model.retrieval_s(indoor=aed.indoor, level=aed.level),
            x=(aed.lng - inp.lng) * kx,
            y=(aed.lat - inp.lat) * _M_PER_DEG,
        )
        for aed, distance in inp.aeds[:MAX_ROUTE_AEDS]
    ]
    people: list[_Person] = []
    seen: set[str] = set()
    for c in inp.candidates:
        if c.volunteer_id in inp.exclude or c.volunteer_id in seen:
            continue
        seen.add(c.volunteer_id)
        # StrEnum members hash as their values: a plain "walk" finds TravelMode.WALK.
        k = per_m[c.travel_mode]
        direct = c.distance_m * k
        if direct > budget:
            continue
        person = _Person(candidate=c, direct_s=direct)
        if inp.offers_aed > 0:
            cx = (c.lng - inp.lng) * kx
            cy = (c.lat - inp.lat) * _M_PER_DEG
            for r in route_aeds:
                # The same sum as TravelModel.aed_route_eta_s, inlined for the hot loop.
                eta = (math.hypot(r.x - cx, r.y - cy) + r.to_patient_m) * k + r.retrieval_s
                if eta <= budget:
                    person.routes.append((eta, r.aed))
        people.append(person)
    people.sort(key=lambda p: (p.direct_s, p.candidate.volunteer_id))

    fetchers = _pick_fetchers(people, inp)
    responders = [
        Assignment(
            volunteer_id=p.candidate.volunteer_id,
            role=Role.AED,
            eta_s=eta,
            distance_m=p.candidate.distance_m,
            aed=aed,
        )
        for p, (eta, aed) in fetchers
    ]
    taken = {p.candidate.volunteer_id for p, _ in fetchers}
    going_direct = [p for p in people if p.candidate.volunteer_id not in taken]
    responders.extend(
        Assignment(
            volunteer_id=p.candidate.volunteer_id,
            role=Role.CPR,
            eta_s=p.direct_s,
            distance_m=p.candidate.distance_m,
        )
        for p in going_direct[: inp.offers_cpr]
    )
    responders.sort(key=lambda a: (a.eta_s, a.role, a.volunteer_id))
    return Plan(responders=responders, aeds=plan_aeds(inp))


def _pick_fetchers(people: list[_Person], inp: PlanInput) -> list[tuple[_Person, Route]]:
    """The `aed` fetchers with the route each takes."""
    if inp.offers_aed <= 0:
        return []
    reserved = people[0] if len(people) > 1 else None
    pairs = _pairs(p for p in people if p is not reserved)
    if not pairs and reserved is not None:
        pairs = _pairs([reserved])
    chosen: list[tuple[_Person, Route]] = []
    picked: set[str] = set()
    used = set(inp.busy_aeds)
    for distinct in (True, False):
        for eta, vid, aed, person in pairs:
            if len(chosen) == inp.offers_aed:
                return chosen
            if vid in picked or (distinct and aed.id in used):
                continue
            chosen.append((person, (eta, aed)))
            picked.add(vid)
            used.add(aed.id)
    return chosen


def _pairs(people: Iterable[_Person]) -> list[tuple[float, str, IndexedAed, _Person]]:
    """Every feasible (person, AED) route, fastest first (ties broken by ids)."""
    pairs = [(eta, p.candidate.volunteer_id, aed, p) for p in people for eta, aed in p.routes]
    pairs.sort(key=lambda t: (t[0], t[1], t[2].id))
    return pairs


DEFAULT_STRATEGY: PlanStrategy = role_policy
