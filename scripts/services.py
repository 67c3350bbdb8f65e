#!/usr/bin/env python3
"""Make sure PostgreSQL and Redis answer at the configured URLs, then run a command.

When a server is not reachable at its URL and the URL points at this machine, a private instance
is started from the installed server binaries under `.var/` (git-ignored), listening on the URL's
own port so the URL stays right. When the binaries are missing it stops with one message saying
what to install. Standard library only: this runs before the virtual environment matters.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / ".var"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/rescue"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", ""}


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host or "127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for(host: str, port: int, what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if reachable(host, port, 0.5):
            return
        time.sleep(0.2)
    fail(
        f"started a private {what} on port {port}, but it did not answer within {seconds:.0f} s "
        f"(see the log under {VAR})"
    )


def find_binary(name: str, patterns: list[str]) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for pattern in patterns:
        matches = sorted(glob.glob(pattern), reverse=True)
        if matches:
            return matches[0]
    return None


def run_as(user: str | None, args: list[str], **kwargs: object) -> None:
    if user is not None:
        args = ["runuser", "-u", user, "--", *args]
    subprocess.run(args, check=True, **kwargs)  # type: ignore[call-overload]


def start_postgres(url: str) -> None:
    parts = urlsplit(url)
    port = parts.port or 5432
    initdb = find_binary("initdb", ["/usr/lib/postgresql/*/bin/initdb"])
    pg_ctl = find_binary("pg_ctl", ["/usr/lib/postgresql/*/bin/pg_ctl"])
    if not initdb or not pg_ctl:
        fail(
            f"PostgreSQL is not reachable at {parts.hostname}:{port} and no PostgreSQL server is "
            "installed to start a private one: install PostgreSQL 15 (Debian: apt-get install "
            "postgresql-15) or set DATABASE_URL to a running server"
        )
    # PostgreSQL refuses to run as root: run the private instance as the postgres user.
    user = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            fail(
                "running as root and there is no 'postgres' user to run a private PostgreSQL: "
                "create one (useradd postgres) or set DATABASE_URL to a running server"
            )
        user = "postgres"
    data = VAR / "postgres"
    VAR.mkdir(exist_ok=True)
    if not (data / "PG_VERSION").exists():
        data.mkdir(parents=True, exist_ok=True)
        if user:
            shutil.chown(VAR, user)
            shutil.chown(data, user)
        run_as(
            user,
            [
                initdb,
                "-D",
                str(data),
                "-U",
                parts.username or "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
            stdout=subprocess.DEVNULL,
        )
    sockets = VAR / "postgres-socket"
    sockets.mkdir(exist_ok=True)
    if user:
        shutil.chown(sockets, user)
    options = f"-p {port} -k {sockets} -c listen_addresses={parts.hostname or '127.0.0.1'}"
    run_as(
        user,
        [pg_ctl, "-D", str(data), "-l", str(VAR / "postgres.log"), "-o", options, "-w", "start"],
        stdout=subprocess.DEVNULL,
    )
    wait_for(parts.hostname or "127.0.0.1", port, "PostgreSQL")
    print(f"started a private PostgreSQL on port {port} (data in {data})", file=sys.stderr)


def start_redis(url: str) -> None:
    parts = urlsplit(url)
    port = parts.port or 6379
    server = find_binary("redis-server", [])
    if not server:
        fail(
            f"Redis is not reachable at {parts.hostname}:{port} and no Redis server is installed "
            "to start a private one: install Redis 7 (Debian: apt-get install redis-server) or "
            "set REDIS_URL to a running server"
        )
    data = VAR / "redis"
    data.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            server,
            "--port",
            str(port),
            "--bind",
            parts.hostname or "127.0.0.1",
            "--daemonize",
            "yes",
            "--dir",
            str(data),
            "--save",
            "",
            "--appendonly",
            "no",
            "--pidfile",
            str(data / "redis.pid"),
            "--logfile",
            str(VAR / "redis.log"),
        ],
        check=True,
    )
    wait_for(parts.hostname or "127.0.0.1", port, "Redis")
    print(f"started a private Redis on port {port}", file=sys.stderr)


def ensure(url: str, default_port: int, start: object, what: str, variable: str) -> None:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    if reachable(host, parts.port or default_port):
        return
    if host not in LOCAL_HOSTS:
        fail(
            f"{what} is not reachable at {host}:{parts.port or default_port} ({variable}); "
            "start it or point the variable at a running server"
        )
    start(url)  # type: ignore[operator]


def main(argv: list[str]) -> None:
    if "--" not in argv:
        fail("usage: services.py [--test] -- COMMAND [ARGS...]")
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1 :]
    env = dict(os.environ)
    database_url = env.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = env.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
    if "--test" in options:
        # The tests use their own database and Redis database number, never the demo's.
        db = urlsplit(database_url)
        env.setdefault("TEST_DATABASE_URL", db._replace(path="/rescue_test").geturl())
        rd = urlsplit(redis_url)
        env.setdefault("TEST_REDIS_URL", rd._replace(path="/15").geturl())
        database_url, redis_url = env["TEST_DATABASE_URL"], env["TEST_REDIS_URL"]
    ensure(database_url, 5432, start_postgres, "PostgreSQL", "DATABASE_URL")
    ensure(redis_url, 6379, start_redis, "Redis", "REDIS_URL")
    if not command:
        return
    os.execvpe(command[0], command, env)


if __name__ == "__main__":
    main(sys.argv[1:])
