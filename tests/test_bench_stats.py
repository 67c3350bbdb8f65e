"""The bench's summaries: when the slow requests of a run were sent; the statement census; the
closed loop's p99 against the machine's CPU per alert."""

from __future__ import annotations

import os

import pytest

from bench.census import census, report
from bench.run import p99_per_cpu_ms, rows
from bench.server import cpu_times
from bench.stats import over_time


def test_over_time_finds_the_stretch_that_made_the_p99() -> None:
    # 200 requests sent 0.1 s apart, in completion order (not send order); the ones sent in the
    # last tenth of the run are slow.
    sent = [i / 10 for i in range(200)]
    latency = [50.0 + i if i >= 180 else 5.0 for i in range(200)]
    order = list(range(1, 200, 2)) + list(range(0, 200, 2))
    figures = over_time([latency[i] for i in order], [sent[i] for i in order])
    assert figures["p99_by_tenth"] == [5.0] * 9 + [249.0]
    assert figures["slowest"] == [[(199 - k) / 10, 249.0 - k] for k in range(10)]


def test_over_time_of_a_short_run() -> None:
    figures = over_time([3.0, 1.0, 2.0], [0.0, 0.5, 1.0])
    assert figures["p99_by_tenth"] == [3.0, 1.0, 2.0]
    assert figures["slowest"] == [[0.0, 3.0], [1.0, 2.0], [0.5, 1.0]]
    assert over_time([], []) == {"p99_by_tenth": [], "slowest": []}


def test_the_census_sums_each_statement_by_kind_for_its_database() -> None:
    at = "2026-12-05 09:21:00.001 UTC"
    bench, other = f"{at} [101] postgres@rescue_bench LOG:  ", f"{at} [102] postgres@rescue LOG:  "
    statement = "WITH due AS (\n\t    SELECT id FROM t\n\t)\n\tTABLE due\n"
    log = (
        f"{bench}duration: 0.040 ms  bind <unnamed>: SELECT 1\n"
        f"{bench}duration: 1.500 ms  execute <unnamed>: {statement}"
        f"{other}duration: 9.000 ms  execute <unnamed>: {statement}"
        f"{bench}duration: 0.500 ms  execute s1: WITH due AS ( SELECT id FROM t ) TABLE due\n"
        f"{bench}duration: 0.250 ms  statement: COMMIT;\n"
        f"{bench}checkpoint starting: time\n"
        f"{bench}duration: 0.010 ms  bind <unnamed>: SELECT 1\n"
    )
    found = census(log.splitlines(keepends=True), "rescue_bench")
    assert found == {
        ("bind", "SELECT 1"): (2, pytest.approx(0.05)),
        ("execute", "WITH due AS ( SELECT id FROM t ) TABLE due"): (2, 2.0),
        ("statement", "COMMIT;"): (1, 0.25),
    }
    assert report(found, 1).splitlines()[0] == "total 2 ms over 5 statements"


def test_cpu_times_count_steal_as_busy_and_apart() -> None:
    # user nice system idle iowait irq softirq steal guest guest_nice, in clock ticks
    stat = "cpu  500 0 100 900 50 0 20 30 0 0\ncpu0 250 0 50 450 25 0 10 15 0 0\n"
    busy, stolen = cpu_times(stat)
    ticks = os.sysconf("SC_CLK_TCK")
    assert busy == pytest.approx((500 + 100 + 20 + 30) / ticks)
    assert stolen == pytest.approx(30 / ticks)


def test_the_closed_loop_p99_is_set_beside_the_machine_cpu_per_alert() -> None:
    def alone(p99: float, cpu: float | None) -> dict[str, object]:
        cost = {} if cpu is None else {"machine_cpu_ms": cpu}
        return {"p50": p99 / 2, "p95": p99, "p99": p99, "max": p99, "cost_per_alert": cost}

    assert p99_per_cpu_ms(alone(12.9, 6.03)) == 2.14
    # A floor's ten tiny alerts may count no clock tick of CPU: no multiple, not a division by 0.
    assert p99_per_cpu_ms(alone(3.0, 0.0)) is None
    assert p99_per_cpu_ms(alone(3.0, None)) is None
    memory = {"max_worker_rss_mib": 90.0, "used_memory": 1 << 20}
    results = {
        "options": {"alert_rate": 20},
        "scales": {
            "qingdao": {
                "service": {"alert_alone": alone(12.9, 6.03), "memory": memory},
                "floor": {"alert_alone": alone(3.27, 1.27), "memory": memory},
            }
        },
    }
    (row,) = [r for r in rows(results) if "per ms of machine CPU" in r[0]]
    assert row == ("qingdao: alert p99 alone per ms of machine CPU per alert", 2.14, 2.57, "")
