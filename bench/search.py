"""The live-position search's own cost in Redis: `python -m bench.search`.

On the data a bench run loaded (`--database`, `--redis-db`; positions are marked fresh first),
runs the search script (volunteers.scripts.SEARCH) at `--points` random urban points, at the
alert's reach and at a wave's wider one (`--wave-s`), each variant in turn for `--rounds` rounds,
and prints per variant the median over rounds of Redis's CPU per call (`INFO commandstats`,
EVALSHA), of the client's round trip and of the reply's size (the elements of its list of
members found, a layout a variant may change). The search is bounded as the service bounds it
(the planner's bounds around the route AEDs, dispatch.planner.search_bounds; session 14), or
with `--cap N` as before it, each mode's N nearest: compare a tree older than session 14 with
`--cap`, since its script takes no waypoints. A variant is a source tree whose
volunteers/scripts.py holds the script (`--variant before=/tmp/before`); without one, this
tree's. Nothing else may use the Redis server meanwhile: commandstats are the server's.

    RESCUE_ADMIN_TOKEN=... .venv/bin/python -m bench.search --redis-db 9 \\
        --variant before=/tmp/before --variant after=.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.util
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
from redis.asyncio import Redis

from bench import data
from bench.measure import POSITION_TTL_S, alert_points
from dispatch.models import DispatchConfig
from dispatch.service import bounds_for, local_time, route_aeds
from dispatch.setup import build_config
from geo import AedIndex
from rescue.aeds.models import indexed_aed
from rescue.aeds.queries import INDEXABLE_AEDS
from rescue.settings import Settings
from volunteers.positions import SEARCH_KEYS, search_args

KEYS = SEARCH_KEYS


def search_script(tree: Path) -> str:
    """The SEARCH script of a source tree's volunteers/scripts.py."""
    path = tree / "volunteers" / "scripts.py"
    spec = importlib.util.spec_from_file_location(f"bench_search_{abs(hash(path))}", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"no volunteers/scripts.py in {tree}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return str(module.SEARCH)


async def _evalsha_usec(redis: Redis) -> tuple[int, int]:
    stats = (await redis.info("commandstats")).get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0)), int(stats.get("usec", 0))


async def calls(
    database_url: str,
    config: DispatchConfig,
    *,
    points: int,
    seed: int,
    wave_s: float,
    cap: int | None,
) -> list[dict[str, Any]]:
    """The search's arguments at each point, at the alert's budget and at a wave's, as the
    service bounds it (or each mode's `cap` nearest); min_seen is set at each call."""
    conn = await asyncpg.connect(database_url)
    try:
        aeds = AedIndex(indexed_aed(r) for r in await conn.fetch(INDEXABLE_AEDS))
    finally:
        await conn.close()
    at_local = local_time(dt.datetime.now(dt.UTC), config)
    out = []
    for lat, lng in alert_points(points, seed):
        for budget in (config.time_budget_s, wave_s):
            nearby = route_aeds(aeds, config, lat=lat, lng=lng, budget_s=budget, at_local=at_local)
            bounds = None if cap else bounds_for(
                config, budget_s=budget, aeds=nearby,
                offers_aed=config.offers_aed, offers_cpr=config.offers_cpr,
            )  # fmt: skip
            out.append({
                "lat": lat, "lng": lng, "radius_m": config.reach_by_mode(budget),
                "limit": bounds.nearest if bounds else cap,
                "waypoints": bounds.waypoints if bounds else (),
                "per_waypoint": bounds.per_aed if bounds else 0,
            })  # fmt: skip
    return out


async def measure(
    database_url: str,
    redis_url: str,
    variants: dict[str, str],
    *,
    points: int,
    rounds: int,
    wave_s: float,
    seed: int,
    cap: int | None,
) -> str:
    """The table: per variant, Redis µs per call, client ms per call, reply elements."""
    config = build_config(Settings.from_env().replace(position_ttl_s=POSITION_TTL_S))
    each = await calls(database_url, config, points=points, seed=seed, wave_s=wave_s, cap=cap)
    redis = Redis.from_url(redis_url, decode_responses=True)  # as the service's client
    per_call: dict[str, list[float]] = {name: [] for name in variants}
    client: dict[str, list[float]] = {name: [] for name in variants}
    fields: dict[str, list[int]] = {name: [] for name in variants}
    try:
        await data.refresh_seen(redis)
        scripts = {name: redis.register_script(text) for name, text in variants.items()}
        for _ in range(rounds):
            for name, script in scripts.items():
                calls0, usec0 = await _evalsha_usec(redis)
                lap: list[float] = []
                for call in each:
                    argv = search_args(**call, min_seen=time.time() - POSITION_TTL_S)
                    t0 = time.perf_counter()
                    out = await script(keys=KEYS, args=argv)
                    lap.append((time.perf_counter() - t0) * 1000)
                    fields[name].append(len(out[3]))
                calls1, usec1 = await _evalsha_usec(redis)
                per_call[name].append((usec1 - usec0) / max(1, calls1 - calls0))
                client[name].append(statistics.median(lap))
    finally:
        await redis.aclose()
    bound = "the planned bounds" if cap is None else f"{cap} per mode"
    lines = [
        f"search script, {points} points x (alert reach, {wave_s:.0f} s wave reach), {bound}, "
        f"{rounds} rounds: median of rounds"
    ]
    for name in variants:
        lines.append(
            f"{name:10s} Redis {statistics.median(per_call[name]):7.0f} us/call"
            f"  client {statistics.median(client[name]):6.2f} ms"
            f"  reply {statistics.median(fields[name]):5.0f}"
            f"  rounds (us) {[round(x) for x in per_call[name]]}"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    """`python -m bench.search [--variant NAME=TREE]... [--points N] [--rounds N]`."""
    p = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__)
    p.add_argument("--variant", action="append", default=[], help="NAME=source tree")
    p.add_argument("--points", type=int, default=200)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--wave-s", type=float, default=600.0, help="a wave's time budget (s)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--database", default=data.BENCH_DATABASE)
    p.add_argument("--redis-db", type=int, default=data.BENCH_REDIS_DB)
    p.add_argument(
        "--cap", type=int, default=None,
        help="each mode's N nearest, instead of the service's planned bounds",
    )  # fmt: skip
    a = p.parse_args(argv)
    variants = {}
    for spec in a.variant or ["this=."]:
        name, sep, tree = spec.partition("=")
        if not sep:
            p.error(f"--variant {spec!r}: expected NAME=TREE")
        variants[name] = search_script(Path(tree))
    database_url, redis_url = data.bench_urls(a.database, a.redis_db)
    table = measure(
        database_url, redis_url, variants, points=a.points, rounds=a.rounds, wave_s=a.wave_s,
        seed=a.seed, cap=a.cap,
    )  # fmt: skip
    print(asyncio.run(table))


if __name__ == "__main__":
    main(sys.argv[1:])
