"""Where a worker's time goes: py-spy on every gunicorn worker during a phase, then a summary.

    with profiled(server.worker_pids(), Path("bench/results/prof/alerts")):
        ...  # the load

writes `<prefix>-<pid>.txt` (py-spy's raw collapsed stacks, one line per distinct stack with
its sample count) for each worker. `python -m bench.profile FILE...` prints the functions with
the most samples, by own time (the innermost frame) and by total time (anywhere on the stack),
over all the files given. py-spy samples without pausing the workers (--nonblocking), so the
profile costs the measured figures almost nothing; idle time (the event loop's epoll) is kept
so the shares add up to the worker's wall time.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

RATE_HZ = 200
# py-spy's raw frame: "function (path/to/file.py:line)"; the line is dropped to aggregate.
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


@contextlib.contextmanager
def profiled(pids: list[int], prefix: Path) -> Iterator[list[Path]]:
    """Record each pid with py-spy until the block ends; yields the files being written."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    prefix.parent.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    files: list[Path] = []
    for pid in pids:
        out = prefix.with_name(f"{prefix.name}-{pid}.txt")
        cmd = [spy, "record", "--pid", str(pid), "--rate", str(RATE_HZ), "--nonblocking",
               "--idle", "--format", "raw", "--output", str(out)]  # fmt: skip
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        files.append(out)
    try:
        yield files
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _frame(raw: str) -> str:
    match = _FRAME.match(raw.strip())
    if match is None:
        return raw.strip()
    file = match["file"]
    for marker in ("site-packages/", "lib/python3."):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{match['func']} ({file})"


def summarise(files: list[Path], top: int = 25) -> str:
    """The top functions by own and by total samples, as percentages of all samples."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for path in files:
        for line in path.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [_frame(f) for f in stack.split(";")[1:]]  # [0] is the process/thread
            if not frames:
                continue
            samples += count
            own[frames[-1]] += count
            for name in set(frames):
                total[name] += count
    if not samples:
        return "no samples"
    lines = [f"{samples:,} samples from {len(files)} file(s)", "", "own time:"]
    lines += [f"  {100 * n / samples:5.1f} %  {name}" for name, n in own.most_common(top)]
    lines += ["", "total time (anywhere on the stack):"]
    lines += [f"  {100 * n / samples:5.1f} %  {name}" for name, n in total.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    """`python -m bench.profile FILE... [--top N]`."""
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--top", type=int, default=25)
    a = p.parse_args(argv)
    print(summarise(a.files, a.top))


if __name__ == "__main__":
    main(sys.argv[1:])
