"""`python -m bench`: the benchmarks of BENCHMARKS.md (`make bench BENCH_ARGS="..."`)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path

from bench import data
from bench.measure import Options
from bench.run import run

_DEFAULTS = {
    # scale: alerts, ramp start, ramp step, ramp max, ramp step seconds, ws alerts
    "tiny": (20, 100, 100, 200, 1.0, 3),
    "qingdao": (1000, 2000, 1000, 30000, 6.0, 50),
    "province": (1000, 2000, 1000, 30000, 6.0, 50),
}


def parse(argv: list[str]) -> Options:
    """Options from the command line (and DATABASE_URL / REDIS_URL for the servers)."""
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    p.add_argument(
        "--worker-class",
        default="aiohttp.GunicornUVLoopWebWorker",
        help="gunicorn worker class (deployed: uvloop; aiohttp.GunicornWebWorker: asyncio)",
    )
    p.add_argument("--scale", choices=sorted(data.SCALES), default="qingdao")
    p.add_argument("--alerts", type=int, help="alerts per measurement (default 1000)")
    p.add_argument("--alert-concurrency", type=int, default=2, help="alert connections")
    p.add_argument(
        "--alert-rate",
        type=float,
        default=20.0,
        help="open-loop alerts/s of the paced phase (default 20; 0: skip it)",
    )
    p.add_argument("--position-rate", type=int, help="background position updates/s (3000)")
    p.add_argument("--position-procs", type=int, default=2, help="position load processes")
    p.add_argument("--ramp-start", type=int, help="first rate of the sustained-rate search")
    p.add_argument("--ramp-step", type=int, help="rate added per step")
    p.add_argument("--ramp-max", type=int, help="highest rate tried")
    p.add_argument("--ramp-step-s", type=float, help="seconds measured per step")
    p.add_argument("--ws-alerts", type=int, help="alerts timed to the WebSocket offer (50)")
    p.add_argument(
        "--no-callbacks",
        action="store_true",
        help="the dispatch center registers no callback URL (as before session 6)",
    )
    p.add_argument("--seed", type=int, default=1983)
    p.add_argument("--skip-province", action="store_true", help="only the chosen scale")
    p.add_argument("--database", default=data.BENCH_DATABASE, help="the bench's own database")
    p.add_argument("--redis-db", type=int, default=data.BENCH_REDIS_DB, help="its own Redis db")
    p.add_argument(
        "--owned-redis-db",
        action="store_true",
        help="flush --redis-db even if it is 0 or 15: the caller owns it (the tests' own db)",
    )
    p.add_argument("--out", type=Path, help="results file (bench/results/<timestamp>.json)")
    a = p.parse_args(argv)
    alerts, r_start, r_step, r_max, r_secs, ws = _DEFAULTS[a.scale]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = a.out or Path(__file__).resolve().parent / "results" / f"{stamp}-{a.scale}.json"
    database_url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/rescue")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    return Options(
        workers=a.workers,
        worker_class=a.worker_class,
        scale=a.scale,
        alerts=a.alerts or alerts,
        alert_concurrency=a.alert_concurrency,
        alert_rate=a.alert_rate,
        position_rate=a.position_rate or (3000 if a.scale != "tiny" else 200),
        position_procs=a.position_procs,
        ramp_start=a.ramp_start or r_start,
        ramp_step=a.ramp_step or r_step,
        ramp_max=a.ramp_max or r_max,
        ramp_step_s=a.ramp_step_s or r_secs,
        ws_alerts=a.ws_alerts if a.ws_alerts is not None else ws,
        seed=a.seed,
        province=not a.skip_province,
        database_url=data.with_database(database_url, a.database),
        redis_url=data.with_redis_db(redis_url, a.redis_db),
        out=out,
        callbacks=not a.no_callbacks,
        owned_redis_db=a.owned_redis_db,
    )


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark."""
    argv = sys.argv[1:] if argv is None else argv
    # SIGTERM unwinds like Ctrl-C, so the servers started are stopped on the way out.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    asyncio.run(run(parse(argv), argv))


if __name__ == "__main__":
    main()
