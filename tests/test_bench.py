"""The benchmark runs end to end at a tiny scale and writes its results (no timings checked)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from bench.data import drop_database, with_database
from tests.conftest import TEST_DATABASE_URL, TEST_REDIS_URL
from volunteers.positions import MODE_CAP

ROOT = Path(__file__).resolve().parent.parent
# The tiny run's stores: a database named after the tests' (never the demo's, and another per
# test database, so two test runs with their own TEST_* URLs never share it), and the tests'
# own Redis db, which every test empties first anyway.
_STORES = (
    "--database", f"{urlsplit(TEST_DATABASE_URL).path.lstrip('/')}_bench",
    "--redis-db", urlsplit(TEST_REDIS_URL).path.strip("/") or "0",
)  # fmt: skip


@pytest.mark.timeout(240)
def test_bench_runs_at_tiny_scale(tmp_path: Path) -> None:
    out = tmp_path / "tiny.json"
    env = {**os.environ, "DATABASE_URL": TEST_DATABASE_URL, "REDIS_URL": TEST_REDIS_URL}
    args = [
        sys.executable, "-m", "bench", "--scale", "tiny", "--workers", "1", "--skip-province",
        *_STORES, "--owned-redis-db",
        "--alerts", "10", "--ramp-start", "50", "--ramp-max", "50", "--ramp-step-s", "1",
        "--ws-alerts", "1", "--alert-rate", "50", "--out", str(out),
    ]  # fmt: skip
    proc = _run(args, env=env, timeout=230)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text(encoding="utf-8"))
    assert {"command", "machine", "options", "scales", "table"} <= results.keys()
    assert results["machine"]["nproc"] >= 1
    assert isinstance(results["machine"]["postgresql_autovacuum"], bool)
    wakeup = results["machine"]["wakeup_us"]
    assert set(wakeup) == {
        f"{figure}_{when}"
        for figure in ("send_cpu", "round_trip")
        for when in ("back_to_back", "after_50ms_idle")
    }
    assert all(value > 0 for value in wakeup.values()), wakeup
    scale = results["scales"]["tiny"]
    assert scale["loaded"]["aeds"] == 50
    assert scale["loaded"]["volunteers_on_duty"] == 500
    assert scale["loaded"]["history_incidents"] == 200
    for target in ("service", "floor"):
        figures = scale[target]
        assert figures["alert_alone"]["count"] == 10
        assert figures["alert_alone"]["errors"] == 0, figures["alert_alone"]["statuses"]
        paced = figures["alert_paced"]
        assert (paced["count"], paced["errors"]) == (10, 0)
        assert figures["alert_under_positions"]["count"] == 10
        assert figures["positions_during_alerts"]["count"] > 0
        paced_loaded = figures["alert_paced_under_positions"]
        assert (paced_loaded["count"], paced_loaded["errors"]) == (10, 0)
        # When the slowest were sent: 10 alerts at 50/s, one every 20 ms (as scheduled).
        assert len(paced["p99_by_tenth"]) == 10
        assert sorted(at for at, _ in paced["slowest"]) == [i / 50 for i in range(10)]
        # Both are rounded from the same raw maximum (to 0.1 and to 0.001 ms): equal within 0.05.
        assert abs(max(ms for _, ms in paced["slowest"]) - paced["max"]) <= 0.0505
        assert figures["positions_during_paced_alerts"]["count"] > 0
        assert figures["position_ramp"]["steps"]
        cost = figures["alert_alone"]["cost_per_alert"]
        # CPU times are read in 10 ms clock ticks: ten tiny alerts of the floor may show none.
        assert all(value >= 0 for value in cost.values()), cost
        assert cost["worker_cpu_ms"] > 0 or target == "floor", cost
        # The receiver's CPU is counted apart; the floor sends no callbacks and has none.
        assert target == "service" or cost["receiver_cpu_ms"] == 0, cost
        # Every alert commits at least its own INSERT and asks Redis at least once.
        assert cost["pg_transactions"] >= 1 and cost["redis_commands"] >= 1
        # ... and that INSERT is a transaction that wrote: counted at once, exactly.
        assert cost["pg_write_transactions"] >= 1, cost
        # ... whose commit PostgreSQL writes ahead.
        assert cost["pg_wal_kib"] > 0, cost
        # ... and writes at least its request to Redis and its response, so its worker made
        # system calls that wrote and read.
        assert cost["worker_writes"] >= 2 and cost["worker_reads"] >= 2, cost
        assert len(figures["memory"]["workers_rss_kib"]) == 1
        assert figures["memory"]["used_memory"] > 0
        assert 0 < figures["memory"]["bench_db_memory"] <= figures["memory"]["used_memory"]
    # The 120 center's receiver got every alert's incident.created exactly once, and its offers.
    for phase in ("alert_alone", "alert_paced", "alert_paced_under_positions"):
        received = scale["service"][phase]["callbacks"]
        assert received["by_type"]["incident.created"] == 10, received
        assert received["by_type"].get("offer.created", 0) > 0, received
        assert (received["duplicates"], received["bad"]) == (0, 0), received
        assert received["created_lag_ms"]["count"] == 10
        assert "callbacks" not in scale["floor"][phase]
    assert "| tiny: callbacks received per alert, alone |" in results["table"]
    # The past incidents the load stored are still as loaded: closed, their callbacks delivered
    # once, nothing offered again to their volunteers.
    assert asyncio.run(_history(with_database(TEST_DATABASE_URL, _STORES[1]))) == (
        200,
        1_200,
        1_200,
        1_000,
    )
    assert "ws_offer" in scale["service"]
    assert scale["service"]["ws_offer"]["missing"] == 0
    assert "| tiny: alert p99 alone (ms) |" in results["table"]
    assert "| tiny: alert p99 alone per ms of machine CPU per alert |" in results["table"]
    assert "| tiny: alert p99 at 50.0/s, open loop (ms) |" in results["table"]
    assert (
        "| tiny: alert p99 under positions, alerts at 50.0/s open loop (ms) |" in results["table"]
    )

    # The in-process tools run on the data the run left loaded.
    # The planned bounds give the unbounded search's plans, at the alert's budget and at a
    # wave's; so does a per-mode cap far above a tiny scale's crowd.
    for budget in (300, 600):
        argv = ["--points", "20"] + (["--budget", str(budget)] if budget != 300 else [])
        plans = _tool(env, "bench.plans", *argv)
        assert plans.startswith(
            f"20 points, {budget} s budget, the planned bounds vs unbounded: 0 plans differ"
        ), plans
    plans = _tool(env, "bench.plans", "--points", "20", "--cap", str(MODE_CAP))
    assert plans.startswith(
        f"20 points, 300 s budget, at most {MODE_CAP} members per mode vs unbounded: 0 plans differ"
    ), plans
    lines = _tool(env, "bench.phases", "--points", "10", "--gap-ms", "1").splitlines()
    assert lines[0].startswith("10 alerts in process, 1 ms apart")
    assert [line.split()[0] for line in lines[1:]] == [
        "aeds",
        "search",
        "plan",
        "draft",
        "insert",
        "render",
        "total",
    ]
    table = _tool(
        env, "bench.search", "--points", "10", "--rounds", "2", "--variant", "a=.", "--variant",
        f"b={ROOT}",
    ).splitlines()  # fmt: skip
    assert table[0].startswith("search script, 10 points x (alert reach, 600 s wave reach)")
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows.keys() == {"a", "b"}
    for row in rows.values():
        assert row[1:4:2] == ["Redis", "us/call"] and int(row[2]) > 0, row
    # The same script on the same points finds the same members; a tiny crowd has some.
    assert rows["a"][7:9] == ["reply", rows["b"][8]] and int(rows["a"][8]) > 0, rows
    # The alert after a quiet spell, the service beside the floor (a spell of 0.2 s here).
    quiet_out = tmp_path / "quiet.json"
    printed = _tool(
        env, "bench.quiet", "--variant", "a=.", "--floor", "--workers", "1", "--cycles", "2",
        "--quiet-s", "0.2", "--alerts", "2", "--out", str(quiet_out),
    )  # fmt: skip
    quiet = json.loads(quiet_out.read_text(encoding="utf-8"))["variants"]
    assert quiet.keys() == {"a", "floor"}
    for name, figures in quiet.items():
        assert len(figures["warmup"]) == 20 and len(figures["cycles"]) == 2, figures
        assert all(len(c) == 2 and min(c) > 0 for c in figures["cycles"]), figures
        assert f"{name}: first alert after 0 s of quiet " in printed
    # The service with nothing to do: its timers still write (escalation rounds, bus reads).
    idle_out = tmp_path / "idle.json"
    printed = _tool(
        env, "bench.idle", "--variant", "a=.", "--workers", "1", "--rounds", "1",
        "--seconds", "1.5", "--settle-s", "0.5", "--out", str(idle_out),
    )  # fmt: skip
    (idle,) = json.loads(idle_out.read_text(encoding="utf-8"))["variants"]["a"]["rounds"]
    assert idle["worker_writes"] > 0 and idle["worker_wakeups"] > 0, idle
    assert printed.startswith("round 1 a, per second: ")
    # An A/B whose variants each run on their own copy of the loaded database (as variants whose
    # migrations differ must): each copy gets its variant's alerts, the loaded one none.
    base = with_database(TEST_DATABASE_URL, _STORES[1])
    names = [f"{_STORES[1]}_{name}" for name in ("a", "b")]
    copies = [with_database(TEST_DATABASE_URL, name) for name in names]
    before = asyncio.run(_incidents(base))
    ab_out = tmp_path / "ab.json"
    ab_args = (
        "--database-per-variant", "--no-load", "--rounds", "1", "--workers", "1", "--alerts", "5",
        "--position-rate", "0", "--burst-rate", "0", "--out", str(ab_out),
    )  # fmt: skip
    _tool(env, "bench.ab", "--variant", "a=.", "--variant", f"b={ROOT}", "--keep-copies", *ab_args)
    ab = json.loads(ab_out.read_text(encoding="utf-8"))["variants"]
    for name in ("a", "b"):
        (round_,) = ab[name]["rounds"]
        assert (round_["alert_alone"]["count"], round_["alert_alone"]["errors"]) == (5, 0)
    # 50 warm-up alerts and the 5 measured, in each copy.
    assert [asyncio.run(_incidents(url)) for url in copies] == [before + 55] * 2
    assert asyncio.run(_incidents(base)) == before
    # Without --keep-copies its copies are gone at the end (a province copy takes gigabytes):
    # a's, made afresh and dropped; b's, kept above, is the test's to drop.
    _tool(env, "bench.ab", "--variant", "a=.", *ab_args)
    assert asyncio.run(_databases(names)) == [names[1]]
    asyncio.run(drop_database(TEST_DATABASE_URL, names[1]))
    assert asyncio.run(_databases(names)) == []
    # Where a command's WAL went: a probe's 200 rows, inserted one record each.
    wal_out = tmp_path / "wal.json"
    probe = (
        "import asyncio, asyncpg, sys\n"
        "async def main():\n"
        "    c = await asyncpg.connect(sys.argv[1])\n"
        "    await c.execute('DROP TABLE IF EXISTS wal_probe;"
        " CREATE TABLE wal_probe (n int, t text); INSERT INTO wal_probe"
        " SELECT g, repeat(chr(97), 100) FROM generate_series(1, 200) g')\n"
        "asyncio.run(main())\n"
    )
    proc = _run(
        [sys.executable, "-m", "bench.wal", *_STORES, "--per", "2", "--out", str(wal_out),
         "--", sys.executable, "-c", probe, base],
        env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    wal = json.loads(wal_out.read_text(encoding="utf-8"))
    assert wal["by_type"]["Heap/INSERT"]["records"] >= 200, wal["by_type"]
    assert wal["by_relation"]["wal_probe"] >= 200 * 100, wal["by_relation"]
    assert wal["record_bytes"] >= wal["by_relation"]["wal_probe"] > 0
    assert "| wal_probe | " in proc.stdout


async def _databases(names: list[str]) -> list[str]:
    """Which of these databases exist on the tests' server."""
    conn = await asyncpg.connect(TEST_DATABASE_URL)
    try:
        rows = await conn.fetch("SELECT datname FROM pg_database WHERE datname = ANY($1)", names)
        return sorted(row["datname"] for row in rows)
    finally:
        await conn.close()


