"""The benchmark's measurements over HTTP: the targets (the service, the floor), the load
processes that drive them, each phase's figures and its cost, and the clean-up between phases.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from bench import data, stats
from bench.server import (
    ROOT,
    Gunicorn,
    machine_cpu_seconds,
    processes_cpu_seconds,
)
from rescue import db
from rescue.area import load_service_area
from rescue.bus import STREAM
from volunteers.constants import META

logger = logging.getLogger("bench")

ADMIN_TOKEN = "adm_bench-admin-token-0123456789"
# A long TTL so positions loaded at the start still count at the end of a long run.
POSITION_TTL_S = 3600
# Tries of settle_incidents' give-up of pending callbacks (a deadlock is retried).
SETTLE_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Options:
    """The run's parameters (see bench.__main__ for their meaning)."""

    workers: int
    worker_class: str
    scale: str
    alerts: int
    alert_concurrency: int
    position_rate: int
    position_procs: int
    ramp_start: int
    ramp_step: int
    ramp_max: int
    ramp_step_s: float
    ws_alerts: int
    seed: int
    province: bool
    database_url: str
    redis_url: str
    out: Path
    # Open-loop alerts per second of the paced phase (0: not measured).
    alert_rate: float = 20.0
    # The dispatch center registers a callback URL (bench.receiver) and gets every callback.
    callbacks: bool = True
    # The caller owns the Redis db (the tests' own): it is flushed even if it is 0 or 15.
    owned_redis_db: bool = False


def _say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def alert_points(n: int, seed: int) -> list[tuple[float, float]]:
    """n random points of the urban districts, the same for the same seed."""
    area = load_service_area()
    rng = random.Random(seed)
    return [
        area.random_point_in(data.URBAN_DISTRICTS[i % len(data.URBAN_DISTRICTS)], rng)
        for i in range(n)
    ]


