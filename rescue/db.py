"""PostgreSQL: the pool, database creation and the numbered migrations."""

from __future__ import annotations

import logging
from importlib import resources
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from rescue import jsonio

logger = logging.getLogger(__name__)

# Any constant works; it only has to be the same in every process running migrations.
_MIGRATION_LOCK = 0x5E5C0E


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("jsonb", "json"):
        await conn.set_type_codec(
            name, encoder=jsonio.dumps_text, decoder=jsonio.loads, schema="pg_catalog"
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool release hook: nothing to reset.

    asyncpg still rolls back an open transaction and drops listeners before calling this; the
    default reset would add a round trip (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL) to
    every release, on the alert's path too. This service keeps no session state on pooled
    connections: advisory locks are transaction-level, settings are SET LOCAL, and LISTEN runs
    on dedicated connections.
    """


async def create_pool(
    dsn: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    server_settings: dict[str, str] | None = None,
) -> asyncpg.Pool:
    """A connection pool with JSON codecs installed (and these settings on each connection).

    Prepared statements are kept as long as their connection (LRU-bounded by asyncpg's cache of
    100 statements): asyncpg's default drops each one 5 minutes after it was prepared, used or
    not, and a city's alerts come minutes or hours apart, so nearly every alert would have
    prepared its statement again. In process, on the province's data, the alert's statement
    took 2.7 ms prepared and 3.6 ms prepared again (median; BENCHMARKS.md, session 11). The
    `min_size` connections themselves outlive a quiet spell (asyncpg closes only idle
    connections beyond it); one made afresh cost that statement 16.8 ms.
    """
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        server_settings=server_settings,
        init=_init_connection,
        reset=_keep_session,
        command_timeout=30,
        max_cached_statement_lifetime=0,
    )
    assert pool is not None
    return pool


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


async def ensure_database(dsn: str) -> bool:
    """Create the database named in the DSN if it does not exist; True when created."""
    name = urlsplit(dsn).path.lstrip("/")
    if not name:
        return False
    try:
        conn = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        pass
    else:
        await conn.close()
        return False
    admin = await asyncpg.connect(_with_database(dsn, "postgres"))
    try:
        quoted = '"' + name.replace('"', '""') + '"'
        await admin.execute(f"CREATE DATABASE {quoted}")
    except asyncpg.DuplicateDatabaseError:
        return False
    finally:
        await admin.close()
    logger.info("created database %s", name)
    return True


def migration_files() -> list[tuple[int, str, str]]:
    """The shipped migrations as (number, name, sql), in order."""
    found = []
    for entry in resources.files("rescue.migrations").iterdir():
        if entry.name.endswith(".sql"):
            number = int(entry.name.split("_", 1)[0])
            found.append((number, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply the migrations not yet applied, each in its own transaction; the names applied."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   number integer PRIMARY KEY,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["number"] for r in await conn.fetch("SELECT number FROM schema_migrations")}
        for number, name, sql in migration_files():
            if number in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (number, name) VALUES ($1, $2)", number, name
                )
            applied_now.append(name)
            logger.info("applied migration %s", name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied_now


async def migrate_dsn(dsn: str) -> list[str]:
    """Create the database if missing and bring its schema up to date (and say if the server's
    autovacuum is off)."""
    await ensure_database(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        applied = await migrate(conn)
        await warn_without_autovacuum(conn)
        return applied
    finally:
        await conn.close()


async def autovacuum_on(conn: asyncpg.Connection) -> bool:
    """Whether the PostgreSQL server runs autovacuum."""
    return bool(await conn.fetchval("SELECT current_setting('autovacuum')::boolean"))


async def warn_without_autovacuum(conn: asyncpg.Connection) -> bool:
    """Log a warning if the server's autovacuum is off; whether it is.

    The service's work queues (open offers, incidents due to escalate) are found through small
    partial indexes that every update leaves a dead entry in, and the unpublished events and
    pending callbacks are tables of rows deleted once done; migrations 009, 012 and 014 have
    autovacuum clear them after 1 % of changes. Without autovacuum they only grow, and every
    claim slows down with them (BENCHMARKS.md, session 7).
    """
    if await autovacuum_on(conn):
        return False
    logger.warning(
        "PostgreSQL's autovacuum is off: the service's queue tables will bloat and its claims "
        "slow down; turn autovacuum on, or VACUUM (ANALYZE) the database often"
    )
    return True
