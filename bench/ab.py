"""Before/after on a noisy machine: `python -m bench.ab --variant NAME=TREE[:WORKER_CLASS] ...`.

Loads the Qingdao scale once into the bench's own stores, then runs every variant (a source
tree, e.g. `git archive HEAD | tar -x -C /tmp/before`, and a worker class) in turn, round after
round, the order rotating each round, so that the other load on a shared machine falls on all
variants alike. The incidents of a round are closed before the next, so that their escalation
does not load the next variant. Each round of a variant starts its gunicorn from its tree and
measures the alert alone (and at `--alert-rate`/s), the alert under `--position-rate` updates/s
(and at `--alert-rate`/s under them) and one step of position updates at `--burst-rate`/s.
The medians over the rounds are printed; every round is written to `--out`.

With `--database-per-variant` each variant runs on its own copy of the loaded database
(`<database>_<name>`, copied afresh at the start and dropped at the end unless
`--keep-copies`), which its service migrates forward at start: variants may then differ in their
migrations. The copies are made from what the load left, migrated by the tree this runs from:
run it from the oldest tree. Redis stays shared.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import statistics
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench import data, stats
from bench.measure import (
    Options,
    Target,
    _say,
    alert_points,
    alerts_alone,
    alerts_under_positions,
    between_phases,
    create_center,
    receiver_server,
    run_load,
    run_tool,
    service_server,
    settle_incidents,
    vacuum,
)
from bench.profile import profiled
from bench.run import _write
from bench.server import Gunicorn
from rescue.area import load_service_area


def _variant(text: str) -> tuple[str, Path, str]:
    name, _, rest = text.partition("=")
    tree, _, worker_class = rest.partition(":")
    return name, Path(tree).resolve(), worker_class or "aiohttp.GunicornUVLoopWebWorker"


async def _burst(t: Target, riders: list[data.Rider], o: Options, rate: int) -> dict[str, Any]:
    per = rate / o.position_procs
    specs = [
        {"positions": t.positions(riders[i :: o.position_procs], per, duration_s=6.0, warmup_s=1.0)}
        for i in range(o.position_procs)
    ]
    return stats.merge_positions([r["positions"] for r in await run_load(specs)])


async def _round(
    name: str,
    tree: Path,
    worker_class: str,
    o: Options,
    loaded: data.Loaded,
    burst: int,
    n: int,
    profile: Path | None = None,
    receiver: Gunicorn | None = None,
) -> dict[str, Any]:
    base = service_server(o, o.out.with_suffix(".log"))
    server = Gunicorn(
        base.app, workers=o.workers, env={}, log=base.log, worker_class=worker_class, cwd=tree
    )
    server.env = base.env
    server.start()
    try:
        callback_url = f"{receiver.url}/callbacks" if receiver is not None else None
        key = await create_center(server.url, callback_url)
        t = Target(name, server, key=key, receiver=receiver)
        riders = loaded.riders[1:]

        def spy(phase: str) -> contextlib.AbstractContextManager[Any]:
            if profile is None:
                return contextlib.nullcontext()
            return profiled(server.worker_pids(), profile / f"{name}-r{n + 1}-{phase}")

        await alerts_alone(t, alert_points(50, o.seed + 1), o, f"ab{n}-{name}-warm")
        points = alert_points(o.alerts, o.seed + 1000 * n)
        with spy("alerts"):
            out: dict[str, Any] = {"alert_alone": await alerts_alone(t, points, o, f"ab{n}-{name}")}
        if o.alert_rate:
            await between_phases(o, t, out, "before_alert_paced")
            with spy("paced"):
                out["alert_paced"] = await alerts_alone(
                    t, points, o, f"ab{n}-{name}", rate=o.alert_rate
                )
        if o.position_rate:
            await between_phases(o, t, out, "before_alerts_under_positions")
            with spy("mixed"):
                alerts, positions = await alerts_under_positions(
                    t, points, riders, o, f"ab{n}-{name}"
                )
            out["alert_under_positions"] = alerts
            out["positions_during_alerts"] = positions
            if o.alert_rate:
                await between_phases(o, t, out, "before_alerts_paced_under_positions")
                with spy("mixed-paced"):
                    alerts, _ = await alerts_under_positions(
                        t, points, riders, o, f"ab{n}-{name}", rate=o.alert_rate
                    )
                out["alert_paced_under_positions"] = alerts
        if burst:
            await between_phases(o, t, out, "before_position_burst")
            with spy("positions"):
                out["position_burst"] = await _burst(t, riders, o, burst)
        out["rss_kib"] = server.rss_kib()
        return out
    finally:
        server.stop()


def _figures(r: dict[str, Any]) -> dict[str, float | None]:
    f: dict[str, float | None] = {}
    for pct in ("p50", "p95", "p99"):
        f[f"alert alone {pct} (ms)"] = r["alert_alone"][pct]
    for key, value in r["alert_alone"].get("cost_per_alert", {}).items():
        f[f"alert alone: {key} per alert"] = value
    for phase in ("alert_alone", "alert_paced"):
        received = r.get(phase, {}).get("callbacks")
        if received:
            f[f"{phase}: callbacks per alert"] = received["per_alert"]
            f[f"{phase}: incident created → callback p99 (ms)"] = received["created_lag_ms"]["p99"]
    if "alert_paced" in r:
        for pct in ("p50", "p95", "p99"):
            f[f"alert paced {pct} (ms)"] = r["alert_paced"][pct]
        for key, value in r["alert_paced"].get("cost_per_alert", {}).items():
            f[f"alert paced: {key} per alert"] = value
    if "alert_under_positions" in r:
        for pct in ("p50", "p99"):
            f[f"alert under positions {pct} (ms)"] = r["alert_under_positions"][pct]
        f["position p99 during alerts (ms)"] = r["positions_during_alerts"]["p99"]
    if "alert_paced_under_positions" in r:
        for pct in ("p50", "p99"):
            f[f"alert paced under positions {pct} (ms)"] = r["alert_paced_under_positions"][pct]
    if "position_burst" in r:
        f["burst: achieved positions/s"] = r["position_burst"]["achieved_rate"]
        f["burst: position p99 (ms)"] = r["position_burst"]["p99"]
    return f


def parse(argv: list[str]) -> tuple[argparse.Namespace, Path]:
    """The options and the results file."""
    p = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    p.add_argument("--variant", action="append", required=True, help="NAME=TREE[:CLASS]")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--alerts", type=int, default=500)
    p.add_argument("--alert-concurrency", type=int, default=2)
    p.add_argument(
        "--alert-rate", type=float, default=0.0, help="also alerts open-loop at this rate/s"
    )
    p.add_argument("--position-rate", type=int, default=3000, help="0: skip that figure")
    p.add_argument("--burst-rate", type=int, default=8000, help="0: skip the position step")
    p.add_argument("--position-procs", type=int, default=2)
    p.add_argument(
        "--no-callbacks", action="store_true", help="the center registers no callback URL"
    )
    p.add_argument("--seed", type=int, default=1983)
    p.add_argument("--database", default=data.BENCH_DATABASE)
    p.add_argument("--redis-db", type=int, default=data.BENCH_REDIS_DB)
    p.add_argument("--out", type=Path)
    p.add_argument(
        "--database-per-variant",
        action="store_true",
        help="each variant on its own copy of the loaded database (variants whose migrations "
        "differ; run from the oldest tree)",
    )
    p.add_argument(
        "--keep-copies",
        action="store_true",
        help="leave --database-per-variant's copies for a look afterwards (a province copy "
        "takes gigabytes): dropped at the end otherwise",
    )
    p.add_argument(
        "--profile",
        type=Path,
        help="record every worker with py-spy into this folder, per round and phase "
        "(python -m bench.profile FILE... summarises)",
    )
    p.add_argument(
        "--no-load",
        action="store_true",
        help="reuse the data already loaded (alerts only: needs --position-rate 0 --burst-rate 0)",
    )
    a = p.parse_args(argv)
    if a.no_load and (a.position_rate or a.burst_rate):
        p.error("--no-load measures alerts only: add --position-rate 0 --burst-rate 0")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = a.out or Path(__file__).resolve().parent / "results" / f"{stamp}-ab.json"
    return a, out


async def main(a: argparse.Namespace, out: Path, argv: list[str]) -> None:
    """Load once, run the variants round-robin, print the medians."""
    database_url, redis_url = data.bench_urls(a.database, a.redis_db)
    o = Options(
        workers=a.workers, worker_class="", scale="qingdao", alerts=a.alerts,
        alert_concurrency=a.alert_concurrency, position_rate=a.position_rate,
        position_procs=a.position_procs, ramp_start=0, ramp_step=0, ramp_max=0,
        ramp_step_s=0.0, ws_alerts=0, seed=a.seed, province=False,
        database_url=database_url, redis_url=redis_url, out=out, alert_rate=a.alert_rate,
        callbacks=not a.no_callbacks,
    )  # fmt: skip
    variants = [_variant(v) for v in a.variant]
    loaded = data.Loaded(aeds=0, volunteers=0, on_duty=0, riders=[], seconds=0.0)
    if not a.no_load:
        _say("loading the Qingdao scale")
        loaded = await data.load(
            o.database_url, o.redis_url, load_service_area(), data.SCALES["qingdao"], seed=o.seed
        )
    stores = {name: o for name, _, _ in variants}
    copies = {name: f"{a.database}_{name}" for name in stores} if a.database_per_variant else {}
    for name, copy in copies.items():
        await data.copy_database(o.database_url, copy)
        stores[name] = dataclasses.replace(o, database_url=data.with_database(o.database_url, copy))
    results: dict[str, Any] = {
        "command": "python -m bench.ab " + " ".join(argv),
        "variants": {name: {"tree": str(tree), "worker_class": wc, "rounds": []}
                     for name, tree, wc in variants},
    }  # fmt: skip
    # One 120 center's receiver for every round (each round's center registers it).
    receiver = receiver_server(o, out.with_suffix(".log")) if o.callbacks else None
    if receiver is not None:
        receiver.start()
    try:
        for n in range(a.rounds):
            k = n % len(variants)
            for name, tree, wc in variants[k:] + variants[:k]:
                ov = stores[name]
                await settle_incidents(ov.database_url, forget_receivers=True)
                await vacuum(ov.database_url)
                redis = Redis.from_url(o.redis_url)
                await data.refresh_seen(redis)
                await redis.aclose()
                r = await _round(name, tree, wc, ov, loaded, a.burst_rate, n, a.profile, receiver)
                results["variants"][name]["rounds"].append(r)
                _say(f"round {n + 1} {name}: {_figures(r)}")
                _write(out, results)
    finally:
        # The last round's incidents too: left open, they escalate (and their callbacks retry
        # against the stopped receiver) in whatever next starts a service on these stores. The
        # copies are dropped instead, unless kept.
        dropped = set() if a.keep_copies else set(copies)
        for database_url in {ov.database_url for n, ov in stores.items() if n not in dropped}:
            await settle_incidents(database_url, forget_receivers=True)
        if receiver is not None:
            receiver.stop()
        for name in dropped:
            await data.drop_database(o.database_url, copies[name])
    names = [name for name, _, _ in variants]
    medians = {
        name: {
            key: statistics.median(v for v in values if v is not None)
            for key, values in _columns(results["variants"][name]["rounds"]).items()
        }
        for name in names
    }
    results["medians"] = medians
    _write(out, results)
    lines = ["| figure (median of rounds) | " + " | ".join(names) + " |"]
    lines.append("|---|" + "---:|" * len(names))
    for key in medians[names[0]]:
        lines.append(f"| {key} | " + " | ".join(f"{medians[n][key]:,.1f}" for n in names) + " |")
    print("\n".join(lines))
    _say(f"written to {out}")


def _columns(rounds: list[dict[str, Any]]) -> dict[str, list[float | None]]:
    cols: dict[str, list[float | None]] = {}
    for r in rounds:
        for key, value in _figures(r).items():
            cols.setdefault(key, []).append(value)
    return cols


if __name__ == "__main__":
    run_tool(parse, main)
