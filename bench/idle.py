"""What the service does with nothing to do: `python -m bench.idle --variant NAME=TREE ...`.

Most of a city's day has no alert, yet every worker's timers run (escalation rounds, the bus's
blocked reads and relay polls, the callbacks' loop, the position pruner). On the data a bench
run left loaded (`--database`, `--redis-db`), this starts each variant's service in turn (a
source tree, as `bench.ab`'s), lets it settle for `--settle-s` seconds, then counts over
`--seconds` seconds without a request: the workers' messages (system calls that read and wrote,
wake-ups), PostgreSQL's transactions and Redis's commands, and the CPU of each; `--rounds`
times, alternating the variants. It prints each round's figures per second.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from bench.ab import _variant
from bench.measure import (
    Target,
    _say,
    counters,
    parse_tool,
    run_tool,
    service_server,
    settle_incidents,
    tool_options,
)
from bench.run import _write


def parse(argv: list[str]) -> tuple[argparse.Namespace, Path]:
    """The options and the results file."""
    p = argparse.ArgumentParser(prog="python -m bench.idle", description=__doc__)
    p.add_argument("--variant", action="append", required=True, help="NAME=TREE[:CLASS]")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--seconds", type=float, default=30.0, help="how long each count runs")
    p.add_argument("--settle-s", type=float, default=10.0, help="from start to the count")
    p.add_argument("--workers", type=int, default=2)
    return parse_tool(p, argv, "idle")


async def main(a: argparse.Namespace, out: Path, argv: list[str]) -> None:
    """Each variant in turn, `rounds` times: start, settle, count, stop."""
    o = tool_options(a.database, a.redis_db, out, workers=a.workers)
    await settle_incidents(o.database_url, forget_receivers=True)
    variants = [_variant(v) for v in a.variant]
    results: dict[str, Any] = {
        "command": "python -m bench.idle " + " ".join(argv),
        "variants": {name: {"tree": str(tree), "rounds": []} for name, tree, _ in variants},
    }
    for n in range(a.rounds):
        for name, tree, worker_class in variants:
            server = service_server(o, out.with_suffix(".log"))
            server.cwd, server.worker_class = tree, worker_class
            server.start()
            try:
                target = Target(name, server, key=None)
                await asyncio.sleep(a.settle_s)
                before, start = await counters(target, o), time.monotonic()
                await asyncio.sleep(a.seconds)
                after, elapsed = await counters(target, o), time.monotonic() - start
            finally:
                server.stop()
            per_s = {key: round((after[key] - before[key]) / elapsed, 2) for key in before}
            results["variants"][name]["rounds"].append(per_s)
            print(f"round {n + 1} {name}, per second: {per_s}", flush=True)
    _write(out, results)
    _say(f"written to {out}")


if __name__ == "__main__":
    run_tool(parse, main)
