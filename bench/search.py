"""The live-position search's own cost in Redis: `python -m bench.search`.

On the data a bench run loaded (`--database`, `--redis-db`; positions are marked fresh first),
runs the search script (volunteers.scripts.SEARCH) at `--points` random urban points, at the
alert's reach and at a wave's wider one (`--wave-s`), each variant in turn for `--rounds` rounds,
and prints per variant the median over rounds of Redis's CPU per call (`INFO commandstats`,
EVALSHA), of the client's round trip and of the reply's size (the elements of its list of
members found, a layout a variant may change). A variant is a source tree whose
volunteers/scripts.py holds the script (`--variant before=/tmp/before`); without one, this
tree's. Nothing else may use the Redis server meanwhile: commandstats are the
server's.

    RESCUE_ADMIN_TOKEN=... .venv/bin/python -m bench.search --redis-db 9 \\
        --variant before=/tmp/before --variant after=.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench import data
from bench.measure import POSITION_TTL_S, alert_points
from dispatch.setup import build_config
from rescue.settings import Settings
from volunteers.constants import ENGAGED, META, POSITIONS_SEEN
from volunteers.positions import MODE_CAP
from volunteers.scripts import MODE_KEYS, MODES

KEYS = [*MODE_KEYS, POSITIONS_SEEN, META, ENGAGED]


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


async def measure(
    redis_url: str, variants: dict[str, str], *, points: int, rounds: int, wave_s: float, seed: int
) -> str:
    """The table: per variant, Redis µs per call, client ms per call, reply elements."""
    config = build_config(Settings.from_env().replace(position_ttl_s=POSITION_TTL_S))
    reaches = [config.reach_by_mode(config.time_budget_s), config.reach_by_mode(wave_s)]
    args_of = [[float(r.get(m, 0.0)) for m in MODES] for r in reaches]
    where = alert_points(points, seed)
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
                for lat, lng in where:
                    for reach in args_of:
                        argv: list[Any] = [lng, lat, *reach, MODE_CAP, time.time() - POSITION_TTL_S]
                        t0 = time.perf_counter()
                        out = await script(keys=KEYS, args=argv)
                        lap.append((time.perf_counter() - t0) * 1000)
                        fields[name].append(len(out[3]))
                calls1, usec1 = await _evalsha_usec(redis)
                per_call[name].append((usec1 - usec0) / max(1, calls1 - calls0))
                client[name].append(statistics.median(lap))
    finally:
        await redis.aclose()
    lines = [
        f"search script, {points} points x (alert reach, {wave_s:.0f} s wave reach), "
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
    a = p.parse_args(argv)
    variants = {}
    for spec in a.variant or ["this=."]:
        name, sep, tree = spec.partition("=")
        if not sep:
            p.error(f"--variant {spec!r}: expected NAME=TREE")
        variants[name] = search_script(Path(tree))
    _, redis_url = data.bench_urls(a.database, a.redis_db)
    print(
        asyncio.run(
            measure(
                redis_url, variants, points=a.points, rounds=a.rounds, wave_s=a.wave_s, seed=a.seed
            )
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
