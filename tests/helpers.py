"""Helpers shared by the tests."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import json
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

import asyncpg
from aiohttp.test_utils import TestClient

from rescue.auth import hash_token
from rescue.ids import new_id
from rescue.settings import generate_token
from tests.conftest import ADMIN

T = TypeVar("T")


# A condition on a row of `outbox` (the table named so): its event is published, that is has
# no pending row left (migration 012).
PUBLISHED = "NOT EXISTS (SELECT 1 FROM outbox_pending p WHERE p.id = outbox.id)"


async def wait_until(
    condition: Callable[[], Any],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "condition",
) -> Any:
    """Poll a condition (sync or async) until it is truthy, or fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        await asyncio.sleep(interval)


def bearer(token: str) -> dict[str, str]:
    """An Authorization header."""
    return {"Authorization": f"Bearer {token}"}


async def create_center(
    client: TestClient, *, name: str = "Qingdao 120", callback_url: str | None = None
) -> dict[str, Any]:
    """A dispatch center through the API (its key and secret included)."""
    body: dict[str, Any] = {"name": name}
    if callback_url:
        body["callback_url"] = callback_url
    resp = await client.post("/v1/dispatch-centers", json=body, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def insert_volunteer(
    pg: asyncpg.Connection,
    *,
    expires_on: dt.date | None = None,
    status: str = "active",
    travel_mode: str = "walk",
    quiet_hours: str | None = None,
) -> tuple[str, str]:
    """A volunteer row with a token, straight into PostgreSQL: (id, token)."""
    token = generate_token("vol")
    vid = new_id("vol")
    today = dt.date.today()
    await pg.execute(
        """INSERT INTO volunteers (id, name, phone, cert_number, cert_issuer, cert_issued_on,
               cert_expires_on, travel_mode, status, quiet_hours, token_hash)
           VALUES ($1, '测试志愿者', '13800000000', $2, '青岛市红十字会',
                   $3, $4, $5, $6, $7, $8)""",
        vid,
        f"CERT-{vid}",
        today - dt.timedelta(days=365),
        expires_on or today + dt.timedelta(days=365),
        travel_mode,
        status,
        quiet_hours,
        hash_token(token),
    )
    return vid, token


# Both ways PostgreSQL may plan a prepared statement: a plan-count test runs under each
# (asyncpg's statements go generic after five executions when that looks no worse).
PLAN_MODES = ("force_generic_plan", "force_custom_plan")


async def rows_read(conn: asyncpg.Connection, table: str, name: str, args: str) -> int:
    """Rows of `table` the prepared statement `name` read when executed with `args` (an SQL
    argument list): returned or filtered out by each scan of it, in every loop. A count of a
    plan's work that the machine's speed does not move (tests/dispatch/test_*_plans.py)."""
    (plan,) = json.loads(
        await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {name}{args}")
    )
    read = 0
    nodes: list[dict[str, Any]] = [plan["Plan"]]
    while nodes:
        node = nodes.pop()
        nodes.extend(node.get("Plans", []))
        if node.get("Relation Name") == table and "Scan" in node["Node Type"]:
            per_loop = (
                node["Actual Rows"]
                + node.get("Rows Removed by Filter", 0)
                + node.get("Rows Removed by Index Recheck", 0)
            )
            read += per_loop * node["Actual Loops"]
    return read


async def checked_states(conn: asyncpg.Connection, table: str) -> set[str]:
    """The states `table`'s CHECK on its `state` column allows."""
    check = await conn.fetchval(
        """SELECT pg_get_constraintdef(oid) FROM pg_constraint
           WHERE conrelid = $1::regclass AND contype = 'c'
             AND pg_get_constraintdef(oid) LIKE '%(state = ANY%'""",
        table,
    )
    return set(re.findall(r"'(\w+)'::text", check))


async def held_members(redis: Any) -> list[str]:
    """Every volunteer whose position is held, whichever mode's set holds it (sorted)."""
    from volunteers.constants import POSITION_KEYS

    members: list[str] = []
    for key in POSITION_KEYS:
        members.extend(await redis.zrange(key, 0, -1))
    return sorted(members)


async def held_position(redis: Any, volunteer_id: str) -> tuple[float, float] | None:
    """The (lat, lng) held for a volunteer, None if none."""
    from volunteers.positions import stored_positions

    (position,) = await stored_positions(redis, [volunteer_id])
    return position
