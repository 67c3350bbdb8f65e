"""The default plan strategy (pure): reach, roles, caps, distinct AEDs, ordering."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.models import Plan, PlanInput, Role
from dispatch.planner import MAX_ROUTE_AEDS, role_policy
from geo import EARTH_RADIUS_M, IndexedAed, TravelMode, TravelModel, haversine_m
from tests.dispatch.support import PATIENT, offset

MODEL = TravelModel()


@dataclass(frozen=True)
class Cand:
    volunteer_id: str
    lat: float
    lng: float
    distance_m: float
    travel_mode: TravelMode = TravelMode.WALK


def cand(vid: str, *, north_m: float = 0, east_m: float = 0, mode: str = "walk") -> Cand:
    lat, lng = offset(PATIENT, north_m=north_m, east_m=east_m)
    return Cand(vid, lat, lng, haversine_m(lat, lng, *PATIENT), TravelMode(mode))


def unit(
    aid: str, *, north_m: float = 0, east_m: float = 0, indoor: bool = False
) -> tuple[IndexedAed, float]:
    lat, lng = offset(PATIENT, north_m=north_m, east_m=east_m)
    return IndexedAed(aid, lat, lng, "active", indoor=indoor), haversine_m(lat, lng, *PATIENT)


def plan_of(
    cands: list[Cand], aeds: list[tuple[IndexedAed, float]], **kw: object
) -> dict[str, tuple[str, str | None]]:
    args: dict[str, object] = {
        "lat": PATIENT[0],
        "lng": PATIENT[1],
        "budget_s": 300,
        "candidates": cands,
        "aeds": sorted(aeds, key=lambda a: a[1]),
        "model": MODEL,
        "offers_aed": 3,
        "offers_cpr": 3,
        **kw,
    }
    plan = role_policy(PlanInput(**args))  # type: ignore[arg-type]
    etas = [a.eta_s for a in plan.responders]
    assert etas == sorted(etas)
    return {a.volunteer_id: (a.role.value, a.aed.id if a.aed else None) for a in plan.responders}


def test_reach_depends_on_each_volunteers_own_mode() -> None:
    walk_reach = MODEL.reach_m(300, TravelMode.WALK)  # about 428 m
    plan = plan_of(
        [
            cand("near-walker", north_m=walk_reach - 5),
            cand("far-walker", north_m=walk_reach + 5),
            cand("far-driver", east_m=walk_reach + 300, mode="car"),
        ],
        [],
    )
    assert set(plan) == {"near-walker", "far-driver"}
    assert all(role == "cpr" for role, _ in plan.values())


def test_nearest_goes_direct_and_fetchers_take_distinct_aeds() -> None:
    plan = plan_of(
        [
            cand("v1", north_m=30),
            cand("v2", east_m=60),
            cand("v3", east_m=-70),
            cand("v4", north_m=-80),
        ],
        [unit("a-east", east_m=90), unit("a-west", east_m=-100)],
    )
    assert plan["v1"] == ("cpr", None)
    fetched = [aed for role, aed in plan.values() if role == "aed"]
    assert set(fetched) == {"a-east", "a-west"}
    assert plan["v2"] == ("aed", "a-east")
    assert plan["v3"] == ("aed", "a-west")


def test_fetchers_share_an_aed_when_there_is_only_one() -> None:
    plan = plan_of(
        [cand(f"v{i}", north_m=20 * i) for i in range(1, 6)],
        [unit("only", north_m=50)],
        offers_aed=2,
        offers_cpr=2,
    )
    roles = [role for role, _ in plan.values()]
    assert roles.count("aed") == 2 and roles.count("cpr") == 2
    assert {aed for role, aed in plan.values() if role == "aed"} == {"only"}
    assert plan["v1"] == ("cpr", None)


def test_the_only_volunteer_fetches_the_aed() -> None:
    assert plan_of([cand("solo", north_m=40)], [unit("a", north_m=60)]) == {"solo": ("aed", "a")}


def test_caps_and_one_role_per_volunteer() -> None:
    cands = [cand(f"v{i:02d}", north_m=10 * i) for i in range(1, 20)]
    plan = plan_of(
        cands, [unit("a1", north_m=100), unit("a2", east_m=100)], offers_aed=2, offers_cpr=3
    )
    roles = [role for role, _ in plan.values()]
    assert roles.count("aed") == 2 and roles.count("cpr") == 3


def test_aed_route_must_fit_the_budget() -> None:
    # A route through an AED that would take too long leaves everyone direct.
    plan = plan_of([cand("v1", north_m=100), cand("v2", north_m=120)], [unit("far", north_m=-400)])
    assert {role for role, _ in plan.values()} == {"cpr"}


def test_route_eta_matches_the_travel_model() -> None:
    c = cand("v", north_m=120, mode="bike")
    a, to_patient = unit("a", east_m=150, indoor=True)
    plan = role_policy(
        PlanInput(
            lat=PATIENT[0],
            lng=PATIENT[1],
            budget_s=300,
            candidates=[c],
            aeds=[(a, to_patient)],
            model=MODEL,
            offers_aed=1,
            offers_cpr=0,
        )
    )
    (assignment,) = plan.responders
    expected = MODEL.aed_route_eta_s(
        to_aed_m=haversine_m(c.lat, c.lng, a.lat, a.lng),
        aed_to_patient_m=to_patient,
        mode=TravelMode.BIKE,
        indoor=True,
    )
    assert assignment.role is Role.AED
    assert assignment.eta_s == pytest.approx(expected, rel=1e-3)


def test_excluded_and_busy() -> None:
    cands = [cand("v1", north_m=10), cand("v2", north_m=20), cand("v3", east_m=30)]
    aeds = [unit("busy", north_m=40), unit("free", east_m=60)]
    plan = plan_of(
        cands, aeds, exclude=frozenset({"v1"}), busy_aeds=frozenset({"busy"}), offers_aed=1
    )
    assert "v1" not in plan
    assert [aed for role, aed in plan.values() if role == "aed"] == ["free"]


def test_no_roles_wanted_no_offers() -> None:
    assert (
        plan_of([cand("v1", north_m=10)], [unit("a", north_m=20)], offers_aed=0, offers_cpr=0) == {}
    )


def test_plan_aeds_within_walking_budget_nearest_first() -> None:
    walk_reach = MODEL.reach_m(300, TravelMode.WALK)
    aeds = [
        unit("near", north_m=50),
        unit("edge", east_m=walk_reach - 5),
        unit("beyond", north_m=walk_reach + 5),
    ]
    plan = role_policy(
        PlanInput(
            lat=PATIENT[0],
            lng=PATIENT[1],
            budget_s=300,
            candidates=[],
            aeds=sorted(aeds, key=lambda a: a[1]),
            model=MODEL,
            offers_aed=3,
            offers_cpr=3,
        )
    )
    assert [p.aed.id for p in plan.aeds] == ["near", "edge"]
    assert plan.responders == []


def pairwise_rule(inp: PlanInput) -> list[tuple[str, Role, str | None]]:
    """The module docstring's rule, written plainly, pair by pair: the reference for the
    vectorised planner (the same hypot, so the same ETAs to the last bit)."""
    per_m = {mode: MODEL.detour_factor / MODEL.speed_mps(mode) for mode in TravelMode}
    m_per_deg = EARTH_RADIUS_M * math.pi / 180.0
    kx = math.cos(math.radians(inp.lat)) * m_per_deg
    people = []  # (direct eta, id, candidate, [(eta, aed), ...])
    seen: set[str] = set()  # a volunteer's first entry counts, reachable or not
    for c in inp.candidates:
        if c.volunteer_id in inp.exclude or c.volunteer_id in seen:
            continue
        seen.add(c.volunteer_id)
        k = per_m[c.travel_mode]
        if c.distance_m * k > inp.budget_s:
            continue
        routes = []
        for aed, to_patient in inp.aeds[:MAX_ROUTE_AEDS]:
            leg = float(
                np.hypot(
                    (aed.lng - inp.lng) * kx - (c.lng - inp.lng) * kx,
                    (aed.lat - inp.lat) * m_per_deg - (c.lat - inp.lat) * m_per_deg,
                )
            )
            eta = (leg + to_patient) * k + MODEL.retrieval_s(indoor=aed.indoor, level=aed.level)
            if eta <= inp.budget_s:
                routes.append((eta, aed))
        people.append((c.distance_m * k, c.volunteer_id, c, routes))
    people.sort(key=lambda p: (p[0], p[1]))
    chosen: list[tuple[float, str, str]] = []
    if inp.offers_aed > 0:
        others = people[1:] if len(people) > 1 else people
        pairs = sorted(((eta, p[1], aed.id) for p in others for eta, aed in p[3]), key=lambda t: t)
        if not pairs and len(people) > 1:
            pairs = sorted((eta, people[0][1], aed.id) for eta, aed in people[0][3])
        used = set(inp.busy_aeds)
        for distinct in (True, False):
            for eta, vid, aed_id in pairs:
                if len(chosen) == inp.offers_aed or any(c[1] == vid for c in chosen):
                    continue
                if distinct and aed_id in used:
                    continue
                chosen.append((eta, vid, aed_id))
                used.add(aed_id)
    taken = {vid for _, vid, _ in chosen}
    direct = [(p[0], p[1]) for p in people if p[1] not in taken][: inp.offers_cpr]
    out = [(eta, Role.AED, vid, aed_id) for eta, vid, aed_id in chosen]
    out += [(eta, Role.CPR, vid, None) for eta, vid in direct]
    return [(vid, role, aed_id) for _, role, vid, aed_id in sorted(out, key=lambda t: t[:3])]


def _assert_the_rules_plan(
    cands: list[Cand], aeds: list[tuple[IndexedAed, float]], **offers_and_exclusions: Any
) -> None:
    """The planner's plan for a patient at PATIENT is the pairwise rule's."""
    inp = PlanInput(
        lat=PATIENT[0],
        lng=PATIENT[1],
        budget_s=300,
        candidates=cands,
        aeds=aeds,
        model=MODEL,
        **offers_and_exclusions,
    )
    plan: Plan = role_policy(inp)
    got = [(a.volunteer_id, a.role, a.aed.id if a.aed else None) for a in plan.responders]
    assert got == pairwise_rule(inp)


_metres = st.floats(min_value=-1500, max_value=1500, allow_nan=False)
_volunteers = st.lists(
    st.tuples(_metres, _metres, st.sampled_from(list(TravelMode)), st.integers(0, 40)),
    max_size=40,
)
_units = st.lists(st.tuples(_metres, _metres, st.booleans(), st.integers(0, 30)), max_size=20)


@settings(max_examples=300, deadline=None)
@given(
    volunteers=_volunteers,
    units=_units,
    offers=st.tuples(st.integers(0, 5), st.integers(0, 5)),
    excluded=st.sets(st.integers(0, 40), max_size=5),
    busy=st.sets(st.integers(0, 30), max_size=5),
)
def test_the_plan_is_the_pairwise_rules_plan(
    volunteers: list[tuple[float, float, TravelMode, int]],
    units: list[tuple[float, float, bool, int]],
    offers: tuple[int, int],
    excluded: set[int],
    busy: set[int],
) -> None:
    # Ids drawn from small ranges repeat: duplicate candidates and equal ETAs are exercised.
    cands = [
        cand(f"v{n:02d}", north_m=north, east_m=east, mode=mode.value)
        for north, east, mode, n in volunteers
    ]
    aeds = sorted(
        (
            unit(f"a{n:02d}", north_m=north, east_m=east, indoor=indoor)
            for north, east, indoor, n in units
        ),
        key=lambda a: a[1],
    )
    _assert_the_rules_plan(
        cands,
        aeds,
        offers_aed=offers[0],
        offers_cpr=offers[1],
        exclude=frozenset(f"v{n:02d}" for n in excluded),
        busy_aeds=frozenset(f"a{n:02d}" for n in busy),
    )


@pytest.mark.parametrize("seed", range(60))
def test_a_dense_crowd_gets_the_pairwise_rules_plan(seed: int) -> None:
    # Hundreds of people around a cluster of AEDs: thousands of feasible (person, AED) routes,
    # most of which the planner never has to look at; the plan is still the rule's.
    rng = random.Random(seed)
    spread = rng.choice([150.0, 400.0, 900.0])
    cands = [
        cand(
            f"v{n:03d}",
            north_m=rng.gauss(0, spread),
            east_m=rng.gauss(0, spread),
            mode=rng.choice(["walk", "walk", "bike", "car"]),
        )
        for n in range(rng.randint(50, 300))
    ]
    aeds = sorted(
        (
            unit(f"a{n:02d}", north_m=rng.gauss(0, 300), east_m=rng.gauss(0, 300),
                 indoor=rng.random() < 0.5)
            # Half the crowds have fewer AEDs than fetchers wanted: the AEDs are shared.
            for n in range(rng.randint(1, 4) if seed % 2 else rng.randint(5, 20))
        ),
        key=lambda a: a[1],
    )  # fmt: skip
    _assert_the_rules_plan(
        cands,
        aeds,
        offers_aed=rng.randint(1, 8),
        offers_cpr=rng.randint(0, 3),
        busy_aeds=frozenset(a.id for a, _ in aeds if rng.random() < 0.2),
    )
