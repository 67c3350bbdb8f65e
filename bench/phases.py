"""Where an alert's own time goes, phase by phase: `python -m bench.phases`.

On the data a bench run loaded (`--database`, `--redis-db`), runs the alert's steps in this
process, without HTTP and without the bus's background work, at `--points` random urban points:
the AED index, the live-position search (bounded by those AEDs), the planner, the draft of the
one statement, the statement itself (committed) and rendering the response. Prints each phase's
median, p90 and p99. The incidents it creates are closed at the end.

`--gap-ms` pauses before each alert, as alerts that come apart leave the process and the
machine idle between them: on the 2-vCPU machines of these sessions every phase, its CPU alone
too, runs slower after an idle spell (about 2x after 50 ms, the gap of alerts at 20/s), which
back-to-back alerts never show.

    RESCUE_ADMIN_TOKEN=... .venv/bin/python -m bench.phases --points 400 --redis-db 9
    RESCUE_ADMIN_TOKEN=... .venv/bin/python -m bench.phases --points 400 --gap-ms 50
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import hashlib
import os
import sys
import time

from redis.asyncio import Redis

from bench import data
from bench.measure import POSITION_TTL_S, alert_points, settle_incidents
from dispatch import queries, service
from dispatch.models import PlanInput
from dispatch.render import render_plan
from dispatch.setup import build_config
from geo import AedIndex, Crs
from rescue import db, heap
from rescue.aeds.models import indexed_aed
from rescue.aeds.queries import INDEXABLE_AEDS
from rescue.http import json_response
from rescue.settings import Settings

PHASES = ("aeds", "search", "plan", "draft", "insert", "render", "total")


async def measure(
    database_url: str, redis_url: str, points: int, seed: int, gap_ms: float = 0.0
) -> str:
    """The table of phase timings."""
    # As the bench runs the service: positions loaded minutes ago still count, and are fresh.
    config = build_config(Settings.from_env().replace(position_ttl_s=POSITION_TTL_S))
    pool = await db.create_pool(database_url)
    redis = Redis.from_url(redis_url, decode_responses=True)  # as the service's client
    await data.refresh_seen(redis)
    times: dict[str, list[float]] = {phase: [] for phase in PHASES}
    offered = 0
    try:
        aeds = AedIndex(indexed_aed(r) for r in await pool.fetch(INDEXABLE_AEDS))
        if os.environ.get("BENCH_GC", "settle") == "settle":
            heap.settle()  # as a worker does once started (rescue/heap.py)
        center = await pool.fetchval("SELECT id FROM dispatch_centers ORDER BY id LIMIT 1")
        if center is None:
            raise SystemExit("no dispatch center in the bench database: run python -m bench first")
        budget = config.time_budget_s
        for n, (lat, lng) in enumerate(alert_points(points, seed)):
            alert = service.Alert(
                center_id=center, external_id=f"phases-{time.time_ns()}-{n}",
                request_hash=hashlib.sha256(str(n).encode()).digest(),
                lat=lat, lng=lng, district=None,
            )  # fmt: skip
            if gap_ms:
                await asyncio.sleep(gap_ms / 1000)
            t0 = time.perf_counter()
            now = dt.datetime.now(dt.UTC)
            at_local = service.local_time(now, config)
            nearby = service.route_aeds(
                aeds, config, lat=lat, lng=lng, budget_s=budget, at_local=at_local
            )
            bounds = service.bounds_for(
                config, budget_s=budget, aeds=nearby,
                offers_aed=config.offers_aed, offers_cpr=config.offers_cpr,
            )  # fmt: skip
            t1 = time.perf_counter()
            search_here = functools.partial(
                service.find_candidates,
                redis, config, lat=lat, lng=lng, budget_s=budget, now=now, at_local=at_local,
            )  # fmt: skip
            search = await search_here(bounds=bounds)
            t2 = time.perf_counter()
            inp = PlanInput(
                lat=lat, lng=lng, budget_s=budget, candidates=search.candidates, aeds=nearby,
                model=config.model, offers_aed=config.offers_aed, offers_cpr=config.offers_cpr,
            )  # fmt: skip
            # As the service plans: checked against what the search left unread, and in the
            # rare case that fails, the wider search's plan (its round trip counted here).
            search, inp, plan = await service.checked_plan(
                config, search, inp, functools.partial(search_here, bounds=None)
            )
            offered += len(plan.responders)
            t3 = time.perf_counter()
            draft = service._draft(alert=alert, config=config, search=search, plan=plan, now=now)
            t4 = time.perf_counter()
            async with pool.acquire() as conn:
                await conn.fetchrow(queries.INSERT_ALERT, *draft.args(None))
            t5 = time.perf_counter()
            json_response(render_plan(draft.stored, status="open", crs=Crs.WGS84, config=config))
            t6 = time.perf_counter()
            marks = (t0, t1, t2, t3, t4, t5, t6)
            for phase, start, end in zip(PHASES, marks, marks[1:], strict=False):
                times[phase].append((end - start) * 1000)
            times["total"].append((t6 - t0) * 1000)
    finally:
        await redis.aclose()
        await pool.close()
        await settle_incidents(database_url)
    gap = f", {gap_ms:g} ms apart" if gap_ms else ", back to back"
    lines = [
        f"{points} alerts in process{gap} (ms): phase median p90 p99; {offered} responders offered"
    ]
    for phase, values in times.items():
        ordered = sorted(values)
        q = [ordered[int(f * (len(ordered) - 1))] for f in (0.5, 0.9, 0.99)]
        lines.append(f"{phase:7s} {q[0]:7.2f} {q[1]:7.2f} {q[2]:7.2f}")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    """`python -m bench.phases [--points N] [--gap-ms MS] [--database D] [--redis-db N]`."""
    p = argparse.ArgumentParser(prog="python -m bench.phases", description=__doc__)
    p.add_argument("--points", type=int, default=400)
    p.add_argument("--seed", type=int, default=991)
    p.add_argument("--gap-ms", type=float, default=0.0, help="idle this long before each alert")
    p.add_argument("--database", default=data.BENCH_DATABASE)
    p.add_argument("--redis-db", type=int, default=data.BENCH_REDIS_DB)
    a = p.parse_args(argv)
    database_url, redis_url = data.bench_urls(a.database, a.redis_db)
    print(asyncio.run(measure(database_url, redis_url, a.points, a.seed, a.gap_ms)))


if __name__ == "__main__":
    main(sys.argv[1:])
