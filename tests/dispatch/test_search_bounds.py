"""The live search bounded by what the plan can use (dispatch.planner.search_bounds): on real
Redis, dense crowds get the plan an unbounded search would give, from far fewer candidates;
and the alert's AEDs read as far as the plan can use them (dispatch.service.route_aeds)."""

from __future__ import annotations

import datetime as dt
import random
import time
from dataclasses import dataclass, replace
from typing import Any

import pytest
from redis.asyncio import Redis

from dispatch.models import DispatchConfig, Plan, PlanInput
from dispatch.planner import MAX_ROUTE_AEDS, covers, role_policy, search_bounds
from dispatch.service import Search, bounds_for, checked_plan, route_aeds
from dispatch.setup import build_config
from geo import AedIndex, IndexedAed, TravelMode, TravelModel, haversine_m
from rescue.settings import Settings
from tests.dispatch.support import PATIENT, offset
from volunteers import positions
from volunteers.eligibility import VolunteerMeta
from volunteers.models import Coverage
from volunteers.positions import MODE_CAP

MODEL = TravelModel()
NOON = dt.datetime(2026, 6, 15, 12, 0)
TTL = 120


def _meta(rng: random.Random, ineligible: float) -> VolunteerMeta:
    mode = rng.choice([TravelMode.WALK] * 6 + [TravelMode.BIKE] * 3 + [TravelMode.CAR])
    # An expired certificate: found by the search, dropped as ineligible.
    expires = dt.date(2026, 1, 1) if rng.random() < ineligible else dt.date(2028, 1, 1)
    return VolunteerMeta(
        travel_mode=mode, cert_expires_on=expires, status="active", quiet_hours=None
    )


async def _crowd(
    redis: Redis,
    rng: random.Random,
    now: float,
    *,
    size: tuple[int, int] = (300, 700),
    spreads: tuple[float, ...] = (120.0, 300.0, 700.0),
    ineligible: float = 0.125,
) -> None:
    spread = rng.choice(spreads)
    fresh: list[tuple[str, VolunteerMeta, float, float]] = []
    stale: list[tuple[str, VolunteerMeta, float, float]] = []
    for n in range(rng.randint(*size)):
        lat, lng = offset(PATIENT, north_m=rng.gauss(0, spread), east_m=rng.gauss(0, spread))
        member = (f"v{n:03d}", _meta(rng, ineligible), lat, lng)
        (stale if rng.random() < 0.05 else fresh).append(member)
    await positions.set_on_duty_batch(redis, fresh, now=now)
    await positions.set_on_duty_batch(redis, stale, now=now - TTL - 10)
    for vid, _, _, _ in fresh:
        if rng.random() < 0.05:
            await positions.engage(redis, volunteer_id=vid, incident_id="inc_elsewhere")


def _aeds(rng: random.Random) -> list[tuple[IndexedAed, float]]:
    units = []
    for n in range(rng.choice([2, 8, 30])):
        lat, lng = offset(PATIENT, north_m=rng.gauss(0, 350), east_m=rng.gauss(0, 350))
        aed = IndexedAed(f"a{n:02d}", lat, lng, "active", indoor=rng.random() < 0.5)
        units.append((aed, haversine_m(lat, lng, *PATIENT)))
    return sorted(units, key=lambda u: u[1])


def _rows(plan: Plan) -> list[tuple[str, str, str | None, float]]:
    return [
        (a.volunteer_id, a.role.value, a.aed.id if a.aed else None, a.eta_s)
        for a in plan.responders
    ]


def _plan(inp: PlanInput) -> list[tuple[str, str, str | None, float]]:
    return _rows(role_policy(inp))


@dataclass
class _Alert:
    """One alert's search and plan, bounded or not, on the crowd in Redis (config's offers)."""

    redis: Redis
    config: DispatchConfig
    aeds: list[tuple[IndexedAed, float]]
    now: float

    async def read(self, **bound: Any) -> tuple[list[positions.Candidate], Coverage]:
        found, _, coverage = await positions.search_candidates(
            self.redis, lat=PATIENT[0], lng=PATIENT[1],
            radius_m=self.config.reach_by_mode(self.config.time_budget_s), now=self.now,
            ttl_s=TTL, at_local=NOON, **bound,
        )  # fmt: skip
        return found, coverage

    async def bounded(self) -> tuple[list[positions.Candidate], Coverage]:
        bounds = search_bounds(
            model=self.config.model, budget_s=self.config.time_budget_s, aeds=self.aeds,
            offers_aed=self.config.offers_aed, offers_cpr=self.config.offers_cpr,
        )  # fmt: skip
        return await self.read(
            limit=bounds.nearest, waypoints=bounds.waypoints, per_waypoint=bounds.per_aed,
            covered=True,
        )  # fmt: skip

    def input(self, found: list[positions.Candidate]) -> PlanInput:
        c = self.config
        return PlanInput(
            lat=PATIENT[0], lng=PATIENT[1], budget_s=c.time_budget_s, candidates=found,
            aeds=self.aeds, model=c.model, offers_aed=c.offers_aed, offers_cpr=c.offers_cpr,
        )  # fmt: skip

    async def checked(self, found: list[positions.Candidate], coverage: Coverage) -> Plan:
        """checked_plan, its wider search each mode's MODE_CAP nearest."""

        async def wider() -> Search:
            found, _ = await self.read(limit=MODE_CAP)
            return Search(candidates=found, excluded={}, degraded=False)

        first = Search(candidates=found, excluded={}, degraded=False, coverage=coverage)
        _, _, plan = await checked_plan(self.config, first, self.input(found), wider)
        return plan


