"""The in-memory AED index of each worker, kept fresh across workers through Redis."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from geo import AedIndex
from rescue import db
from rescue.aeds import sync as sync_module
from rescue.aeds.sync import AedSync, channel_of
from rescue.metrics import Metrics
from rescue.typedefs import aed_index_key, aed_sync_key
from tests.conftest import ADMIN
from tests.rescue.aeds_support import LAOSHAN, SHIBEI, create_aed, wait_until

INSERT = """
INSERT INTO aeds (id, name, lat, lng, status, opening_hours)
VALUES ($1, $2, 36.09, 120.37, $3, $4)
"""


async def subscribers(redis: Redis) -> int:
    channel = channel_of(redis)
    return int(dict(await redis.pubsub_numsub(channel)).get(channel, 0))


async def test_writes_update_this_workers_index_at_once(client: TestClient) -> None:
    index = client.app[aed_index_key]
    aed = await create_aed(client, level=3, access_note="前台")
    entry = index.get(aed["id"])
    assert entry is not None
    assert (entry.lat, entry.lng, entry.status, entry.level) == (36.0622, 120.3844, "active", 3)
    assert entry.payload == {
        "id": aed["id"],
        "name": aed["name"],
        "address": aed["address"],
        "lat": 36.0622,
        "lng": 120.3844,
        "level": 3,
        "access_note": "前台",
        "opening_hours": "24/7",
        "indoor": False,
    }
    metrics = await (await client.get("/metrics")).text()
    assert "rescue_aed_index_size 1.0" in metrics

    await client.patch(
        f"/v1/aeds/{aed['id']}", json={"status": "maintenance", "location": SHIBEI}, headers=ADMIN
    )
    entry = index.get(aed["id"])
    assert entry is not None and entry.status == "maintenance" and entry.lat == SHIBEI["lat"]
    await client.delete(f"/v1/aeds/{aed['id']}", headers=ADMIN)
    assert index.get(aed["id"]) is None
    assert "rescue_aed_index_size 0.0" in await (await client.get("/metrics")).text()


async def test_index_is_loaded_at_start(make_client, pg: asyncpg.Connection) -> None:
    await pg.execute(INSERT, "aed_live", "Live", "active", "24/7")
    await pg.execute(INSERT, "aed_broken", "Broken", "missing", "Mo-Fr 08:00-18:00")
    await pg.execute(INSERT, "aed_gone", "Gone", "retired", "24/7")
    client = await make_client()
    index = client.app[aed_index_key]
    assert sorted(aed.id for aed in index) == ["aed_broken", "aed_live"]


async def test_second_worker_follows_through_pubsub(make_client, redis: Redis) -> None:
    first = await make_client()
    second = await make_client()
    await wait_until(lambda: _at_least(redis, 2))
    other = second.app[aed_index_key]

    aed = await create_aed(first)
    await wait_until(lambda: other.get(aed["id"]) is not None)
    await first.patch(f"/v1/aeds/{aed['id']}", json={"location": LAOSHAN}, headers=ADMIN)
    await wait_until(lambda: (e := other.get(aed["id"])) is not None and e.lat == LAOSHAN["lat"])
    await first.delete(f"/v1/aeds/{aed['id']}", headers=ADMIN)
    await wait_until(lambda: other.get(aed["id"]) is None)

    # A large import is announced as one "reload everything".
    rows = "\n".join(f"Bulk {n},36.06,{120.36 + n * 0.0001!r},B-{n}" for n in range(250))
    resp = await first.post(
        "/v1/aeds/import",
        data="name,lat,lng,serial_no\n" + rows + "\n",
        headers={**ADMIN, "Content-Type": "text/csv"},
    )
    assert (await resp.json())["created"] == 250
    await wait_until(lambda: len(other) == 250)


async def _at_least(redis: Redis, count: int) -> bool:
    return await subscribers(redis) >= count


async def test_subscriber_reconnects_and_catches_up(
    make_client, redis: Redis, pg: asyncpg.Connection
) -> None:
    client = await make_client()
    name = client.app[aed_sync_key].client_name

    async def connection_id() -> str | None:
        mine = [c["id"] for c in await redis.client_list() if c.get("name") == name]
        return mine[0] if mine else None

    async def connected() -> bool:
        return await connection_id() is not None

    await wait_until(connected)
    await redis.execute_command("CLIENT", "KILL", "ID", await connection_id())
    # Written while the subscriber is away: nothing announces it, the catch-up finds it.
    await pg.execute(INSERT, "aed_quiet", "Quiet", "active", "24/7")
    index = client.app[aed_index_key]
    await wait_until(lambda: index.get("aed_quiet") is not None)
    await wait_until(connected)
    aed = await create_aed(await make_client())
    await wait_until(lambda: index.get(aed["id"]) is not None)


async def test_full_reload_is_the_safety_net(make_client, pg: asyncpg.Connection) -> None:
    # No subscriber: its catch-up reload on subscribing could run in the middle of this test.
    client = await make_client(background=False)
    kept = await create_aed(client)
    await pg.execute(INSERT, "aed_unannounced", "Unannounced", "active", "24/7")
    await pg.execute("UPDATE aeds SET status = 'retired' WHERE id = $1", kept["id"])
    index = client.app[aed_index_key]
    assert index.get("aed_unannounced") is None
    await client.app[aed_sync_key].load_all()
    assert index.get("aed_unannounced") is not None
    assert index.get(kept["id"]) is None


async def test_the_full_reload_lets_other_work_run_between_slices(
    pg: asyncpg.Connection, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sync_module, "RELOAD_SLICE", 2)
    ids = [f"aed_unannounced_{n}" for n in range(8)]
    for aed_id in ids:
        await pg.execute(INSERT, aed_id, "Unannounced", "active", "24/7")
    # A worker's sync alone (no subscriber, no timer): only this reload touches its index.
    pool = await db.create_pool(schema, min_size=1, max_size=2)
    index = AedIndex()
    try:
        reload = asyncio.create_task(AedSync(pool=pool, index=index, metrics=Metrics()).load_all())
        seen: set[int] = set()
        loop = asyncio.get_running_loop()

        def look() -> None:  # an alert's search, reading the index at every turn of the loop
            seen.add(sum(index.get(aed_id) is not None for aed_id in ids))
            if not reload.done():
                loop.call_soon(look)

        look()
        await reload
    finally:
        await pool.close()
    # Not only "none yet" and "all": the search ran while the reload was half way.
    assert seen - {0, len(ids)}
    assert all(index.get(aed_id) is not None for aed_id in ids)


async def test_service_works_without_redis(make_client) -> None:
    client = await make_client(redis_url="redis://127.0.0.1:1/0")
    aed = await create_aed(client)
    assert client.app[aed_index_key].get(aed["id"]) is not None
    resp = await client.get(f"/v1/aeds/{aed['id']}", headers=ADMIN)
    assert resp.status == 200
