"""Does bounding the live-position search change plans? `python -m bench.plans`.

On the data a bench run loaded (`--database`, `--redis-db`; run `python -m bench` first), plans
`--points` random urban alert points twice: with the service's search (per travel mode, the
members nearest the patient and nearest each route AED that the plan can use:
dispatch.planner.search_bounds; or, with `--cap N`, each mode's N nearest) and with the same
search unbounded. It prints how many plans differ (volunteer, role or order), how many have
fewer offers, and how much later the first AED or the first CPR responder would arrive, with the
search's time and how many candidates it found. No HTTP, nothing stored: the planner and the
search are called in this process.

    RESCUE_ADMIN_TOKEN=... .venv/bin/python -m bench.plans --points 1000 --redis-db 9
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import time
from typing import Any

import asyncpg
from redis.asyncio import Redis

from bench import data
from bench.measure import alert_points
from dispatch.models import Plan, PlanInput, Role
from dispatch.service import bounds_for, local_time, route_aeds
from dispatch.setup import build_config
from geo import AedIndex
from rescue.aeds.models import indexed_aed
from rescue.aeds.queries import INDEXABLE_AEDS
from rescue.settings import Settings
from volunteers.positions import search_candidates

UNBOUNDED = 1_000_000


def _first(plan: Plan, role: Role) -> float | None:
    etas = [a.eta_s for a in plan.responders if a.role is role]
    return min(etas) if etas else None


def _q(values: list[float], f: float) -> float:
    ordered = sorted(values)
    return ordered[int(f * (len(ordered) - 1))] if ordered else 0.0


async def compare(
    database_url: str,
    redis_url: str,
    points: int,
    seed: int,
    cap: int | None,
    budget_s: int | None,
) -> str:
    """The comparison's summary line (at the alert's time budget, or `budget_s`: a wave's)."""
    config = build_config(Settings.from_env())
    conn = await asyncpg.connect(database_url)
    try:
        aeds = AedIndex(indexed_aed(r) for r in await conn.fetch(INDEXABLE_AEDS))
    finally:
        await conn.close()
    redis = Redis.from_url(redis_url, decode_responses=True)  # as the service's client
    now = dt.datetime.now(dt.UTC)
    at_local = local_time(now, config)
    budget = budget_s or config.time_budget_s
    reach = config.reach_by_mode(budget)
    differ = fewer = 0
    later_aed: list[float] = []
    later_cpr: list[float] = []
    times: list[float] = []
    found: list[float] = []
    try:
        for lat, lng in alert_points(points, seed):
            nearby = route_aeds(aeds, config, lat=lat, lng=lng, budget_s=budget, at_local=at_local)
            plans = []
            for bound in (True, False):
                started = time.perf_counter()
                how: dict[str, Any] = {"limit": UNBOUNDED}
                if bound and cap is not None:
                    how = {"limit": cap}
                elif bound:
                    bounds = bounds_for(
                        config, budget_s=budget, aeds=nearby,
                        offers_aed=config.offers_aed, offers_cpr=config.offers_cpr,
                    )  # fmt: skip
                    assert bounds is not None  # the default strategy's
                    how = {
                        "limit": bounds.nearest, "waypoints": bounds.waypoints,
                        "per_waypoint": bounds.per_aed,
                    }  # fmt: skip
                candidates, _, _ = await search_candidates(
                    redis, lat=lat, lng=lng, radius_m=reach, now=time.time(),
                    ttl_s=10**9, at_local=at_local, **how,
                )  # fmt: skip
                if bound:
                    times.append((time.perf_counter() - started) * 1000)
                    found.append(len(candidates))
                inp = PlanInput(
                    lat=lat, lng=lng, budget_s=budget, candidates=candidates, aeds=nearby,
                    model=config.model, offers_aed=config.offers_aed, offers_cpr=config.offers_cpr,
                )  # fmt: skip
                plans.append(config.strategy(inp))
            bounded, exhaustive = plans
            key = [(a.volunteer_id, a.role) for a in bounded.responders]
            differ += key != [(a.volunteer_id, a.role) for a in exhaustive.responders]
            fewer += len(bounded.responders) < len(exhaustive.responders)
            for role, later in ((Role.AED, later_aed), (Role.CPR, later_cpr)):
                b, e = _first(bounded, role), _first(exhaustive, role)
                if e is not None and (b is None or b > e + 0.5):
                    later.append(float("inf") if b is None else b - e)
    finally:
        await redis.aclose()
    return (
        f"{points} points, {budget} s budget, "
        f"{'the planned bounds' if cap is None else f'at most {cap} members per mode'} "
        "vs unbounded: "
        f"{differ} plans differ, "
        f"{fewer} with fewer offers; first AED later in {len(later_aed)} "
        f"(median {_q(later_aed, 0.5):.0f} s), first CPR later in {len(later_cpr)}; "
        f"candidates median {_q(found, 0.5):.0f} p90 {_q(found, 0.9):.0f}; "
        f"search median {_q(times, 0.5):.2f} ms p90 {_q(times, 0.9):.2f} ms"
    )


def main(argv: list[str]) -> None:
    """`python -m bench.plans [--points N] [--cap N] [--budget S] [--database D] [--redis-db N]`."""
    p = argparse.ArgumentParser(prog="python -m bench.plans", description=__doc__)
    p.add_argument("--points", type=int, default=1000)
    p.add_argument(
        "--cap", type=int, default=None,
        help="members per mode nearest the patient, instead of the service's planned bounds",
    )  # fmt: skip
    p.add_argument(
        "--budget", type=int, default=None,
        help="time budget in seconds (default: the alert's; an escalation wave's is wider)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=777)
    p.add_argument("--database", default=data.BENCH_DATABASE)
    p.add_argument("--redis-db", type=int, default=data.BENCH_REDIS_DB)
    a = p.parse_args(argv)
    database_url, redis_url = data.bench_urls(a.database, a.redis_db)
    print(asyncio.run(compare(database_url, redis_url, a.points, a.seed, a.cap, a.budget)))


if __name__ == "__main__":
    main(sys.argv[1:])