async def _incidents(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM incidents"))
    finally:
        await conn.close()


async def _history(database_url: str) -> tuple[int, int, int, int]:
    """The loaded history as it stands: its closed incidents, delivered callbacks (one attempt
    each), attempts and expired offers."""
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            """SELECT (SELECT count(*) FROM incidents
                       WHERE center_id = 'ctr_00history' AND status = 'closed') AS closed,
                      (SELECT count(*) FROM webhook_delivery_states
                       WHERE center_id = 'ctr_00history' AND state = 'delivered'
                         AND attempts = 1) AS delivered,
                      (SELECT count(*) FROM webhook_attempts a JOIN webhook_deliveries d
                       ON d.id = a.delivery_id WHERE d.center_id = 'ctr_00history') AS attempts,
                      (SELECT count(*) FROM offers o JOIN incidents i ON i.id = o.incident_id
                       WHERE i.center_id = 'ctr_00history' AND o.state = 'expired') AS offers"""
        )
    finally:
        await conn.close()
    return (row["closed"], row["delivered"], row["attempts"], row["offers"])


def _tool(env: dict[str, str], module: str, *args: str) -> str:
    """Run `python -m module` on the tiny run's stores; its standard output."""
    proc = _run(
        [sys.executable, "-m", module, *args, *_STORES],
        env={**env, "RESCUE_ADMIN_TOKEN": "adm_bench-tools-test-token"},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _run(
    args: list[str], *, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run a bench command in a process group of its own; on a timeout (or the test
    interrupted) the whole group goes, the gunicorn servers and load processes it started
    included. `subprocess.run` would kill only the command: its servers, left running on the
    tests' stores, then consumed the next tests' bus events."""
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None or _group_alive(proc.pid):
            _kill_group(proc.pid)
            proc.wait()
    return subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _kill_group(pgid: int) -> None:
    """SIGTERM the group (gunicorn stops its workers), then SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
