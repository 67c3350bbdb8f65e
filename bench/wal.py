"""Where the WAL goes: `python -m bench.wal [--per N] -- COMMAND...`.

Runs COMMAND (e.g. a `python -m bench.ab` round), then reads with `pg_waldump` the WAL the
server wrote meanwhile and sums it by relation of the bench database and by record type,
divided by `--per` (the alerts COMMAND sent), beside the whole's record and full-page-image
bytes. Counts, not timings: the machine's noise does not move them, what ran beside COMMAND on
the same server does. The server must be on this machine: its `pg_wal` is read directly, and
a checkpoint recycles the segments before its start, so COMMAND must end before the second
checkpoint after it began (`checkpoint_timeout`, 5 minutes by default). `--checkpoint` starts
COMMAND right after one: every page it changes is then written whole the first time, the
worst case and a reproducible one.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import asyncpg

from bench import data
from bench.measure import parse_tool, run_tool
from bench.run import _write

# A record of plain pg_waldump output: its resource manager, total length, description and
# first block's relation (tablespace/database/relfilenode).
_RECORD = re.compile(
    r"rmgr: (\S+)\s+len \(rec/tot\):\s*\d+/\s*(\d+),.*?desc: (\S+)"
    r"(?:.*?blkref #0: rel \d+/(\d+)/(\d+))?"
)
# A line of `--stats=record`: type, count, record bytes, full-page-image bytes.
_STAT = re.compile(r"^(\S+/\S+)\s+(\d+) \(.*?\)\s+(\d+) \(.*?\)\s+(\d+) \(")


def parse(argv: list[str]) -> tuple[argparse.Namespace, Path]:
    p = argparse.ArgumentParser(prog="python -m bench.wal", description=__doc__)
    p.add_argument("--per", type=int, default=1, help="divide by this (the alerts COMMAND sent)")
    p.add_argument("--top", type=int, default=25, help="rows of each table printed")
    p.add_argument("--checkpoint", action="store_true", help="CHECKPOINT before COMMAND")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND...")
    a, out = parse_tool(p, argv, "wal")
    a.command = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not a.command:
        p.error("give the command to measure after --")
    return a, out


def waldump(version: int) -> str:
    """pg_waldump of the server's major version (it reads no other's WAL), else the PATH's."""
    found = Path(f"/usr/lib/postgresql/{version}/bin/pg_waldump")
    if found.exists():
        return str(found)
    on_path = shutil.which("pg_waldump")
    if on_path is None:
        sys.exit(f"pg_waldump not found: install the PostgreSQL {version} server's binaries")
    return on_path


def _output(args: list[str]) -> str:
    """pg_waldump's output; its own message if it failed (a segment already recycled, a
    pg_wal this process cannot read)."""
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def summarise(
    records: list[tuple[str, ...]], stats: str, database_oid: int, names: dict[int, str]
) -> dict:
    """Bytes and records by relation and by record type (`_RECORD`'s groups of each record of
    the plain output), and the whole's record and full-page-image bytes (`--stats=record`)."""
    by_relation: Counter[str] = Counter()
    by_type: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    for rmgr, total, desc, db_oid, node in records:
        kind = f"{rmgr}/{desc}"
        if node is None:
            relation = "(no relation)"
        elif int(db_oid) != database_oid:
            relation = "(another database or shared)"
        else:
            relation = names.get(int(node), f"relfilenode {node}")
        by_relation[relation] += int(total)
        by_type[kind] += int(total)
        counts[kind] += 1
    record_bytes = fpi_bytes = 0
    for line in stats.splitlines():
        if m := _STAT.match(line):
            record_bytes += int(m.group(3))
            fpi_bytes += int(m.group(4))
    return {
        "record_bytes": record_bytes,
        "fpi_bytes": fpi_bytes,
        "by_relation": dict(by_relation.most_common()),
        "by_type": {k: {"bytes": v, "records": counts[k]} for k, v in by_type.most_common()},
    }


def report(s: dict, per: int, top: int) -> None:
    kib = 1024 * per
    total = s["record_bytes"] + s["fpi_bytes"]
    print(
        f"WAL per unit: {total / kib:.2f} KiB, of which records {s['record_bytes'] / kib:.2f}"
        f" and full-page images {s['fpi_bytes'] / kib:.2f}"
    )
    print("\n| relation | KiB per unit |\n|---|---:|")
    for name, size in list(s["by_relation"].items())[:top]:
        print(f"| {name} | {size / kib:.2f} |")
    print("\n| record type | records per unit | KiB per unit |\n|---|---:|---:|")
    for kind, v in list(s["by_type"].items())[:top]:
        print(f"| {kind} | {v['records'] / per:.2f} | {v['bytes'] / kib:.2f} |")


async def main(a: argparse.Namespace, out: Path, argv: list[str]) -> None:
    database_url, _ = data.bench_urls(a.database, a.redis_db)
    # Not connected while COMMAND runs: it may drop and create the database again (`bench`).
    conn = await asyncpg.connect(database_url)
    try:
        if a.checkpoint:
            await conn.execute("CHECKPOINT")
        start = await conn.fetchval("SELECT pg_current_wal_insert_lsn()::text")
    finally:
        await conn.close()
    code = await (await asyncio.create_subprocess_exec(*a.command)).wait()
    conn = await asyncpg.connect(database_url)
    try:
        end = await conn.fetchval("SELECT pg_current_wal_insert_lsn()::text")
        version = int(await conn.fetchval("SHOW server_version_num")) // 10000
        directory = Path(await conn.fetchval("SHOW data_directory")) / "pg_wal"
        database_oid = await conn.fetchval(
            "SELECT oid FROM pg_database WHERE datname = current_database()"
        )
        dump = [waldump(version), "-p", str(directory), "-s", start, "-e", end]
        plain = stats = ""  # nothing written, nothing to read (pg_waldump would fail)
        if start != end:
            plain = await asyncio.to_thread(_output, dump)
            stats = await asyncio.to_thread(_output, [*dump, "--stats=record"])
        records = [m.groups() for m in _RECORD.finditer(plain)]
        nodes = {int(r[4]) for r in records if r[4] is not None and int(r[3]) == database_oid}
        names = {
            r["relfilenode"]: r["relname"]
            for r in await conn.fetch(
                "SELECT pg_relation_filenode(oid)::bigint AS relfilenode, relname FROM pg_class"
                " WHERE pg_relation_filenode(oid) = ANY($1::oid[])",
                sorted(nodes),
            )
        }
    finally:
        await conn.close()
    s = summarise(records, stats, database_oid, names)
    report(s, a.per, a.top)
    _write(out, {"command": a.command, "exit": code, "start": start, "end": end, "per": a.per, **s})
    if code:
        sys.exit(f"the command exited with {code}")


if __name__ == "__main__":
    run_tool(parse, main)
