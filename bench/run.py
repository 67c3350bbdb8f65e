"""The benchmark run: load a scale, start the service and the floor under gunicorn, drive them
from separate load processes (bench.measure), and write every figure to one JSON file."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import asyncpg
from redis.asyncio import Redis

from bench import data, stats
from bench.floor import CREATE_TABLE
from bench.measure import (
    POSITION_TTL_S,
    Options,
    Target,
    _say,
    alert_points,
    alerts_alone,
    alerts_under_positions,
    between_phases,
    create_center,
    floor_server,
    memory,
    on_duty,
    position_ramp,
    receiver_server,
    redis_memory,
    service_server,
    ws_latency,
)
from bench.server import wakeup_cost_us
from rescue import db
from rescue.area import load_service_area


async def measure_scale(o: Options, scale: data.Scale, *, full: bool) -> dict[str, Any]:
    """Load a scale, then measure the service and the floor (`full`: every figure)."""
    area = load_service_area()
    _say(f"{scale.name}: loading {scale.aeds:,} AEDs and {scale.volunteers:,} volunteers")
    loaded = await data.load(
        o.database_url, o.redis_url, area, scale, seed=o.seed, owned_redis_db=o.owned_redis_db
    )
    _say(f"{scale.name}: loaded in {loaded.seconds} s")
    conn = await asyncpg.connect(o.database_url)
    try:
        await conn.execute(CREATE_TABLE)
    finally:
        await conn.close()
    ws_rider, riders = loaded.riders[0], loaded.riders[1:]
    points = alert_points(o.alerts, o.seed)
    warm = alert_points(min(50, o.alerts), o.seed + 1)
    log = o.out.with_suffix(".log")
    result: dict[str, Any] = {
        "loaded": {"aeds": loaded.aeds, "volunteers_on_duty": loaded.on_duty,
                   "seconds": loaded.seconds,
                   "history_incidents": loaded.history},
    }  # fmt: skip
    for name in ("service", "floor"):
        server = service_server(o, log) if name == "service" else floor_server(o, log)
        # The 120 center's receiver, for the service (the floor sends no callbacks).
        receiver = receiver_server(o, log) if name == "service" and o.callbacks else None
        await data.refresh_seen(redis := Redis.from_url(o.redis_url))
        await redis.aclose()
        if receiver is not None:
            receiver.start()
        server.start()
        try:
            key = None
            if name == "service":
                callback_url = f"{receiver.url}/callbacks" if receiver is not None else None
                key = await create_center(server.url, callback_url)
            t = Target(name, server, key=key, receiver=receiver)
            tag = f"{scale.name}-{name}"
            figures: dict[str, Any] = {}
            await alerts_alone(t, warm, o, f"{tag}-warm")
            _say(f"{scale.name} {name}: {len(points)} alerts alone")
            figures["alert_alone"] = await alerts_alone(t, points, o, tag)
            _say(f"  p50 {figures['alert_alone']['p50']} p99 {figures['alert_alone']['p99']} ms")
            if o.alert_rate:
                await between_phases(o, t, figures, "before_alert_paced")
                _say(f"{scale.name} {name}: {len(points)} alerts at {o.alert_rate}/s")
                paced = await alerts_alone(t, points, o, tag, rate=o.alert_rate)
                figures["alert_paced"] = paced
                _say(f"  p50 {paced['p50']} p99 {paced['p99']} ms")
            if full:
                await between_phases(o, t, figures, "before_alerts_under_positions")
                _say(f"{scale.name} {name}: alerts under {o.position_rate}/s positions")
                alerts, positions = await alerts_under_positions(t, points, riders, o, tag)
                figures["alert_under_positions"] = alerts
                figures["positions_during_alerts"] = positions
                _say(f"  alert p99 {alerts['p99']} ms; position p99 {positions['p99']} ms")
                if o.alert_rate:
                    await between_phases(o, t, figures, "before_alerts_paced_under_positions")
                    _say(
                        f"{scale.name} {name}: alerts at {o.alert_rate}/s under "
                        f"{o.position_rate}/s positions"
                    )
                    alerts, positions = await alerts_under_positions(
                        t, points, riders, o, tag, rate=o.alert_rate
                    )
                    figures["alert_paced_under_positions"] = alerts
                    figures["positions_during_paced_alerts"] = positions
                    _say(f"  alert p99 {alerts['p99']} ms; position p99 {positions['p99']} ms")
                await between_phases(o, t, figures, "before_position_ramp")
                _say(f"{scale.name} {name}: position ramp")
                figures["position_ramp"] = await position_ramp(t, riders, o)
                await between_phases(o, t, figures, "before_ws")
                if name == "service" and o.ws_alerts:
                    _say(f"{scale.name} {name}: alert -> WebSocket offer x{o.ws_alerts}")
                    figures["ws_offer"] = await ws_latency(t, ws_rider, o, tag)
            figures["on_duty_at_end"] = await on_duty(o.redis_url)
            if figures["on_duty_at_end"] != loaded.on_duty:
                _say(
                    f"WARNING: {figures['on_duty_at_end']:,} of {loaded.on_duty:,} volunteers "
                    f"still on duty: something else wrote to Redis db {o.redis_url}; "
                    "these figures are not valid (use --redis-db)"
                )
            figures["memory"] = memory(server)
            figures["memory"].update(await redis_memory(o.redis_url))
            result[name] = figures
        finally:
            server.stop()
            if receiver is not None:
                receiver.stop()
    return result


_COSTS = (
    ("worker_cpu_ms", "worker CPU (ms)"),
    ("postgres_cpu_ms", "PostgreSQL CPU (ms)"),
    ("redis_cpu_ms", "Redis CPU (ms)"),
    ("machine_cpu_ms", "machine CPU, load generator included (ms)"),
    ("receiver_cpu_ms", "of which the 120 center's callback receiver (ms)"),
    ("steal_ms", "CPU stolen by the hypervisor, whole machine (ms)"),
    ("pg_transactions", "PostgreSQL transactions"),
    ("pg_write_transactions", "PostgreSQL transactions that wrote"),
    ("pg_wal_kib", "PostgreSQL WAL written (KiB)"),
    ("redis_commands", "Redis commands"),
    ("worker_writes", "workers' system calls that wrote"),
    ("worker_wakeups", "workers' wake-ups"),
)


def p99_per_cpu_ms(alone: dict[str, Any]) -> float | None:
    """A closed loop's p99 over the machine's CPU per alert (None if no CPU was counted).

    With `--alert-concurrency` connections posting back to back on as many cores, Little's law
    makes each alert's latency about the machine's CPU per alert: its p50 has been 1.0-1.1 times
    it and its p99 1.9-2.3 times in every run since session 15 (BENCHMARKS.md, session 22). So
    the closed loop's p99 lines are lines on that CPU: a p99 of 10 ms allows 10 / this."""
    cpu = alone.get("cost_per_alert", {}).get("machine_cpu_ms")
    if not cpu:
        return None
    return round(alone["p99"] / cpu, 2)


