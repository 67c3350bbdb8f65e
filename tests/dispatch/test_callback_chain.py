"""The attempt that delivers an incident's event claims the incident's next one in the same
statement (dispatch.callback_sender.DELIVERED_CLAIM_NEXT): real PostgreSQL, statement by
statement, as two workers could interleave them."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from dispatch.callback_sender import CLAIM_DUE, DELIVERED_CLAIM_NEXT, LEASE_S
from dispatch.callbacks import record_events
from rescue import db
from rescue.bus import Event
from rescue.centers.service import create_center
from rescue.ids import new_id

AT = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)


@pytest.fixture
async def pool(pg: asyncpg.Connection, schema: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool like a worker's (JSON codecs), on the emptied test database."""
    created = await db.create_pool(schema, min_size=1, max_size=2)
    yield created
    await created.close()


async def queue_incident(conn: asyncpg.Connection, center_id: str, kinds: list[str]) -> list[str]:
    """An incident whose events (one per kind, a millisecond apart) are queued; their ids."""
    incident_id = new_id("inc")
    await conn.execute(
        """INSERT INTO incidents (id, center_id, external_id, request_hash, lat, lng,
               time_budget_s, budget_now_s, plan)
           VALUES ($1, $2, $3, $4, 36.0671, 120.3826, 300, 300, '{}'::jsonb)""",
        incident_id,
        center_id,
        f"QD120-{incident_id[-8:]}",
        hashlib.sha256(incident_id.encode()).digest(),
    )
    events = [
        Event(
            id=new_id("evt"),
            type=kind,
            data={"incident_id": incident_id, "external_id": f"QD120-{incident_id[-8:]}"},
            at=AT + timedelta(milliseconds=n),
            key=incident_id,
        )
        for n, kind in enumerate(kinds)
    ]
    assert len(await record_events(conn, events)) == len(events)
    return [e.id for e in events]


async def state(conn: asyncpg.Connection, event_id: str) -> tuple[str, int, list[int | None]]:
    """A delivery's state, its attempts, and the status code recorded on each attempt row."""
    row = await conn.fetchrow(
        """SELECT d.state, d.attempts,
                  array(SELECT a.status_code FROM webhook_attempts a
                        WHERE a.delivery_id = d.id ORDER BY a.attempt) AS codes
           FROM webhook_deliveries d WHERE d.event_id = $1""",
        event_id,
    )
    return row["state"], row["attempts"], list(row["codes"])


async def delivered_claim_next(conn: asyncpg.Connection, claimed: asyncpg.Record) -> asyncpg.Record:
    """Record a 204 for a claimed delivery, as the sender does; what it claimed next."""
    return await conn.fetchrow(
        DELIVERED_CLAIM_NEXT, claimed["id"], claimed["attempts"], 204, None, 3, LEASE_S
    )


@pytest.fixture
async def conn(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as connection:
        yield connection


@pytest.fixture
async def center_id(conn: asyncpg.Connection) -> str:
    center = await create_center(conn, name="120", callback_url="http://127.0.0.1:9/callbacks")
    return str(center["id"])


async def test_a_delivered_event_claims_its_incidents_next_one(
    conn: asyncpg.Connection, center_id: str
) -> None:
    kinds = ["incident.created", "offer.created", "offer.created"]
    first, second, third = await queue_incident(conn, center_id, kinds)
    (other,) = await queue_incident(conn, center_id, ["incident.created"])
    heads = {r["event_id"]: r for r in await conn.fetch(CLAIM_DUE, 10, LEASE_S)}
    assert heads.keys() == {first, other}  # each incident's head only

    claimed = await delivered_claim_next(conn, heads[first])

    assert claimed["event_id"] == second and claimed["attempts"] == 1
    assert claimed["webhook_secret"] and claimed["url"] == "http://127.0.0.1:9/callbacks"
    assert await state(conn, first) == ("delivered", 1, [204])
    assert await state(conn, second) == ("pending", 1, [None])  # claimed, attempt in flight
    assert await state(conn, third) == ("pending", 0, [])
    # The next claim takes the third, the last claims nothing; the other incident is untouched.
    assert (await delivered_claim_next(conn, claimed))["event_id"] == third
    last = await conn.fetchrow("SELECT * FROM webhook_deliveries WHERE event_id = $1", third)
    assert await delivered_claim_next(conn, last) is None
    assert await state(conn, third) == ("delivered", 1, [204])
    assert await state(conn, other) == ("pending", 1, [None])
    # Nothing left due for the delivery loop but the other incident's head, in flight.
    assert await conn.fetch(CLAIM_DUE, 10, LEASE_S) == []


async def test_the_next_event_is_not_claimed_before_it_is_due(
    conn: asyncpg.Connection, center_id: str
) -> None:
    first, second, third = await queue_incident(
        conn, center_id, ["incident.created", "offer.created", "offer.created"]
    )
    (head,) = await conn.fetch(CLAIM_DUE, 10, LEASE_S)
    # The second waits for a retry (as after a failed attempt): the third must not jump it.
    await conn.execute(
        "UPDATE webhook_deliveries SET next_attempt_at = now() + interval '1 minute' "
        "WHERE event_id = $1",
        second,
    )

    assert await delivered_claim_next(conn, head) is None
    assert await state(conn, first) == ("delivered", 1, [204])
    assert await state(conn, second) == ("pending", 0, [])
    assert await state(conn, third) == ("pending", 0, [])


async def test_an_attempt_past_its_lease_marks_and_claims_nothing(
    conn: asyncpg.Connection, center_id: str
) -> None:
    first, second = await queue_incident(conn, center_id, ["incident.created", "offer.created"])
    (head,) = await conn.fetch(CLAIM_DUE, 10, LEASE_S)
    # Its lease ran out and another worker claimed the event again (attempt 2).
    await conn.execute(
        "UPDATE webhook_deliveries SET next_attempt_at = now() - interval '1 second' "
        "WHERE event_id = $1",
        first,
    )
    (again,) = await conn.fetch(CLAIM_DUE, 10, LEASE_S)
    assert (again["event_id"], again["attempts"]) == (first, 2)

    assert await delivered_claim_next(conn, head) is None  # the first attempt finishes late
    # Its own attempt row is finished; the delivery stays with attempt 2, the next unclaimed.
    assert await state(conn, first) == ("pending", 2, [204, None])
    assert await state(conn, second) == ("pending", 0, [])
