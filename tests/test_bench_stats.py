"""The bench's summaries: when the slow requests of a run were sent."""

from __future__ import annotations

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