def rows(results: dict[str, Any]) -> list[tuple[str, Any, Any, str]]:
    """The summary table's rows: figure, service, floor, target."""
    out: list[tuple[str, Any, Any, str]] = []
    for scale_name, scale in results["scales"].items():
        s, f = scale["service"], scale["floor"]
        p99_target = "≤ 10 ms, ≤ 2× floor" if scale_name != "province" else "≤ 25 ms"
        rate = results["options"].get("alert_rate")
        for key, how in (("alert_alone", "alone"), ("alert_paced", f"at {rate}/s, open loop")):
            if key not in s:
                continue
            for pct in ("p50", "p95", "p99", "max"):
                out.append(
                    (f"{scale_name}: alert {pct} {how} (ms)", s[key][pct], f[key][pct],
                     p99_target if pct == "p99" else "")
                )  # fmt: skip
        for key, how, during in (
            ("alert_under_positions", "", "positions_during_alerts"),
            ("alert_paced_under_positions", f", alerts at {rate}/s open loop",
             "positions_during_paced_alerts"),
        ):  # fmt: skip
            if key not in s:
                continue
            for pct in ("p50", "p99", "max"):
                out.append(
                    (f"{scale_name}: alert {pct} under positions{how} (ms)",
                     s[key][pct], f[key][pct], "≤ 20 ms" if pct == "p99" else "")
                )  # fmt: skip
            out.append(
                (f"{scale_name}: position p99 during alerts{how} (ms)",
                 s[during]["p99"], f[during]["p99"], "")
            )  # fmt: skip
        if "position_ramp" in s:
            out.append(
                (f"{scale_name}: sustained position updates (/s)",
                 s["position_ramp"]["sustained_rate"], f["position_ramp"]["sustained_rate"],
                 "≥ 8,000")
            )  # fmt: skip
        if "ws_offer" in s:
            for pct in ("p50", "p99", "max"):
                out.append((f"{scale_name}: alert → WebSocket offer {pct} (ms)",
                            s["ws_offer"][pct], None, ""))  # fmt: skip
        for key, how in (
            ("alert_alone", "alone"),
            ("alert_paced", f"at {rate}/s"),
            ("alert_paced_under_positions", f"under positions at {rate}/s"),
        ):
            received = s.get(key, {}).get("callbacks")
            if not received:
                continue
            out.append((f"{scale_name}: callbacks received per alert, {how}",
                        received["per_alert"], None, ""))  # fmt: skip
            for pct in ("p50", "p99"):
                out.append(
                    (f"{scale_name}: incident created → its callback received {pct}, {how} (ms)",
                     received["created_lag_ms"][pct], None, "")
                )  # fmt: skip
        for key, label in _COSTS:
            out.append(
                (f"{scale_name}: {label} per alert, alone",
                 s["alert_alone"].get("cost_per_alert", {}).get(key),
                 f["alert_alone"].get("cost_per_alert", {}).get(key), "")
            )  # fmt: skip
        out.append(
            (f"{scale_name}: alert p99 alone per ms of machine CPU per alert",
             p99_per_cpu_ms(s["alert_alone"]), p99_per_cpu_ms(f["alert_alone"]), "")
        )  # fmt: skip
        out.append(
            (f"{scale_name}: max worker RSS (MiB)",
             s["memory"]["max_worker_rss_mib"], f["memory"]["max_worker_rss_mib"], "")
        )  # fmt: skip
        out.append(
            (f"{scale_name}: Redis used memory, whole server (MiB)",
             round(s["memory"]["used_memory"] / 1048576, 1), None, "")
        )  # fmt: skip
        if "bench_db_memory" in s["memory"]:
            out.append(
                (f"{scale_name}: Redis memory of the bench db's keys (MiB)",
                 round(s["memory"]["bench_db_memory"] / 1048576, 1), None, "")
            )  # fmt: skip
    return out