async def run_load(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run each spec in its own `python -m bench.load` process, all at once."""
    start_at = time.time() + 1.5
    procs = []
    for spec in specs:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.load",
            cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        procs.append((proc, json.dumps({**spec, "start_at": start_at}).encode()))
    try:
        outs = await asyncio.gather(*(p.communicate(s) for p, s in procs))
    except BaseException:  # interrupted: leave no load process behind
        for proc, _ in procs:
            if proc.returncode is None:
                proc.kill()
        raise
    results = []
    for (proc, _), (stdout, _) in zip(procs, outs, strict=True):
        if proc.returncode != 0:
            raise RuntimeError(f"load process failed with exit code {proc.returncode}")
        results.append(json.loads(stdout))
    return results


class Target:
    """The service or the floor, as the load generator addresses it."""

    def __init__(
        self, name: str, server: Gunicorn, *, key: str | None, receiver: Gunicorn | None = None
    ) -> None:
        self.name = name
        self.server = server
        # The 120 center's callback receiver (bench.receiver), if the center registered one.
        self.receiver = receiver
        self.floor = key is None
        self.headers = {} if key is None else {"Authorization": f"Bearer {key}"}
        self.alert_path = "/alert" if self.floor else "/v1/alerts"
        self.position_path = "/location" if self.floor else "/v1/me/location"

    def alerts(
        self, points: list[tuple[float, float]], prefix: str, conc: int, *, rate: float = 0.0
    ) -> dict[str, Any]:
        """A load spec posting these alerts, `conc` at a time or at `rate` per second."""
        return {
            "base_url": self.server.url,
            "path": self.alert_path,
            "headers": self.headers,
            "points": points,
            "prefix": prefix,
            "concurrency": conc,
            "rate": rate,
        }

    def positions(self, riders: list[data.Rider], rate: float, **extra: Any) -> dict[str, Any]:
        """A load spec updating these riders' positions at `rate` per second."""
        return {
            "base_url": self.server.url,
            "path": self.position_path,
            "floor": self.floor,
            "riders": [[r.volunteer_id, r.token, r.lat, r.lng] for r in riders],
            "rate": rate,
            **extra,
        }


def _split(riders: list[data.Rider], parts: int) -> list[list[data.Rider]]:
    return [riders[i::parts] for i in range(parts)]


async def alerts_alone(
    t: Target, points: list[tuple[float, float]], o: Options, tag: str, *, rate: float = 0.0
) -> Any:
    """Alert latency with nothing else running, and what each alert cost the machine: closed
    loop over `o.alert_concurrency` connections, or open loop at `rate` alerts per second."""
    await callbacks_received(t)  # counted from here
    before = await counters(t, o)
    prefix = f"{tag}-paced-" if rate else f"{tag}-alone-"
    (res,) = await run_load([{"alerts": t.alerts(points, prefix, o.alert_concurrency, rate=rate)}])
    # The phase's cost includes the bus's and the callbacks' work for its last alerts.
    await drain(o, t)
    await asyncio.sleep(_SETTLE_S)  # PostgreSQL's statistics flush
    after = await counters(t, o)
    figures = stats.alerts_figures(res["alerts"])
    figures["cost_per_alert"] = per_alert(before, after, len(points))
    if t.receiver is not None:
        figures["callbacks"] = await callbacks_received(t, alerts=len(points))
    return figures


# After a phase's work: PostgreSQL flushes its statistics (a backend reports at most once a
# second), and the last CPU ticks are counted.
_SETTLE_S = 2.0


async def counters(t: Target, o: Options) -> dict[str, float]:
    """Counters whose growth over a phase is its cost: CPU seconds of the workers, PostgreSQL,
    Redis and the whole machine (the load generator included), and what the hypervisor stole
    from the machine (the host's other guests: a figure to read the others with); PostgreSQL
    transactions in the bench's database (a statement outside a transaction counts as one) and
    the WAL the server wrote and its transactions that wrote (transaction ids assigned: all its
    databases, the bench's alone busy; unlike the statistics' count, which an idle backend
    reports up to 10 s late, exact at once); Redis commands;
    the workers' system calls and wake-ups (`Gunicorn.switches`)."""
    conn = await asyncpg.connect(o.database_url)
    try:
        pg = await conn.fetchrow(
            "SELECT xact_commit + xact_rollback AS xacts, "
            "pg_snapshot_xmax(pg_current_snapshot())::text::float8 AS next_xid, "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8 AS wal_bytes "
            "FROM pg_stat_database WHERE datname = current_database()"
        )
    finally:
        await conn.close()
    redis = Redis.from_url(o.redis_url)
    try:
        info = await redis.info("all")
    finally:
        await redis.aclose()
    busy_s, stolen_s = machine_cpu_seconds()
    switches = t.server.switches()
    return {
        "worker_cpu_ms": t.server.cpu_seconds() * 1000,
        "postgres_cpu_ms": processes_cpu_seconds("postgres") * 1000,
        "redis_cpu_ms": (float(info["used_cpu_user"]) + float(info["used_cpu_sys"])) * 1000,
        "machine_cpu_ms": busy_s * 1000,
        # The 120 center's stand-in receiver runs on this machine too (in deployment it is the
        # center's): its share of the machine's CPU, apart.
        "receiver_cpu_ms": t.receiver.cpu_seconds() * 1000 if t.receiver is not None else 0.0,
        "steal_ms": stolen_s * 1000,
        "pg_transactions": float(pg["xacts"]),
        "pg_write_transactions": pg["next_xid"],
        "pg_wal_kib": pg["wal_bytes"] / 1024,
        "redis_commands": float(info["total_commands_processed"]),
        # The workers' messages: system calls that read and that wrote (a socket's send or
        # receive, mostly), and the times they slept and were woken.
        "worker_reads": float(switches["reads"]),
        "worker_writes": float(switches["writes"]),
        "worker_wakeups": float(switches["wakeups"]),
    }


def per_alert(before: dict[str, float], after: dict[str, float], n: int) -> dict[str, float]:
    """Each counter's growth divided by the alerts sent."""
    return {key: round((after[key] - before[key]) / n, 2) for key in before}


async def alerts_under_positions(
    t: Target,
    points: list[tuple[float, float]],
    riders: list[data.Rider],
    o: Options,
    tag: str,
    *,
    rate: float = 0.0,
) -> tuple[Any, Any]:
    """Alert latency while position updates run at o.position_rate per second: alerts closed
    loop over `o.alert_concurrency` connections, or open loop at `rate` alerts per second."""
    with tempfile.TemporaryDirectory() as tmp:
        stop_file = str(Path(tmp) / "stop")
        per = o.position_rate / o.position_procs
        specs: list[dict[str, Any]] = [
            {"positions": t.positions(part, per, stop_file=stop_file, warmup_s=1.0)}
            for part in _split(riders, o.position_procs)
        ]
        specs.append(
            {
                "alerts": t.alerts(
                    points,
                    f"{tag}-loaded-paced-" if rate else f"{tag}-loaded-",
                    o.alert_concurrency,
                    rate=rate,
                ),
                "alerts_after_s": 1.5,
                "stop_file": stop_file,
            }
        )
        await callbacks_received(t)  # counted from here
        results = await run_load(specs)
    positions = stats.merge_positions([r["positions"] for r in results[:-1]])
    alerts = stats.alerts_figures(results[-1]["alerts"])
    if t.receiver is not None:
        await drain(o, t)
        alerts["callbacks"] = await callbacks_received(t, alerts=len(points))
    return alerts, positions


async def position_ramp(t: Target, riders: list[data.Rider], o: Options) -> dict[str, Any]:
    """Raise the position rate step by step until p99 passes 50 ms, errors, or a shortfall."""
    steps = []
    sustained = 0
    rate = o.ramp_start
    while rate <= o.ramp_max:
        per = rate / o.position_procs
        specs = [
            {"positions": t.positions(part, per, duration_s=o.ramp_step_s, warmup_s=1.0)}
            for part in _split(riders, o.position_procs)
        ]
        merged = stats.merge_positions([r["positions"] for r in await run_load(specs)])
        ok = (
            merged["p99"] is not None
            and merged["p99"] <= 50.0
            and merged["errors"] <= 0.001 * merged["count"]
            and merged["achieved_rate"] >= 0.95 * rate
        )
        merged["passed"] = ok
        steps.append(merged)
        _say(
            f"  {t.name} positions {rate}/s: achieved {merged['achieved_rate']}/s, "
            f"p99 {merged['p99']} ms, errors {merged['errors']}, {'ok' if ok else 'FAIL'}"
        )
        if not ok:
            break
        sustained = rate
        rate += o.ramp_step
    return {"sustained_rate": sustained, "steps": steps}


async def ws_latency(t: Target, rider: data.Rider, o: Options, tag: str) -> dict[str, Any]:
    """From the alert's response to the offer on the volunteer's open WebSocket."""
    points = alert_points(o.ws_alerts, o.seed + 99)
    spec = {
        "base_url": t.server.url,
        "headers": t.headers,
        "rider": [rider.volunteer_id, rider.token, rider.lat, rider.lng],
        "points": points,
        "prefix": f"{tag}-ws-",
    }
    (res,) = await run_load([{"ws": spec}])
    ws = res["ws"]
    return {
        **stats.summary(ws["lat_ms"]),
        "missing": ws["missing"],
        "not_offered": ws["not_offered"],
    }


async def redis_memory(redis_url: str) -> dict[str, int]:
    """Redis's used memory (the whole server's, other dbs included) and the bench db's own:
    the sum of `MEMORY USAGE` over its keys, counted exactly (SAMPLES 0)."""
    redis = Redis.from_url(redis_url)
    try:
        info = await redis.info("memory")
        own = 0
        async for key in redis.scan_iter(count=1000):
            own += int(await redis.memory_usage(key, samples=0) or 0)
    finally:
        await redis.aclose()
    return {
        "used_memory": int(info["used_memory"]),
        "used_memory_rss": int(info["used_memory_rss"]),
        "bench_db_memory": own,
    }


async def between_phases(o: Options, t: Target, figures: dict[str, Any], key: str) -> None:
    """Close the phase's incidents and, for the service, let the bus finish the phase's events
    (its consumers would otherwise drain them during the next phase's measurement, and an offer
    timed to a phone would queue behind them); the wait is recorded in figures["bus_drain_s"].
    Then vacuum, where the server's autovacuum is off (see `vacuum`)."""
    await settle_incidents(o.database_url)
    if not t.floor:
        figures.setdefault("bus_drain_s", {})[key] = await drain(o, t)
    await vacuum(o.database_url)


async def vacuum(database_url: str) -> bool:
    """On a server whose autovacuum is off (a CI machine's may be), VACUUM (ANALYZE) the bench's
    database between phases, as autovacuum would have by then under the service's settings
    (migration 009: its queue tables after 1 % of changes); whether it did.

    Without it every phase inherits the dead rows of all the phases before, and the claims that
    walk the queues' partial indexes slow down as the run goes on: 61,000 dead deliveries made a
    callback claim 9.7 ms instead of 0.17 ms, and the phases measured last (the province's)
    paid the most. The vacuum's own cost falls between phases, where autovacuum would spend
    it at any time: a few hundred milliseconds of CPU per phase of 1,000 alerts.
    """
    conn = await asyncpg.connect(database_url)
    try:
        if await db.autovacuum_on(conn):
            return False
        await conn.execute("VACUUM (ANALYZE)")
    finally:
        await conn.close()
    return True


async def drain(o: Options, t: Target) -> float:
    """Wait until every consumer group of the bus owes nothing and no callback is pending (the
    service's work for what was sent so far is done); the seconds waited."""
    started = time.monotonic()
    if t.floor:
        return 0.0
    while time.monotonic() - started < _DRAIN_TIMEOUT_S:
        if not any((await bus_backlog(o.redis_url)).values()) and not await callbacks_pending(o):
            break
        await asyncio.sleep(0.2)
    else:
        _say(f"WARNING: the bus or the callbacks still owe work after {_DRAIN_TIMEOUT_S:.0f} s")
    return round(time.monotonic() - started, 1)


_DRAIN_TIMEOUT_S = 120.0


async def callbacks_pending(o: Options) -> int:
    """Callbacks queued and not delivered yet (none when the center has no callback URL)."""
    conn = await asyncpg.connect(o.database_url)
    try:
        if await pending_by_state(conn):
            query = "SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'"
        else:
            query = "SELECT count(*) FROM webhook_pending"
        return int(await conn.fetchval(query))
    finally:
        await conn.close()


async def pending_by_state(conn: asyncpg.Connection) -> bool:
    """Whether this database's callbacks say pending by a state column (before migration 014):
    a variant of bench.ab may run a tree from before it, on a copy of its own."""
    return await conn.fetchval("SELECT to_regclass('webhook_pending')") is None


async def callbacks_received(t: Target, *, alerts: int = 0) -> dict[str, Any] | None:
    """What the 120 center's receiver got since the last call (None without a receiver), with
    `per_alert` when the phase's alerts are given."""
    if t.receiver is None:
        return None
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{t.receiver.url}/stats", params={"reset": "1"}) as resp,
    ):
        body: dict[str, Any] = await resp.json()
    if alerts:
        body["per_alert"] = round(body["count"] / alerts, 2)
    return body


