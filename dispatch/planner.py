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

The route ETAs of every (candidate, AED) pair are one numpy array; each AED's fastest routes,
as many as fetchers are wanted, are kept by one partition and ranked by one lexsort: at
province density (~600 candidates x 16 AEDs) a plan takes ~0.9 ms median, ~1.0 at a wave's
wider reach (BENCHMARKS.md, session 9). The tests hold it to the same rule written pair by
pair.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dispatch.models import (
    Assignment,
    CandidateLike,
    Plan,
    PlanInput,
    PlannedAed,
    PlanStrategy,
    Role,
)
from geo import EARTH_RADIUS_M, IndexedAed, TravelMode, TravelModel
from volunteers.models import Coverage, Waypoint

# Routes are tried through the AEDs nearest the patient only: a farther AED is never on the
# best route of anyone who can still arrive in time, and this bounds the work per alert.
MAX_ROUTE_AEDS = 16

_M_PER_DEG = EARTH_RADIUS_M * math.pi / 180.0


@dataclass(frozen=True, slots=True)
class SearchBounds:
    """How much of the live positions this strategy's plan can use: per travel mode, the
    `nearest` members nearest the patient, and around each route AED (`waypoints`) the
    `per_aed` members nearest it who could still fetch it in time."""

    nearest: int
    per_aed: int
    waypoints: list[Waypoint]


def search_bounds(
    *,
    model: TravelModel,
    budget_s: float,
    aeds: Sequence[tuple[IndexedAed, float]],
    offers_aed: int,
    offers_cpr: int,
    skip: int = 0,
) -> SearchBounds:
    """The search `role_policy` needs for a plan identical to one from an unbounded search.

    `aeds`: the AEDs the plan will get (nearest first, with their distance from the patient);
    `skip`: how many volunteers the plan will exclude (a wave's already asked). Within one
    travel mode, a sooner direct arrival is a nearer member, and a sooner route through an AED
    is a member nearer that AED. The plan takes its `cpr` responders from the offers_cpr +
    offers_aed nearest arrivals, and a fetcher only from each route AED's offers_aed fastest
    routes (`_pick_fetchers`), besides the nearest one kept for CPR. So per mode, that many
    members nearest the patient and around each route AED would do, if each were a candidate;
    but the search's filters (stale, engaged, off duty, ineligible) and the plan's exclusions
    drop some of those found, so the search reads twice what the plan takes, plus the
    excluded; `covers` then checks the plan against what the search left unread. A route AED's
    radius for a mode is how far from it a member of that mode can be and still bring it within
    the budget. `python -m bench.plans`: on 1,000 urban points, at the alert's and a wave's
    budget, on the Qingdao and the province data, every plan was the unbounded search's, and
    `covers` passed 995 and 991 of the Qingdao plans (BENCHMARKS.md, session 14).
    """
    per_aed = 2 * offers_aed + skip if offers_aed > 0 else 0
    waypoints = []
    if per_aed:
        for aed, distance in aeds[:MAX_ROUTE_AEDS]:
            left = budget_s - model.retrieval_s(indoor=aed.indoor, level=aed.level)
            radius = {mode: model.reach_m(left, mode) - distance for mode in TravelMode}
            waypoints.append(Waypoint(aed.lat, aed.lng, {m: r for m, r in radius.items() if r > 0}))
    return SearchBounds(
        nearest=2 * (offers_cpr + offers_aed) + skip, per_aed=per_aed, waypoints=waypoints
    )