@pytest.mark.parametrize("seed", range(16))
async def test_a_bounded_search_plans_as_an_unbounded_one(redis: Redis, seed: int) -> None:
    rng = random.Random(seed)
    now = time.time()
    await _crowd(redis, rng, now)
    budget = rng.choice([300, 420, 600])
    reach = {mode: MODEL.reach_m(budget, mode) for mode in TravelMode}
    aeds = [u for u in _aeds(rng) if u[1] <= MODEL.reach_m(budget, TravelMode.CAR)]

    async def search(**bound: object) -> list[positions.Candidate]:
        found, _, _ = await positions.search_candidates(
            redis, lat=PATIENT[0], lng=PATIENT[1], radius_m=reach, now=now, ttl_s=TTL,
            at_local=NOON, **bound,  # type: ignore[arg-type]
        )  # fmt: skip
        return found

    everyone = await search(limit=100_000)
    # A wave asks again without those already asked (here: some of the nearest).
    for offers_aed, offers_cpr, asked in ((3, 3, 0), (5, 1, 0), (0, 3, 0), (3, 0, 6), (2, 2, 15)):
        exclude = frozenset(c.volunteer_id for c in everyone[: asked * 2] if rng.random() < 0.5)
        bounds = search_bounds(
            model=MODEL, budget_s=budget, aeds=aeds, offers_aed=offers_aed,
            offers_cpr=offers_cpr, skip=len(exclude),
        )  # fmt: skip
        bounded = await search(
            limit=bounds.nearest, waypoints=bounds.waypoints, per_waypoint=bounds.per_aed
        )
        assert set(bounded) <= set(everyone)
        busy = frozenset(a.id for a, _ in aeds[1:3])
        plans = []
        for found in (bounded, everyone):
            inp = PlanInput(
                lat=PATIENT[0], lng=PATIENT[1], budget_s=budget, candidates=found, aeds=aeds,
                model=MODEL, offers_aed=offers_aed, offers_cpr=offers_cpr, exclude=exclude,
                busy_aeds=busy,
            )  # fmt: skip
            plans.append(_plan(inp))
        assert plans[0] == plans[1], (seed, offers_aed, offers_cpr, asked)
        # The bound bites: a dense crowd is not read to its reach.
        assert len(bounded) < len(everyone), (seed, len(bounded), len(everyone))


@pytest.mark.parametrize("seed", range(12))
def test_the_alerts_aeds_are_those_the_plan_would_use_of_all_within_reach(
    settings: Settings, seed: int
) -> None:
    # route_aeds reads walking reach (or the nearest 16) instead of a car's: the plan's AED list
    # and its route AEDs are those it would take from every AED within aed_radius_m.
    rng = random.Random(seed)
    config = build_config(settings)
    spread = rng.choice([150.0, 400.0, 900.0])
    index = AedIndex(
        IndexedAed(
            f"a{n:03d}",
            *offset(PATIENT, north_m=rng.gauss(0, spread), east_m=rng.gauss(0, spread)),
            "active" if rng.random() < 0.9 else "inactive",
            opening_hours="Mo-Fr 08:00-18:00" if rng.random() < 0.3 else "24/7",
        )
        for n in range(rng.choice([5, 40, 300]))
    )  # fmt: skip
    at_local = rng.choice([NOON, NOON.replace(hour=22)])
    for budget in (300, 600):
        walk = MODEL.reach_m(budget, TravelMode.WALK)
        every = index.within(*PATIENT, config.aed_radius_m(budget), at_local=at_local)
        got = route_aeds(index, config, lat=PATIENT[0], lng=PATIENT[1], budget_s=budget,
                         at_local=at_local)  # fmt: skip
        assert got[:MAX_ROUTE_AEDS] == every[:MAX_ROUTE_AEDS], (seed, budget)
        assert [a for a in got if a[1] <= walk] == [a for a in every if a[1] <= walk]
        assert len(got) <= max(MAX_ROUTE_AEDS, len([a for a in every if a[1] <= walk + 1]))


