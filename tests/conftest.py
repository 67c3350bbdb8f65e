"""Test fixtures: real PostgreSQL and Redis, the schema built once, data isolated per test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from rescue import db
from rescue.app import create_app
from rescue.settings import Settings

TEST_DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/rescue_test"
)
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ADMIN_TOKEN = "adm_test-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _guard() -> None:
    name = urlsplit(TEST_DATABASE_URL).path.lstrip("/")
    if not name.endswith("_test"):
        raise RuntimeError(f"refusing to run tests against database {name!r}: it must end in _test")
    if urlsplit(TEST_REDIS_URL).path.strip("/") in ("", "0"):
        raise RuntimeError("refusing to run tests against Redis database 0 (the demo's)")


@pytest.fixture(scope="session")
def settings() -> Settings:
    """Settings of the service under test."""
    _guard()
    return Settings(
        database_url=TEST_DATABASE_URL,
        redis_url=TEST_REDIS_URL,
        admin_token=ADMIN_TOKEN,
        demo_fleet=0,
    )


@pytest.fixture(scope="session")
async def schema(settings: Settings) -> str:
    """A fresh test database with every migration applied, once per session."""
    await db.ensure_database(settings.database_url)
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        await db.migrate(conn)
    finally:
        await conn.close()
    return settings.database_url


@pytest.fixture
async def pg(schema: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test database, emptied before the test."""
    conn = await asyncpg.connect(schema)
    tables = [
        r["tablename"]
        for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename <> 'schema_migrations'"
        )
    ]
    if tables:
        await conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")
    yield conn
    await conn.close()


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    """The test Redis database, emptied before the test."""
    client = Redis.from_url(settings.redis_url, decode_responses=True)
    await client.flushdb()
    yield client
    await client.aclose()


AppFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def make_client(
    pg: asyncpg.Connection, redis: Redis, settings: Settings
) -> AsyncIterator[AppFactory]:
    """Start an app (one 'worker') on a real port; several may run at once."""
    clients: list[TestClient] = []

    async def start(*, background: bool = True, **changes: Any) -> TestClient:
        # background=False: no bus consumers, AED subscriber or timers, only the requests.
        app: web.Application = create_app(
            settings=settings.replace(**changes), background=background
        )
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in reversed(clients):
        await client.close()


@pytest.fixture
async def client(make_client: AppFactory) -> TestClient:
    """One running app."""
    return await make_client()