def covers(plan: Plan, inp: PlanInput, coverage: Coverage) -> bool:
    """Whether `role_policy`'s plan from a search bounded by `search_bounds` is the plan every
    member would give: no member the search left unread could have been chosen or have moved a
    choice. False sends the caller back to a wider search.

    An unread member of a mode is at least as far from the patient as the mode's coverage there,
    and from each route AED as its coverage there (or out of the AED's radius, where the search
    read every member who could bring it in time): it arrives no sooner than that directly, and
    brings that AED no sooner than that route. The plan stands if the nearest arrival and every
    CPR responder come strictly sooner than any unread member could (and no CPR offer is
    missing), and if, through each route AED, an unread member's route is slower than every
    fetcher's (and no fetcher is missing), or the AED has offers_aed routes of those read that
    are strictly faster than it, besides the nearest arrival's: only an AED's offers_aed fastest
    routes are ever chosen (`_pick_fetchers`), so that member's would not be, nor move the
    others. The filters' dropped (ineligible, engaged) are what make it fail: the unread are
    taken to be eligible.
    """
    partial = {mode: d for mode, d in coverage.centre.items() if d is not None}
    if not partial or (inp.offers_aed <= 0 and inp.offers_cpr <= 0):
        return True
    model = inp.model
    per_m = _seconds_per_metre(model)
    people = [
        c for c in inp.candidates
        if c.volunteer_id not in inp.exclude and c.distance_m * per_m[c.travel_mode] <= inp.budget_s
    ]  # fmt: skip
    direct = [c.distance_m * per_m[c.travel_mode] for c in people]
    cpr = [a.eta_s for a in plan.responders if a.role is Role.CPR]
    fetch = [a.eta_s for a in plan.responders if a.role is Role.AED]
    # A missing offer could go to any unread member within the budget.
    soonest = max([min(direct, default=0.0), *cpr]) if len(cpr) >= inp.offers_cpr else inp.budget_s
    slowest = max(fetch, default=0.0) if len(fetch) >= inp.offers_aed else inp.budget_s
    if any(soonest >= far * per_m[mode] for mode, far in partial.items()):
        return False
    if inp.offers_aed <= 0 or not people:
        return True
    etas = None  # the routes of those read, through each route AED: only if needed
    for j, ((aed, distance), read) in enumerate(
        zip(inp.aeds[:MAX_ROUTE_AEDS], coverage.waypoints, strict=False)
    ):
        retrieval = model.retrieval_s(indoor=aed.indoor, level=aed.level)
        for mode, far in partial.items():
            near = read.get(mode)
            if near is None:
                continue  # every member who could bring this AED in time was read
            unread = (max(near, far - distance) + distance) * per_m[mode] + retrieval
            if unread > slowest:
                continue
            if etas is None:
                etas, _ = _route_etas(inp, people, [per_m[c.travel_mode] for c in people])
                # The nearest arrival is kept for CPR: not one of an AED's fetchers.
                etas[min(range(len(people)), key=direct.__getitem__)] = math.inf
            if int((etas[:, j] < unread).sum()) < inp.offers_aed:
                return False
    return True


def _seconds_per_metre(model: TravelModel) -> dict[TravelMode, float]:
    """Seconds per straight-line metre by mode: eta_s(d, mode) == d * per_m[mode]."""
    return {mode: model.detour_factor / model.speed_mps(mode) for mode in TravelMode}


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
    per_m = _seconds_per_metre(model)
    people: list[CandidateLike] = []  # who can arrive in time, each once
    direct: list[float] = []
    per_metre: list[float] = []
    seen: set[str] = set()
    for c in inp.candidates:
        if c.volunteer_id in inp.exclude or c.volunteer_id in seen:
            continue
        seen.add(c.volunteer_id)
        # StrEnum members hash as their values: a plain "walk" finds TravelMode.WALK.
        k = per_m[c.travel_mode]
        eta = c.distance_m * k
        if eta <= budget:
            people.append(c)
            direct.append(eta)
            per_metre.append(k)
    # Everyone by direct ETA (ties by id): the first is the nearest pair of hands.
    order = sorted(range(len(people)), key=lambda i: (direct[i], people[i].volunteer_id))

    fetchers = _pick_fetchers(inp, people, per_metre, order)
    responders = [
        Assignment(
            volunteer_id=people[i].volunteer_id,
            role=Role.AED,
            eta_s=eta,
            distance_m=people[i].distance_m,
            aed=aed,
        )
        for i, eta, aed in fetchers
    ]
    taken = {i for i, _, _ in fetchers}
    going_direct = [i for i in order if i not in taken]
    responders.extend(
        Assignment(
            volunteer_id=people[i].volunteer_id,
            role=Role.CPR,
            eta_s=direct[i],
            distance_m=people[i].distance_m,
        )
        for i in going_direct[: inp.offers_cpr]
    )
    responders.sort(key=lambda a: (a.eta_s, a.role, a.volunteer_id))
    return Plan(responders=responders, aeds=plan_aeds(inp))