async def bus_backlog(redis_url: str) -> dict[str, int]:
    """Per consumer group: events not read yet plus entries read but not acknowledged."""
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        groups = await redis.xinfo_groups(STREAM)
    except ResponseError:  # no stream yet
        return {}
    finally:
        await redis.aclose()
    return {str(g["name"]): int(g.get("lag") or 0) + int(g.get("pending") or 0) for g in groups}


async def on_duty(redis_url: str) -> int:
    """How many volunteers are checked in (a check that nobody else flushed the bench db)."""
    redis = Redis.from_url(redis_url)
    try:
        return int(await redis.hlen(META))
    finally:
        await redis.aclose()


def memory(server: Gunicorn) -> dict[str, Any]:
    """Each worker's resident size."""
    rss = server.rss_kib()
    return {"workers_rss_kib": rss, "max_worker_rss_mib": round(max(rss, default=0) / 1024, 1)}


async def create_center(url: str, callback_url: str | None = None) -> str:
    """A dispatch center through the API (its callbacks to `callback_url`); its key."""
    center: dict[str, Any] = {"name": "bench 120"}
    if callback_url is not None:
        center["callback_url"] = callback_url
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{url}/v1/dispatch-centers",
            json=center,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ) as resp,
    ):
        body = await resp.json()
        if resp.status != 201:
            raise RuntimeError(f"creating the dispatch center: {resp.status} {body}")
        return str(body["api_key"])