async def versions(o: Options) -> tuple[str | None, str | None]:
    """PostgreSQL's and Redis's server versions."""
    conn = await asyncpg.connect(data.with_database(o.database_url, "postgres"))
    try:
        pg = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    redis = Redis.from_url(o.redis_url)
    try:
        rv = (await redis.info("server"))["redis_version"]
    finally:
        await redis.aclose()
    return str(pg), str(rv)


async def run(o: Options, argv: list[str]) -> dict[str, Any]:
    """The whole benchmark; returns (and writes) the results."""
    pg, rv = await versions(o)
    conn = await asyncpg.connect(data.with_database(o.database_url, "postgres"))
    try:
        autovacuum = await db.autovacuum_on(conn)
    finally:
        await conn.close()
    if not autovacuum:
        _say("PostgreSQL's autovacuum is off on this server: the bench vacuums between phases")
    results: dict[str, Any] = {
        "command": "python -m bench " + " ".join(argv),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            **stats.machine(pg, rv),
            "postgresql_autovacuum": autovacuum,
            "wakeup_us": wakeup_cost_us(o.redis_url),
        },
        "options": {
            "workers": o.workers, "worker_class": o.worker_class, "scale": o.scale,
            "alerts": o.alerts,
            "alert_concurrency": o.alert_concurrency, "alert_rate": o.alert_rate,
            "position_rate": o.position_rate,
            "position_procs": o.position_procs, "seed": o.seed,
            "position_ttl_s": POSITION_TTL_S, "callbacks": o.callbacks,
        },
        "scales": {},
    }  # fmt: skip
    o.out.parent.mkdir(parents=True, exist_ok=True)
    # The province scale is measured for the alert alone (issue 4, item 2).
    full = o.scale != "province"
    results["scales"][o.scale] = await measure_scale(o, data.SCALES[o.scale], full=full)
    _write(o.out, results)
    if o.province and o.scale == "qingdao":
        results["scales"]["province"] = await measure_scale(o, data.SCALES["province"], full=False)
    results["table"] = stats.table(rows(results))
    _write(o.out, results)
    print(results["table"])
    _say(f"results written to {o.out}")
    return results


def _write(path: Path, results: dict[str, Any]) -> None:
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