def _route_etas(
    inp: PlanInput, people: list[CandidateLike], per_metre: list[float]
) -> tuple[np.ndarray, list[IndexedAed]]:
    """Each person's ETA via each of the AEDs nearest the patient (people x AEDs, seconds):
    walk or ride to the AED, retrieve it, then on to the patient by the same mode. The same
    sum as TravelModel.aed_route_eta_s, in flat local coordinates around the patient: exact
    enough within a few kilometres and much cheaper than a haversine per pair."""
    route = inp.aeds[:MAX_ROUTE_AEDS]
    kx = math.cos(math.radians(inp.lat)) * _M_PER_DEG
    ax = np.array([(aed.lng - inp.lng) * kx for aed, _ in route])
    ay = np.array([(aed.lat - inp.lat) * _M_PER_DEG for aed, _ in route])
    to_patient = np.array([distance for _, distance in route])
    retrieval = np.array(
        [inp.model.retrieval_s(indoor=aed.indoor, level=aed.level) for aed, _ in route]
    )
    cx = (np.array([c.lng for c in people]) - inp.lng) * kx
    cy = (np.array([c.lat for c in people]) - inp.lat) * _M_PER_DEG
    k = np.array(per_metre)
    legs = np.hypot(ax[None, :] - cx[:, None], ay[None, :] - cy[:, None])
    return (legs + to_patient) * k[:, None] + retrieval, [aed for aed, _ in route]


def _pick_fetchers(
    inp: PlanInput, people: list[CandidateLike], per_metre: list[float], order: list[int]
) -> list[tuple[int, float, IndexedAed]]:
    """The `aed` fetchers: (index in people, ETA via the AED, the AED), fastest first."""
    if inp.offers_aed <= 0 or not people or not inp.aeds:
        return []
    etas, aeds = _route_etas(inp, people, per_metre)
    feasible = etas <= inp.budget_s
    if len(people) > 1:  # the nearest stays for CPR unless nobody else can fetch
        reserved = feasible[order[0]].copy()
        feasible[order[0]] = False
        if not feasible.any():
            feasible[order[0]] = reserved
    n = inp.offers_aed
    if len(people) > n:
        # Only each AED's first n routes can be chosen (_choosable): an AED's routes slower
        # than its n-th fastest are dropped before ranking (ties with it kept, for the ids to
        # break). A dense crowd's thousands of routes come down to at most ~AEDs x n.
        slowest_kept = np.partition(np.where(feasible, etas, np.inf), n - 1, axis=0)[n - 1]
        feasible &= etas <= slowest_kept
    rows, cols = np.nonzero(feasible)
    if rows.size == 0:
        return []
    # Every route left, fastest first, ties broken by volunteer id, then by AED id: ranks of
    # the ids (among the people with a route left) stand in for the strings in one lexsort.
    by_id = sorted(np.unique(rows).tolist(), key=lambda i: people[i].volunteer_id)
    person_rank = np.empty(len(people), dtype=np.int64)
    person_rank[by_id] = np.arange(len(by_id))
    aed_rank = np.argsort(np.argsort(np.array([aed.id for aed in aeds])))
    pair_etas = etas[rows, cols]
    ranked = np.lexsort((aed_rank[cols], person_rank[rows], pair_etas))
    rows, cols = rows[ranked], cols[ranked]
    kept = _choosable(rows, cols, n)
    pairs = list(zip(rows[kept].tolist(), cols[kept].tolist(), strict=True))
    chosen: list[tuple[int, float, IndexedAed]] = []
    picked: set[int] = set()
    used = set(inp.busy_aeds)
    # AEDs not yet taken by another fetcher first, then sharing them.
    for distinct in (True, False):
        for i, j in pairs:
            if len(chosen) == inp.offers_aed:
                return chosen
            aed = aeds[j]
            if i in picked or (distinct and aed.id in used):
                continue
            chosen.append((i, float(etas[i, j]), aed))
            picked.add(i)
            used.add(aed.id)
    return chosen


def _choosable(rows: np.ndarray, cols: np.ndarray, n: int) -> np.ndarray:
    """Positions, in rank order, of the only ranked pairs the two passes can choose from:
    each AED's first n pairs (`rows`/`cols`: person and AED of each pair, fastest first; `n`:
    the fetchers wanted). A dense centre's thousands of pairs come down to at most AEDs × n.

    First pass (distinct AEDs): an AED gets the first of its pairs whose person is still free;
    had its first n pairs all had their person taken, n fetchers were chosen and the pass ended.
    Second pass (AEDs shared): free persons are taken with their first pair, in the order of
    those pairs, at most n of them. The k-th person's first pair is among its AED's first k
    pairs: only pairs of the k - 1 persons before can rank before it.
    """
    by_aed = np.argsort(cols, kind="stable")  # each AED's pairs together, in rank order
    grouped = cols[by_aed]
    starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
    within = np.arange(grouped.size) - np.repeat(starts, np.diff(np.r_[starts, grouped.size]))
    kept: np.ndarray = np.sort(by_aed[within < n])
    return kept


DEFAULT_STRATEGY: PlanStrategy = role_policy
