"""Percentiles, the merged figures of several load processes, the machine, the summary table."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np


def summary(latencies_ms: list[float]) -> dict[str, float | int | None]:
    """count, p50/p95/p99 (nearest rank), max and mean, in milliseconds."""
    if not latencies_ms:
        return {"count": 0, "p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    a = np.asarray(latencies_ms)
    p50, p95, p99 = np.percentile(a, [50, 95, 99], method="inverted_cdf")
    return {
        "count": len(a),
        "p50": round(float(p50), 3),
        "p95": round(float(p95), 3),
        "p99": round(float(p99), 3),
        "max": round(float(a.max()), 3),
        "mean": round(float(a.mean()), 3),
    }


def merge_positions(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The position figures of several load processes as one."""
    latencies = [x for p in parts for x in p["lat_ms"]]
    statuses: dict[str, int] = {}
    for p in parts:
        for code, n in p["statuses"].items():
            statuses[code] = statuses.get(code, 0) + n
    return {
        **summary(latencies),
        "target_rate": sum(p["target_rate"] for p in parts),
        "achieved_rate": round(sum(p["achieved_rate"] for p in parts), 1),
        "missed": sum(p["missed"] for p in parts),
        "errors": sum(p["errors"] for p in parts),
        "statuses": statuses,
    }


def over_time(latencies_ms: list[float], sent_s: list[float], *, parts: int = 10) -> dict[str, Any]:
    """When the slow requests were sent: the p99 of each tenth of the run (by send time) and the
    ten slowest as [seconds into the run, ms]. A p99 made by one stretch of the run (say, a
    burst of work the requests themselves scheduled) shows here, where the summary hides it."""
    if not latencies_ms:
        return {"p99_by_tenth": [], "slowest": []}
    lat = np.asarray(latencies_ms)
    sent = np.asarray(sent_s)
    order = np.argsort(sent, kind="stable")
    tenths = [
        round(float(np.percentile(lat[chunk], 99, method="inverted_cdf")), 1)
        for chunk in np.array_split(order, parts)
        if len(chunk)
    ]
    slowest = np.argsort(lat)[::-1][:10]
    return {
        "p99_by_tenth": tenths,
        "slowest": [[round(float(sent[i]), 2), round(float(lat[i]), 1)] for i in slowest],
    }


def alerts_figures(part: dict[str, Any]) -> dict[str, Any]:
    """An alert run's latency summary, when its slowest alerts were sent, statuses and plan
    sizes."""
    responders = part.get("responders") or [0]
    aeds = part.get("aeds") or [0]
    return {
        **summary(part["lat_ms"]),
        **over_time(part["lat_ms"], part["sent_s"]),
        "errors": part["errors"],
        "statuses": part["statuses"],
        "rate": round(len(part["lat_ms"]) / part["elapsed_s"], 1) if part["elapsed_s"] else None,
        "mean_responders": round(float(np.mean(responders)), 2),
        "mean_aeds": round(float(np.mean(aeds)), 2),
    }


def _version(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=5, check=False)
    except OSError:
        return None
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else None


def machine(pg_version: str | None, redis_version: str | None) -> dict[str, Any]:
    """Where the figures came from."""
    cpu = None
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = None
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    return {
        "nproc": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "memory_gib": round(mem_kib / 1048576, 1) if mem_kib else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": pg_version,
        "redis": redis_version,
        "aiohttp": _pkg("aiohttp"),
        "gunicorn": _pkg("gunicorn"),
    }


def _pkg(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if value >= 100 else f"{value:.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def ratio(service: Any, floor: Any) -> float | None:
    """service / floor, or None when either is missing."""
    if not isinstance(service, int | float) or not isinstance(floor, int | float) or not floor:
        return None
    return round(service / floor, 2)


def table(rows: list[tuple[str, Any, Any, str]]) -> str:
    """A Markdown table: figure, service, floor, service/floor, target."""
    lines = [
        "| figure | service | floor | service/floor | target |",
        "|---|---:|---:|---:|---|",
    ]
    for name, service, floor, target in rows:
        r = ratio(service, floor)
        lines.append(f"| {name} | {_cell(service)} | {_cell(floor)} | {_cell(r)} | {target} |")
    return "\n".join(lines)


_VERSION_RE = re.compile(r"\d+(\.\d+)+")


def short_version(text: str | None) -> str | None:
    """The first dotted version number in a banner."""
    if not text:
        return None
    found = _VERSION_RE.search(text)
    return found.group(0) if found else text
