"""The alert after a quiet spell: `python -m bench.quiet --variant NAME=TREE ... [--floor]`.

A city's cardiac-arrest alerts come minutes or hours apart, so the alert a 120 center sends is
nearly always the first in a while; the other figures measure alerts in a stream. On the data
a bench run left loaded (`--database`, `--redis-db`), this starts each variant's service (a
source tree, as `bench.ab`'s) and, with `--floor`, the floor; warms each with a few alerts;
then, `--cycles` times: waits `--quiet-s` seconds with no request at all (the workers' own
timers still run: escalation sweeps, the position pruner), sends `--alerts` alerts one after
another to each server in turn (the order rotating each cycle), each on a new connection as a
center's client would open after a quiet spell, and closes their incidents so that no wave
escalates into the quiet. It prints each server's latencies, the first alert of each cycle
apart, and writes them to `--out`. Run it on a quiet machine: it measures single alerts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from redis.asyncio import Redis

from bench import data
from bench.ab import _variant
from bench.floor import CREATE_TABLE
from bench.measure import (
    _say,
    alert_points,
    create_center,
    floor_server,
    parse_tool,
    run_tool,
    service_server,
    settle_incidents,
    tool_options,
)
from bench.run import _write
from bench.server import Gunicorn

WARMUP_ALERTS = 20


async def _alert(url: str, key: str | None, point: tuple[float, float], external_id: str) -> float:
    """One alert on a new connection (to the floor's `/alert` when `key` is None); its latency
    (ms), from the request to the end of the body."""
    body = {
        "external_id": external_id,
        "location": {"lat": point[0], "lng": point[1]},
        "category": "cardiac_arrest",
    }
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    path = "/v1/alerts" if key is not None else "/alert"
    raw = json.dumps(body).encode()
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        async with session.post(f"{url}{path}", data=raw, headers=headers) as resp:
            await resp.read()
            elapsed = (time.perf_counter() - started) * 1000
            if resp.status != 201:
                raise RuntimeError(f"alert {external_id}: HTTP {resp.status}")
    return round(elapsed, 3)


def parse(argv: list[str]) -> tuple[argparse.Namespace, Path]:
    """The options and the results file."""
    p = argparse.ArgumentParser(prog="python -m bench.quiet", description=__doc__)
    p.add_argument("--variant", action="append", required=True, help="NAME=TREE[:CLASS]")
    p.add_argument("--cycles", type=int, default=4)
    p.add_argument("--quiet-s", type=float, default=330.0, help="seconds without a request")
    p.add_argument("--alerts", type=int, default=3, help="alerts per variant and cycle")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--floor", action="store_true", help="also the floor (bench/floor.py)")
    p.add_argument("--seed", type=int, default=1983)
    return parse_tool(p, argv, "quiet")


async def main(a: argparse.Namespace, out: Path, argv: list[str]) -> None:
    """Start every variant, then alternate quiet spells and alerts."""
    o = tool_options(a.database, a.redis_db, out, workers=a.workers, seed=a.seed)
    variants = [_variant(v) for v in a.variant]
    names = [name for name, _, _ in variants] + (["floor"] if a.floor else [])
    await settle_incidents(o.database_url, forget_receivers=True)
    points = alert_points(WARMUP_ALERTS + a.cycles * a.alerts, a.seed)
    results: dict[str, Any] = {
        "command": "python -m bench.quiet " + " ".join(argv),
        "quiet_s": a.quiet_s,
        "variants": {name: {"warmup": [], "cycles": []} for name in names},
    }
    servers: list[tuple[str, Gunicorn, str | None]] = []
    try:
        for name, tree, wc in variants:
            server = service_server(o, out.with_suffix(".log"))
            server.cwd, server.worker_class = tree, wc
            server.start()
            results["variants"][name]["tree"] = str(tree)
            servers.append((name, server, await create_center(server.url)))
        if a.floor:
            conn = await asyncpg.connect(o.database_url)
            try:
                await conn.execute(CREATE_TABLE)
            finally:
                await conn.close()
            server = floor_server(o, out.with_suffix(".log"))
            server.worker_class = variants[0][2]
            server.start()
            servers.append(("floor", server, None))
        prefix = f"quiet-{int(time.time())}-"
        for name, server, key in servers:
            for i in range(WARMUP_ALERTS):
                latency = await _alert(server.url, key, points[i], f"{prefix}{name}-w{i}")
                results["variants"][name]["warmup"].append(latency)
        await settle_incidents(o.database_url)
        for cycle in range(a.cycles):
            redis = Redis.from_url(o.redis_url)
            await data.refresh_seen(redis)  # positions stay fresh (the bench's TTL is an hour)
            await redis.aclose()
            _say(f"cycle {cycle + 1}: {a.quiet_s:.0f} s of quiet")
            await asyncio.sleep(a.quiet_s)
            k = cycle % len(servers)
            for name, server, key in servers[k:] + servers[:k]:
                latencies = []
                for j in range(a.alerts):
                    n = WARMUP_ALERTS + cycle * a.alerts + j
                    latencies.append(
                        await _alert(server.url, key, points[n], f"{prefix}{name}-{cycle}-{j}")
                    )
                results["variants"][name]["cycles"].append(latencies)
                _say(f"cycle {cycle + 1} {name}: {latencies} ms")
            await settle_incidents(o.database_url)
            _write(out, results)
    finally:
        for _, server, _ in servers:
            server.stop()
    for name, v in results["variants"].items():
        firsts = [c[0] for c in v["cycles"]]
        rest = [x for c in v["cycles"] for x in c[1:]]
        v["first_median_ms"] = statistics.median(firsts) if firsts else None
        v["rest_median_ms"] = statistics.median(rest) if rest else None
        v["warmup_median_ms"] = statistics.median(v["warmup"]) if v["warmup"] else None
        print(
            f"{name}: first alert after {a.quiet_s:.0f} s of quiet {firsts} (median "
            f"{v['first_median_ms']}), the next {rest} (median {v['rest_median_ms']}), "
            f"warm-up median {v['warmup_median_ms']} ms"
        )
    _write(out, results)
    _say(f"written to {out}")


if __name__ == "__main__":
    run_tool(parse, main)
