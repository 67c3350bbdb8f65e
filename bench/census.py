"""A statement census: PostgreSQL's logged statement durations summed by statement.

    psql -c "ALTER DATABASE rescue_bench SET log_min_duration_statement = 0"
    wc -c < /var/log/postgresql/postgresql-15-main.log         # where the census starts
    .venv/bin/python -m bench.ab ... --no-load --position-rate 0 --burst-rate 0
    psql -c "ALTER DATABASE rescue_bench RESET log_min_duration_statement"
    .venv/bin/python -m bench.census /var/log/postgresql/postgresql-15-main.log --start N

Reads the server's stderr log (`log_line_prefix = '%m [%p] %q%u@%d '`, Debian's default) from
byte `--start`; counts each statement's `parse`, `bind` and `execute` (or simple `statement`)
lines apart, since a bind's time is the planning; only the statements of `--database`. Logging
every statement costs the server time of its own: compare censuses with each other, not with a
run's figures.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from collections.abc import Iterable

_HEAD = re.compile(r"^\d{4}-\d\d-\d\d \S+ \S+ \[\d+\] (\S*) [A-Z]+:\s+(.*)")
_DURATION = re.compile(r"duration: ([\d.]+) ms\s+(execute|bind|parse|statement)[^:]*:\s*(.*)")


def census(lines: Iterable[str], database: str) -> dict[tuple[str, str], tuple[int, float]]:
    """{(kind, statement's first 110 characters, blanks folded): (count, total ms)}."""
    found: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0])
    current: list[str] | None = None  # kind, ms, text so far

    def close() -> None:
        if current is not None:
            kind, ms, text = current
            entry = found[(kind, " ".join(text.split())[:110])]
            entry[0] += 1
            entry[1] += float(ms)

    for line in lines:
        head = _HEAD.match(line)
        if head is None:
            if current is not None:  # a statement's next line
                current[2] += " " + line.strip()
            continue
        close()
        current = None
        duration = _DURATION.match(head.group(2))
        if duration and head.group(1).endswith(f"@{database}"):
            current = [duration.group(2), duration.group(1), duration.group(3)]
    close()
    return {key: (int(n), ms) for key, (n, ms) in found.items()}


def report(found: dict[tuple[str, str], tuple[int, float]], top: int) -> str:
    """The statements with the most time, one line each: total ms, count, mean µs, kind, text."""
    total = sum(ms for _, ms in found.values())
    count = sum(n for n, _ in found.values())
    lines = [f"total {total:,.0f} ms over {count:,} statements"]
    ranked = sorted(found.items(), key=lambda item: -item[1][1])[:top]
    for (kind, text), (n, ms) in ranked:
        lines.append(f"{ms:10.1f} ms {n:7d} {ms / n * 1000:8.0f} µs {kind:9s} {text}")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.census", description=__doc__)
    p.add_argument("log")
    p.add_argument("--start", type=int, default=0, help="byte offset to read from")
    p.add_argument("--database", default="rescue_bench")
    p.add_argument("--top", type=int, default=30)
    a = p.parse_args(argv)
    with open(a.log, encoding="utf-8", errors="replace") as f:
        f.seek(a.start)
        print(report(census(f, a.database), a.top))


if __name__ == "__main__":
    main(sys.argv[1:])