def test_only_the_default_strategy_gets_its_bounds(settings: Settings) -> None:
    # The bounds are what role_policy can use; another strategy gets each mode's MODE_CAP
    # nearest, as before the bounds.
    aeds = [(IndexedAed("a1", *offset(PATIENT, north_m=200), "active"), 200.0)]
    default = bounds_for(
        build_config(settings), budget_s=300, aeds=aeds, offers_aed=3, offers_cpr=3, skip=4
    )
    assert default is not None
    assert (default.nearest, default.per_aed, len(default.waypoints)) == (16, 10, 1)
    other = build_config(settings, strategy=lambda inp: role_policy(inp))
    assert bounds_for(other, budget_s=300, aeds=aeds, offers_aed=3, offers_cpr=3) is None


async def _bounded_or_wider(redis: Redis, config: DispatchConfig, seed: int) -> bool:
    """One crowd, mostly ineligible: whether `covers` passed the bounded search's plan. Either
    way the plan is the unbounded search's: as it is, or after the wider search."""
    rng = random.Random(1000 + seed)
    now = time.time()
    ineligible = rng.choice([0.3, 0.6, 0.9])
    await _crowd(redis, rng, now, size=(150, 200), spreads=(80.0, 150.0), ineligible=ineligible)
    alert = _Alert(redis, config, _aeds(rng), now)
    bounded, coverage = await alert.bounded()
    everyone, _ = await alert.read(limit=100_000)
    exhaustive = _plan(alert.input(everyone))
    passed = covers(role_policy(alert.input(bounded)), alert.input(bounded), coverage)
    if passed:
        assert _plan(alert.input(bounded)) == exhaustive, seed
    assert _rows(await alert.checked(bounded, coverage)) == exhaustive, seed
    return passed


async def test_a_plan_a_bounded_search_may_have_changed_is_searched_again(
    redis: Redis, settings: Settings
) -> None:
    # Crowds mostly ineligible (as at night, in their quiet hours): twice what the plan takes is
    # then too few, and a plan may differ from the unbounded search's. `covers` must never pass
    # such a plan, and the wider search then gives the unbounded plan (each mode here holds
    # fewer than MODE_CAP, so the wider search reads everyone).
    config = build_config(settings)
    outcomes = []
    for seed in range(24):
        await redis.flushdb()
        outcomes.append(await _bounded_or_wider(redis, config, seed))
    # Both ways were taken: the check is not one answer whatever the crowd.
    assert any(outcomes) and not all(outcomes), outcomes


@pytest.mark.parametrize(
    ("aed_m", "eligible_near_aed"),
    [
        (150.0, 0),  # the AED's read members all ineligible: its fetchers are unread
        (150.0, 2),  # two of them eligible: one fetcher short of offers_aed
        (250.0, 0),  # and nobody near the patient can bring it in time: no fetcher at all
    ],
)
async def test_covers_catches_fetchers_the_bounded_search_left_unread(
    redis: Redis, settings: Settings, aed_m: float, eligible_near_aed: int
) -> None:
    config = build_config(settings)
    now = time.time()
    fit = VolunteerMeta(
        travel_mode=TravelMode.WALK, cert_expires_on=dt.date(2028, 1, 1), status="active",
        quiet_hours=None,
    )  # fmt: skip
    expired = replace(fit, cert_expires_on=dt.date(2026, 1, 1))
    at_aed = offset(PATIENT, east_m=aed_m)
    # Walkers round the patient, more than the search reads there (12).
    members = [(f"p{i:02d}", fit, *offset(PATIENT, north_m=5 + 2 * i)) for i in range(14)]
    # The AED's 6 nearest, read: some eligible (3 m), the rest not (5 m); then 3 eligible at 10 m,
    # beyond what the search reads around it.
    members += [
        (f"r{i}", fit, *offset(at_aed, north_m=3, east_m=i * 0.1)) if i < eligible_near_aed
        else (f"r{i}", expired, *offset(at_aed, north_m=5, east_m=i * 0.1))
        for i in range(6)
    ]  # fmt: skip
    members += [(f"u{i}", fit, *offset(at_aed, north_m=-10, east_m=i * 0.1)) for i in range(3)]
    await positions.set_on_duty_batch(redis, members, now=now)
    alert = _Alert(redis, config, [(IndexedAed("a1", *at_aed, "active", indoor=False), aed_m)], now)
    bounded, coverage = await alert.bounded()
    everyone, _ = await alert.read(limit=100_000)
    assert not {"u0", "u1", "u2"} & {c.volunteer_id for c in bounded}
    exhaustive = _plan(alert.input(everyone))
    # The unread near the AED fetch it in the plan every member gives; not in the bounded one.
    assert {vid for vid, role, _, _ in exhaustive if role == "aed"} & {"u0", "u1", "u2"}
    assert _plan(alert.input(bounded)) != exhaustive
    assert not covers(role_policy(alert.input(bounded)), alert.input(bounded), coverage)
    assert _rows(await alert.checked(bounded, coverage)) == exhaustive