def parse_tool(
    p: argparse.ArgumentParser, argv: list[str], kind: str
) -> tuple[argparse.Namespace, Path]:
    """Add the bench's stores (`--database`, `--redis-db`) and `--out` to a tool's parser and
    parse `argv`: the options and the results file (`--out`, or a new file in bench/results
    named by the time and `kind`)."""
    p.add_argument("--database", default=data.BENCH_DATABASE)
    p.add_argument("--redis-db", type=int, default=data.BENCH_REDIS_DB)
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return a, a.out or Path(__file__).resolve().parent / "results" / f"{stamp}-{kind}.json"


def run_tool(
    parse: Callable[[list[str]], tuple[argparse.Namespace, Path]],
    main: Callable[[argparse.Namespace, Path, list[str]], Coroutine[Any, Any, None]],
) -> None:
    """A tool's entry point (bench.ab, bench.quiet, bench.idle): SIGTERM stops it as Ctrl-C
    does (its `finally` blocks stop the servers it started), then the command line parsed, the
    results file's folder made, and `main` run."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    args, path = parse(sys.argv[1:])
    path.parent.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(args, path, sys.argv[1:]))


def tool_options(
    database: str, redis_db: int, out: Path, *, workers: int, seed: int = 0
) -> Options:
    """The options of a tool that starts the services itself on the data a run left loaded
    (bench.quiet, bench.idle): no load phase of its own, no callback receiver."""
    database_url, redis_url = data.bench_urls(database, redis_db)
    return Options(
        workers=workers, worker_class="", scale="qingdao", alerts=0, alert_concurrency=1,
        position_rate=0, position_procs=1, ramp_start=0, ramp_step=0, ramp_max=0,
        ramp_step_s=0.0, ws_alerts=0, seed=seed, province=False,
        database_url=database_url, redis_url=redis_url, out=out, alert_rate=0.0,
        callbacks=False,
    )  # fmt: skip


def service_server(o: Options, log: Path) -> Gunicorn:
    """The service as deployed, on the bench stores."""
    env = {
        "DATABASE_URL": o.database_url,
        "REDIS_URL": o.redis_url,
        "RESCUE_ADMIN_TOKEN": ADMIN_TOKEN,
        "RESCUE_POSITION_TTL_S": str(POSITION_TTL_S),
        "RESCUE_DEMO": "0",
        "RESCUE_DEMO_FLEET": "0",
    }
    return Gunicorn(
        "rescue.gunicorn:app_factory",
        workers=o.workers,
        env=env,
        log=log,
        worker_class=o.worker_class,
    )


async def settle_incidents(database_url: str, *, forget_receivers: bool = False) -> None:
    """Close the open incidents of the phases before: nobody accepts a bench offer, so each would
    escalate wave after wave (45 s, then every 120 s) into the next phase's measurement. Their
    callbacks still pending are given up: a wave after the last drain queues some, and a run
    that reuses the data (bench.ab --no-load) would retry them against a receiver long gone,
    with backoff, for minutes. The incidents first, so that no wave queues more; the give-up
    locks every pending delivery at once, and may deadlock with a delivery loop's claim (which
    locks a run's followers): then it is tried again.

    `forget_receivers` (before a new server and its new center, as bench.ab's rounds): the
    centers registered so far lose their callback URL. The bus may still hold events of their
    incidents (a run stopped right after its last phase), and the next server's callback
    consumer would queue them for a receiver long gone: the phases' drains then waited 120 s
    for them, and the retries ran inside the measurement."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE incidents SET status = 'closed', closed_at = now(), "
            "next_escalation_at = NULL WHERE status = 'open'"
        )
        await conn.execute(
            "UPDATE offers SET state = 'cancelled', answered_at = now() WHERE state = 'open'"
        )
        if forget_receivers:
            await conn.execute(
                "UPDATE dispatch_centers SET callback_url = NULL WHERE callback_url IS NOT NULL"
            )
        for attempt in range(SETTLE_ATTEMPTS):
            try:
                # Given up: a delivery without its pending row and no 2xx answer is failed.
                if await pending_by_state(conn):
                    await conn.execute(
                        "UPDATE webhook_deliveries SET state = 'failed', "
                        "last_error = 'bench: given up' WHERE state = 'pending'"
                    )
                else:
                    await conn.execute("DELETE FROM webhook_pending")
                break
            except asyncpg.DeadlockDetectedError:
                if attempt == SETTLE_ATTEMPTS - 1:
                    raise
    finally:
        await conn.close()


def receiver_server(o: Options, log: Path) -> Gunicorn:
    """The 120 center's callback receiver: one worker, since it counts in its process."""
    return Gunicorn("bench.receiver:app_factory", workers=1, env={}, log=log)


def floor_server(o: Options, log: Path) -> Gunicorn:
    """The floor, same worker count."""
    env = {"BENCH_FLOOR_DATABASE_URL": o.database_url, "BENCH_FLOOR_REDIS_URL": o.redis_url}
    return Gunicorn(
        "bench.floor:app_factory", workers=o.workers, env=env, log=log, worker_class=o.worker_class
    )
