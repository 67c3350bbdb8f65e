"""The body of PUT /v1/me/location as the HTTP edge reads it: with a Content-Length, chunked
(no length), or compressed (a length that is not the body's); the 413 limit holds for each."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator

import asyncpg
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from geo import haversine_m
from tests.conftest import AppFactory
from tests.helpers import bearer, insert_volunteer
from tests.volunteers.support import (
    MAY_FOURTH_SQUARE,
    ZHANQIAO_PIER,
    location,
)
from tests.volunteers.test_volunteer_phone import go_on_duty, stored_position

LIMIT = 200


def padded(point: tuple[float, float], size: int) -> bytes:
    """A location body of exactly `size` bytes (JSON allows trailing whitespace)."""
    raw = json.dumps(location(point)).encode()
    assert len(raw) <= size
    return raw + b" " * (size - len(raw))


async def in_pieces(raw: bytes, size: int = 16) -> AsyncIterator[bytes]:
    """The body as an async iterator: the client sends it chunked, with no Content-Length."""
    for start in range(0, len(raw), size):
        yield raw[start : start + size]


async def on_duty_volunteer(
    client: TestClient, pg: asyncpg.Connection
) -> tuple[str, dict[str, str]]:
    """(id, request headers) of a volunteer on duty at May Fourth Square."""
    # Straight into PostgreSQL: the admin's create body is over this test's small limit.
    vid, token = await insert_volunteer(pg)
    await go_on_duty(client, token)
    return vid, {**bearer(token), "Content-Type": "application/json"}


async def put(client: TestClient, headers: dict[str, str], data: object) -> tuple[int, dict]:
    resp = await client.put("/v1/me/location", data=data, headers=headers)
    return resp.status, ({} if resp.status == 204 else await resp.json())


async def assert_at(redis: Redis, vid: str, point: tuple[float, float]) -> None:
    pos = await stored_position(redis, vid)
    assert pos is not None and haversine_m(*pos, *point) < 1


async def test_content_length_up_to_the_limit_is_read(
    make_client: AppFactory, pg: asyncpg.Connection, redis: Redis
) -> None:
    client = await make_client(max_body_bytes=LIMIT)
    vid, headers = await on_duty_volunteer(client, pg)
    status, error = await put(client, headers, padded(ZHANQIAO_PIER, LIMIT + 1))
    assert status == 413 and error["error"]["code"] == "body_too_large"
    await assert_at(redis, vid, MAY_FOURTH_SQUARE)
    status, _ = await put(client, headers, padded(ZHANQIAO_PIER, LIMIT))
    assert status == 204
    await assert_at(redis, vid, ZHANQIAO_PIER)
    status, error = await put(client, headers, b"")
    assert status == 400 and error["error"]["code"] == "invalid_json"
    status, error = await put(client, headers, b'{"lat": 36.06, "lng"')
    assert status == 400 and error["error"]["code"] == "invalid_json"


async def test_a_chunked_body_is_counted_against_the_limit(
    make_client: AppFactory, pg: asyncpg.Connection, redis: Redis
) -> None:
    client = await make_client(max_body_bytes=LIMIT)
    vid, headers = await on_duty_volunteer(client, pg)
    status, _ = await put(client, headers, in_pieces(padded(ZHANQIAO_PIER, LIMIT)))
    assert status == 204
    await assert_at(redis, vid, ZHANQIAO_PIER)
    status, error = await put(client, headers, in_pieces(padded(MAY_FOURTH_SQUARE, LIMIT + 1)))
    assert status == 413 and error["error"]["code"] == "body_too_large"
    await assert_at(redis, vid, ZHANQIAO_PIER)


async def test_a_compressed_body_is_counted_once_inflated(
    make_client: AppFactory, pg: asyncpg.Connection, redis: Redis
) -> None:
    client = await make_client(max_body_bytes=LIMIT)
    vid, headers = await on_duty_volunteer(client, pg)
    gzipped = {**headers, "Content-Encoding": "gzip"}
    # Its Content-Length is the compressed size: the whole inflated body must still be read.
    small = gzip.compress(padded(ZHANQIAO_PIER, LIMIT))
    assert len(small) < LIMIT // 2
    status, _ = await put(client, gzipped, small)
    assert status == 204
    await assert_at(redis, vid, ZHANQIAO_PIER)
    # Small on the wire, over the limit inflated.
    bomb = gzip.compress(padded(MAY_FOURTH_SQUARE, 50 * LIMIT))
    assert len(bomb) < LIMIT
    status, error = await put(client, gzipped, bomb)
    assert status == 413 and error["error"]["code"] == "body_too_large"
    await assert_at(redis, vid, ZHANQIAO_PIER)
