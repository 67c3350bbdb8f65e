"""Start an app under gunicorn as deployed, wait until it is ready, read its workers' memory."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """A process's user + system CPU time from /proc (0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after "(comm)": state is field 3
    return (int(fields[11]) + int(fields[12])) / _TICKS


def process_switches(pid: int) -> dict[str, int]:
    """A process's system calls that read and that wrote (`/proc/PID/io`'s syscr, syscw) and
    the times it slept and was woken (voluntary context switches, `/proc/PID/status`), all
    since it started; zeros if it is gone. On a VM whose idle vCPUs halt, every message that
    wakes another process costs its sender tens of microseconds: these count the messages."""
    counts = {"reads": 0, "writes": 0, "wakeups": 0}
    try:
        io = Path(f"/proc/{pid}/io").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return counts
    for line in io.splitlines():
        key, _, value = line.partition(":")
        if key == "syscr":
            counts["reads"] = int(value)
        elif key == "syscw":
            counts["writes"] = int(value)
    for line in status.splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            counts["wakeups"] = int(line.split()[1])
    return counts


def processes_cpu_seconds(name: str) -> float:
    """The CPU time of every process whose command name is `name` (e.g. postgres)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm = (entry / "comm").read_text().strip()
            except OSError:
                continue
            if comm == name:
                total += process_cpu_seconds(int(entry.name))
    return total


def cpu_times(stat: str) -> tuple[float, float]:
    """(busy, stolen) CPU seconds of the whole machine since boot, from /proc/stat's text: busy
    is everything but idle and iowait, steal included (the time the hypervisor gave another
    guest while this one had work, which a shared host's figures must be read with)."""
    values = [int(v) for v in stat.split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / _TICKS, values[7] / _TICKS


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, stolen) CPU time of the whole machine since boot (all CPUs, /proc/stat)."""
    return cpu_times(Path("/proc/stat").read_text())


def wakeup_cost_us(redis_url: str, *, rounds: int = 40) -> dict[str, float] | None:
    """What a message to another process costs on this machine, in microseconds: the sender's
    CPU time in `send()` and the round trip of a `PING` to Redis, back to back and after 50 ms
    idle (median of `rounds` each). On a VM whose idle vCPUs halt, waking the other one is paid
    by the sender (session 12's AMD machine: 12-15 us back to back, 48-67 after 10-50 ms), so
    the round trips of an alert cost more CPU on such a machine. None without a plain TCP URL."""
    parts = urlsplit(redis_url)
    if parts.scheme != "redis":  # a unix socket, or TLS (its handshake first)
        return None
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 2) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        figures: dict[str, float] = {}
        for name, gap_s in (("back_to_back", 0.0), ("after_50ms_idle", 0.05)):
            sends: list[float] = []
            trips: list[float] = []
            for _ in range(rounds):
                if gap_s:
                    time.sleep(gap_s)
                started, cpu = time.perf_counter(), time.thread_time()
                sock.sendall(b"PING\r\n")  # a reply whatever AUTH requires: one round trip
                sends.append((time.thread_time() - cpu) * 1e6)
                sock.recv(256)
                trips.append((time.perf_counter() - started) * 1e6)
            figures[f"send_cpu_{name}"] = round(statistics.median(sends), 1)
            figures[f"round_trip_{name}"] = round(statistics.median(trips), 1)
    return figures


class Gunicorn:
    """One gunicorn master with N aiohttp workers."""

    def __init__(
        self,
        app: str,
        *,
        workers: int,
        env: dict[str, str],
        log: Path,
        worker_class: str = "aiohttp.GunicornUVLoopWebWorker",
        cwd: Path = ROOT,
    ) -> None:
        self.app = app
        self.cwd = cwd
        self.workers = workers
        self.worker_class = worker_class
        self.port = free_port()
        self.env = {**os.environ, **env}
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, ready_path: str = "/readyz", timeout_s: float = 60.0) -> None:
        """Start and wait until every worker answers (gunicorn forks them one by one)."""
        cmd = [
            sys.executable, "-m", "gunicorn", self.app,
            "--worker-class", self.worker_class,
            "--workers", str(self.workers),
            "--bind", f"127.0.0.1:{self.port}",
            "--log-level", "warning",
            "--graceful-timeout", "5",
        ]  # fmt: skip
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, cwd=self.cwd, env=self.env, stdout=out, stderr=out)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn {self.app} exited; see {self.log}")
            if len(self.worker_pids()) == self.workers and self._ready(ready_path):
                # A few more probes so every worker has finished its start-up.
                if all(self._ready(ready_path) for _ in range(self.workers * 4)):
                    return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"gunicorn {self.app} not ready within {timeout_s:.0f} s; see {self.log}"
        )

    def _ready(self, path: str) -> bool:
        try:
            with urllib.request.urlopen(self.url + path, timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def worker_pids(self) -> list[int]:
        """The workers' process ids (children of the master)."""
        if self.proc is None:
            return []
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            return [int(p) for p in path.read_text().split()]
        except OSError:
            return []

    def rss_kib(self) -> list[int]:
        """Each worker's resident set size in KiB (VmRSS)."""
        sizes = []
        for pid in self.worker_pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        sizes.append(int(line.split()[1]))
            except OSError:
                continue
        return sizes

    def cpu_seconds(self) -> float:
        """The CPU time (user + system) the workers have used so far."""
        return sum(process_cpu_seconds(pid) for pid in self.worker_pids())

    def switches(self) -> dict[str, int]:
        """The workers' reads, writes and wake-ups so far, summed (`process_switches`)."""
        total = {"reads": 0, "writes": 0, "wakeups": 0}
        for pid in self.worker_pids():
            for key, value in process_switches(pid).items():
                total[key] += value
        return total

    def stop(self) -> None:
        """Stop the master and its workers (SIGTERM, then SIGKILL after 15 s)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
