"""The authenticator's token cache: cheap for a known token, never outliving a revocation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from rescue import auth as auth_module
from rescue import db
from rescue.auth import Authenticator, Principal, Role, hash_token
from tests.conftest import ADMIN_TOKEN
from tests.helpers import insert_volunteer, wait_until


@pytest.fixture
async def authenticator(pg: asyncpg.Connection, schema: str) -> AsyncIterator[Authenticator]:
    pool = await db.create_pool(schema, min_size=1, max_size=2)
    yield Authenticator(admin_token=ADMIN_TOKEN, pool=pool)
    await pool.close()


async def _replace_token(pg: asyncpg.Connection, volunteer_id: str) -> None:
    """What rotation does in PostgreSQL, without telling the authenticator."""
    await pg.execute(
        "UPDATE volunteers SET token_hash = $2 WHERE id = $1",
        volunteer_id,
        hash_token(f"vol_replacement-of-{volunteer_id}"),
    )


async def test_a_cached_token_is_not_hashed_again(
    authenticator: Authenticator, pg: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    vid, token = await insert_volunteer(pg)
    assert await authenticator.resolve(token) == Principal(Role.VOLUNTEER, vid)
    hashed: list[str] = []
    real_hash = auth_module.hash_token
    monkeypatch.setattr(auth_module, "hash_token", lambda t: hashed.append(t) or real_hash(t))
    for _ in range(3):
        assert await authenticator.resolve(token) == Principal(Role.VOLUNTEER, vid)
    assert hashed == []
    # An unknown token and the admin token still go through the hash.
    assert await authenticator.resolve("vol_unknown-token-0123456789") is None
    assert await authenticator.resolve(ADMIN_TOKEN) == Principal(Role.ADMIN, "admin")
    assert len(hashed) == 2


async def test_revoking_the_hash_refuses_the_cached_raw_token_at_once(
    authenticator: Authenticator, pg: asyncpg.Connection
) -> None:
    vid, token = await insert_volunteer(pg)
    other_vid, other_token = await insert_volunteer(pg)
    assert await authenticator.resolve(token) == Principal(Role.VOLUNTEER, vid)
    assert await authenticator.resolve(other_token) == Principal(Role.VOLUNTEER, other_vid)
    await _replace_token(pg, vid)
    # Unheard rotation: the cache still answers (the TTL bounds this case)...
    assert await authenticator.resolve(token) == Principal(Role.VOLUNTEER, vid)
    # ...and forgetting the stored hash drops the raw-token entry at once.
    authenticator.forget(hash_token(token))
    assert await authenticator.resolve(token) is None
    assert await authenticator.resolve(token) is None  # a refusal is not cached as a success
    # Only that token: the other volunteer's cached token is untouched.
    await _replace_token(pg, other_vid)
    assert await authenticator.resolve(other_token) == Principal(Role.VOLUNTEER, other_vid)
    authenticator.forget(hash_token("vol_never-seen-0123456789"))  # unknown hash: no error


async def test_forgetting_the_subject_refuses_its_cached_tokens_at_once(
    authenticator: Authenticator, pg: asyncpg.Connection
) -> None:
    vid, token = await insert_volunteer(pg)
    other_vid, other_token = await insert_volunteer(pg)
    assert await authenticator.resolve(token) == Principal(Role.VOLUNTEER, vid)
    assert await authenticator.resolve(other_token) == Principal(Role.VOLUNTEER, other_vid)
    await _replace_token(pg, vid)
    await _replace_token(pg, other_vid)
    authenticator.forget_subject(vid)
    assert await authenticator.resolve(token) is None
    assert await authenticator.resolve(other_token) == Principal(Role.VOLUNTEER, other_vid)
    # The subject's hash entry went too: forgetting it later is harmless.
    authenticator.forget(hash_token(token))
    assert await authenticator.resolve(other_token) == Principal(Role.VOLUNTEER, other_vid)


async def test_a_token_cached_again_after_the_cache_filled_up_is_still_revocable(
    authenticator: Authenticator, pg: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth_module, "_CACHE_MAX", 1)
    vid, token = await insert_volunteer(pg)
    other_vid, other_token = await insert_volunteer(pg)
    assert await authenticator.resolve(token) == Principal(Role.VOLUNTEER, vid)
    # The cache is full: this one empties it and is cached alone.
    assert await authenticator.resolve(other_token) == Principal(Role.VOLUNTEER, other_vid)
    await _replace_token(pg, vid)
    assert await authenticator.resolve(token) is None  # not cached any more: PostgreSQL said no
    await _replace_token(pg, other_vid)
    assert await authenticator.resolve(other_token) == Principal(Role.VOLUNTEER, other_vid)
    authenticator.forget(hash_token(other_token))
    assert await authenticator.resolve(other_token) is None


async def test_an_expired_entry_asks_postgresql_again(
    authenticator: Authenticator, pg: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth_module, "_CACHE_TTL_S", -1.0)  # every entry is born expired
    vid, token = await insert_volunteer(pg)
    assert await authenticator.resolve(token) == Principal(Role.VOLUNTEER, vid)
    await _replace_token(pg, vid)
    assert await authenticator.resolve(token) is None


async def test_a_lookup_in_flight_across_a_revocation_is_not_cached(
    authenticator: Authenticator, pg: asyncpg.Connection
) -> None:
    vid, token = await insert_volunteer(pg)
    # Hold the token's row so the look-up waits in PostgreSQL while the rotation happens.
    async with pg.transaction():
        await pg.execute("SELECT 1 FROM volunteers WHERE id = $1 FOR UPDATE", vid)
        await pg.execute("LOCK TABLE volunteers IN ACCESS EXCLUSIVE MODE")
        lookup = asyncio.create_task(authenticator.resolve(token))
        waiting = """SELECT count(*) > 0 FROM pg_stat_activity
                      WHERE datname = current_database() AND wait_event_type = 'Lock'"""
        await wait_until(lambda: pg.fetchval(waiting), what="the look-up waits on the lock")
        assert not lookup.done()
        authenticator.forget(hash_token(token))  # the rotation's pub/sub reaches this worker
    # The look-up read the row before the rotation committed: it answers, but caches nothing.
    assert await lookup == Principal(Role.VOLUNTEER, vid)
    await _replace_token(pg, vid)
    assert await authenticator.resolve(token) is None


@pytest.fixture
async def counted(schema: str) -> AsyncIterator[tuple[Authenticator, list[str]]]:
    """An authenticator whose pool records every statement its connections run."""
    statements: list[str] = []

    async def init(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(lambda logged: statements.append(logged.query))

    pool = await asyncpg.create_pool(schema, min_size=1, max_size=4, init=init)
    yield Authenticator(admin_token=ADMIN_TOKEN, pool=pool), statements
    await pool.close()


def _lookups(statements: list[str]) -> int:
    return sum("token_hash" in s for s in statements)


async def test_concurrent_misses_of_a_token_share_one_look_up(
    counted: tuple[Authenticator, list[str]], pg: asyncpg.Connection
) -> None:
    authenticator, statements = counted
    vid, token = await insert_volunteer(pg)
    other_vid, other_token = await insert_volunteer(pg)
    # A phone's burst, or every phone reconnecting at once: all miss the cache together.
    answers = await asyncio.gather(
        *(authenticator.resolve(token) for _ in range(20)),
        *(authenticator.resolve(other_token) for _ in range(5)),
        *(authenticator.resolve("vol_unknown-token-0123456789") for _ in range(5)),
    )
    me, other = Principal(Role.VOLUNTEER, vid), Principal(Role.VOLUNTEER, other_vid)
    assert answers == [me] * 20 + [other] * 5 + [None] * 5
    assert _lookups(statements) == 3
    # Answered from the cache now; a refusal was not cached, so it is asked again.
    assert await authenticator.resolve(token) == me
    assert await authenticator.resolve("vol_unknown-token-0123456789") is None
    assert _lookups(statements) == 4


async def test_a_caller_that_gives_up_does_not_cancel_the_others_look_up(
    counted: tuple[Authenticator, list[str]], pg: asyncpg.Connection
) -> None:
    authenticator, statements = counted
    vid, token = await insert_volunteer(pg)
    async with pg.transaction():
        await pg.execute("LOCK TABLE volunteers IN ACCESS EXCLUSIVE MODE")
        first = asyncio.create_task(authenticator.resolve(token))
        waiting = """SELECT count(*) > 0 FROM pg_stat_activity
                      WHERE datname = current_database() AND wait_event_type = 'Lock'"""
        await wait_until(lambda: pg.fetchval(waiting), what="the look-up waits on the lock")
        second = asyncio.create_task(authenticator.resolve(token))
        first.cancel()  # its client went away
        with pytest.raises(asyncio.CancelledError):
            await first
    assert await second == Principal(Role.VOLUNTEER, vid)
    assert _lookups(statements) == 1


async def test_a_request_after_a_revocation_does_not_join_a_look_up_begun_before(
    counted: tuple[Authenticator, list[str]], pg: asyncpg.Connection, schema: str
) -> None:
    authenticator, statements = counted
    vid, token = await insert_volunteer(pg)
    # Watched from outside the transaction: inside it, pg_stat_activity is read once and kept.
    observer = await asyncpg.connect(schema)
    waiting = """SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND wait_event_type = 'Lock'"""
    try:
        async with pg.transaction():
            await pg.execute("LOCK TABLE volunteers IN ACCESS EXCLUSIVE MODE")
            before = asyncio.create_task(authenticator.resolve(token))
            await wait_until(
                lambda: observer.fetchval(f"SELECT ({waiting}) = 1"), what="a look-up waits"
            )
            authenticator.forget(hash_token(token))  # the rotation's pub/sub reaches this worker
            after = asyncio.create_task(authenticator.resolve(token))
            await wait_until(
                lambda: observer.fetchval(f"SELECT ({waiting}) = 2"), what="a second look-up"
            )
    finally:
        await observer.close()
    assert await before == Principal(Role.VOLUNTEER, vid)
    assert await after == Principal(Role.VOLUNTEER, vid)
    assert _lookups(statements) == 2
