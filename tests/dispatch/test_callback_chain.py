"""An incident's callbacks go out as runs: the statement that queues a new incident's events
claims them as one run (dispatch.callbacks.QUEUE_DELIVERIES), and the statement that records a
run delivered claims the incident's next event (dispatch.callback_sender.DELIVERED_CLAIM_NEXT).
Real PostgreSQL, statement by statement, as two workers could interleave them; then a real
sender and receiver."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from dispatch import callback_sender
from dispatch.callback_sender import (
    CHANNEL,
    CLAIM_DUE,
    DELIVERED_CLAIM_NEXT,
    LEASE_S,
    RUN_MAX,
    CallbackSender,
)
from dispatch.callbacks import queue_events, record_events
from rescue import db
from rescue.bus import Event
from rescue.centers.service import create_center
from rescue.ids import new_id
from rescue.settings import Settings
from tests.dispatch.receiver import Receiver
from tests.helpers import wait_until

AT = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)


@pytest.fixture
async def pool(pg: asyncpg.Connection, schema: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool like a worker's (JSON codecs), on the emptied test database."""
    created = await db.create_pool(schema, min_size=1, max_size=2)
    yield created
    await created.close()


async def queue_incident(conn: asyncpg.Connection, center_id: str, kinds: list[str]) -> list[str]:
    """An incident whose events (one per kind, a millisecond apart) are queued; their ids."""
    events = await new_incident(conn, center_id, kinds)
    assert len(await record_events(conn, events)) == len(events)
    return [e.id for e in events]


async def new_incident(conn: asyncpg.Connection, center_id: str, kinds: list[str]) -> list[Event]:
    """An incident, and its events (one per kind, a millisecond apart), not queued yet."""
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
    return events


async def state(conn: asyncpg.Connection, event_id: str) -> tuple[str, int, list[int | None]]:
    """A delivery's state, its attempts, and the status code recorded on each attempt row."""
    row = await conn.fetchrow(
        """SELECT d.state, d.attempts,
                  array(SELECT a.status_code FROM webhook_attempts a
                        WHERE a.delivery_id = d.id ORDER BY a.attempt) AS codes
           FROM webhook_delivery_states d WHERE d.event_id = $1""",
        event_id,
    )
    return row["state"], row["attempts"], list(row["codes"])


async def delivered_claim_next(conn: asyncpg.Connection, *claimed: Any) -> asyncpg.Record:
    """Record a 204 for claimed deliveries (a run), as the sender does; what it claimed next."""
    return await conn.fetchrow(
        DELIVERED_CLAIM_NEXT,
        [c["id"] for c in claimed],
        [c["attempts"] for c in claimed],
        [204] * len(claimed),
        [3] * len(claimed),
        LEASE_S,
        True,
    )


async def claim_due(conn: asyncpg.Connection, heads: int = 10) -> list[asyncpg.Record]:
    """The delivery loop's claim: up to `heads` due incidents, each with its run."""
    return list(await conn.fetch(CLAIM_DUE, heads, LEASE_S, RUN_MAX - 1))


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
    created, *rest = await new_incident(conn, center_id, kinds)
    (run,) = (await queue_events(conn, [created], claim=True)).runs
    await record_events(conn, rest)
    first, second, third = created.id, rest[0].id, rest[1].id
    (other,) = await queue_incident(conn, center_id, ["incident.created"])
    # The first incident's head is in flight: the loop takes only the other's.
    assert [r["event_id"] for r in await claim_due(conn)] == [other]

    claimed = await delivered_claim_next(conn, *run)

    assert claimed["event_id"] == second and claimed["attempts"] == 1
    assert claimed["webhook_secret"] and claimed["url"] == "http://127.0.0.1:9/callbacks"
    assert await state(conn, first) == ("delivered", 1, [204])
    assert await state(conn, second) == ("pending", 1, [None])  # claimed, attempt in flight
    assert await state(conn, third) == ("pending", 0, [])
    # The next claim takes the third, the last claims nothing; the other incident is untouched.
    assert (await delivered_claim_next(conn, claimed))["event_id"] == third
    last = await conn.fetchrow("SELECT * FROM webhook_delivery_states WHERE event_id = $1", third)
    assert await delivered_claim_next(conn, last) is None
    assert await state(conn, third) == ("delivered", 1, [204])
    assert await state(conn, other) == ("pending", 1, [None])
    # Nothing left due for the delivery loop: the other incident's head is in flight.
    assert await claim_due(conn) == []


ROW_VERSIONS = "SELECT event_id, ctid::text, xmin::text FROM webhook_deliveries ORDER BY event_id"


async def test_a_delivery_row_is_written_once(conn: asyncpg.Connection, center_id: str) -> None:
    # Claimed, delivered, failed, retried, released and given up: all of it is written to the
    # pending rows and the attempts (migration 014); the delivery's own row keeps its version.
    kinds = ["incident.created", "offer.created", "offer.created"]
    created, *rest = await new_incident(conn, center_id, kinds)
    (run,) = (await queue_events(conn, [created], claim=True)).runs
    await record_events(conn, rest)
    written = await conn.fetch(ROW_VERSIONS)

    second = await delivered_claim_next(conn, *run)
    assert (
        await conn.fetchval(
            callback_sender.MARK_FAILED, second["id"], 1, 503, "HTTP 503", 4, 2, 0.0
        )
        == "pending"
    )
    claimed = await claim_due(conn)
    assert [(r["event_id"], r["attempts"]) for r in claimed] == [(rest[0].id, 2), (rest[1].id, 1)]
    await conn.execute(callback_sender.RELEASE, [claimed[1]["id"]], [1])
    assert (
        await conn.fetchval(
            callback_sender.MARK_FAILED, claimed[0]["id"], 2, 503, "HTTP 503", 4, 2, 0.0
        )
        == "failed"
    )

    assert await conn.fetch(ROW_VERSIONS) == written
    assert await state(conn, created.id) == ("delivered", 1, [204])
    assert await state(conn, rest[0].id) == ("failed", 2, [503, 503])
    assert await state(conn, rest[1].id) == ("pending", 0, [])


async def test_the_next_event_is_not_claimed_before_it_is_due(
    conn: asyncpg.Connection, center_id: str
) -> None:
    first, second, third = await queue_incident(
        conn, center_id, ["incident.created", "offer.created", "offer.created"]
    )
    # The second waits for a retry (as after a failed attempt): the third must not jump it,
    # neither in the loop's run nor claimed after the first.
    await conn.execute(
        "UPDATE webhook_pending SET next_attempt_at = now() + interval '1 minute' "
        "WHERE id = (SELECT id FROM webhook_deliveries WHERE event_id = $1)",
        second,
    )
    (head,) = await claim_due(conn)
    assert head["event_id"] == first

    assert await delivered_claim_next(conn, head) is None
    assert await state(conn, first) == ("delivered", 1, [204])
    assert await state(conn, second) == ("pending", 0, [])
    assert await state(conn, third) == ("pending", 0, [])


async def test_an_attempt_past_its_lease_marks_and_claims_nothing(
    conn: asyncpg.Connection, center_id: str
) -> None:
    created, offered = await new_incident(conn, center_id, ["incident.created", "offer.created"])
    ((head,),) = (await queue_events(conn, [created], claim=True)).runs
    await record_events(conn, [offered])
    first, second = created.id, offered.id
    # Its lease ran out and another worker claimed the event again (attempt 2), with the one
    # queued behind it.
    await conn.execute(
        "UPDATE webhook_pending SET next_attempt_at = now() - interval '1 second' "
        "WHERE id = (SELECT id FROM webhook_deliveries WHERE event_id = $1)",
        first,
    )
    again = await claim_due(conn)
    assert [(r["event_id"], r["attempts"]) for r in again] == [(first, 2), (second, 1)]

    assert await delivered_claim_next(conn, head) is None  # the first attempt finishes late
    # Its own attempt row is finished; the delivery stays with attempt 2, the next in flight.
    assert await state(conn, first) == ("pending", 2, [204, None])
    assert await state(conn, second) == ("pending", 1, [None])


async def test_queueing_a_new_incident_claims_its_events_as_one_run(
    conn: asyncpg.Connection, center_id: str
) -> None:
    created, offered, also = await new_incident(
        conn, center_id, ["incident.created", "offer.created", "offer.created"]
    )
    queued = await queue_events(conn, [offered, created, also], claim=True)

    (run,) = queued.runs
    assert [r["event_id"] for r in run] == [created.id, offered.id, also.id]  # in event order
    assert {r["attempts"] for r in run} == {1} and all(r["webhook_secret"] for r in run)
    assert run[0]["payload"]["id"] == created.id
    assert not queued.waiting  # nothing for the delivery loops: no NOTIFY, no wake-up
    for event in (created, offered, also):
        assert await state(conn, event.id) == ("pending", 1, [None])  # in flight
    assert await claim_due(conn) == []  # no other worker takes any
    # The same batch again queues and claims nothing.
    again = await queue_events(conn, [created, offered, also], claim=True)
    assert (again.ids, again.runs) == ([], [])


async def test_a_later_event_is_left_to_the_delivery_loops(
    conn: asyncpg.Connection, center_id: str
) -> None:
    created, offered, accepted = await new_incident(
        conn, center_id, ["incident.created", "offer.created", "offer.accepted"]
    )
    assert (await queue_events(conn, [created, offered], claim=True)).runs
    # Its creation was queued before: the acceptance waits behind the run, announced.
    queued = await queue_events(conn, [accepted], claim=True)
    assert (len(queued.ids), queued.runs, queued.waiting) == (1, [], True)
    assert await state(conn, accepted.id) == ("pending", 0, [])
    # Without claim (no free sender), a new incident's events wait for the loops too.
    fresh = await new_incident(conn, center_id, ["incident.created", "offer.created"])
    queued = await queue_events(conn, fresh, claim=False)
    assert (len(queued.ids), queued.runs, queued.waiting) == (2, [], True)
    # The loop claims them as one run; the acceptance still waits behind the first run.
    assert [r["event_id"] for r in await claim_due(conn)] == [fresh[0].id, fresh[1].id]


async def deliver_with_the_second_failing(
    pool: asyncpg.Pool,
    conn: asyncpg.Connection,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    first_kind: str,
    send: Any,
) -> None:
    """Four events of an incident through a real sender to a real receiver that fails the
    second request once; `send(sender, conn, events)` hands them over. They must arrive in
    order: the first, the second failed, then the second, third and fourth; every attempt
    recorded, the two after the failure sent once. The loop's poll is set to a minute: the
    retry is due within 50 ms, and only the failed run's wake-up brings the loop to it."""
    monkeypatch.setattr(callback_sender, "POLL_S", 60.0)
    receiver = await Receiver().start()
    sender = CallbackSender(
        settings.replace(callback_backoff_base_s=0.01, callback_backoff_max_s=0.05)
    )
    try:
        center = await create_center(conn, name="120", callback_url=receiver.url)
        receiver.secret = center["webhook_secret"]
        kinds = [first_kind, "offer.created", "offer.created", "offer.created"]
        events = await new_incident(conn, str(center["id"]), kinds)
        receiver.fail_requests(2)
        await sender.start(pool)
        await send(sender, conn, events)

        received = await receiver.wait_for(4)

        ids = [e.id for e in events]
        assert [e["id"] for e in received] == ids
        assert [(r.webhook_id, r.status) for r in receiver.requests] == [
            (ids[0], 204),
            (ids[1], 503),
            (ids[1], 204),
            (ids[2], 204),
            (ids[3], 204),
        ]

        async def settled() -> bool:
            states = [(await state(conn, i))[0] for i in ids]
            return states == ["delivered"] * len(ids)

        await wait_until(settled)
        assert await state(conn, ids[0]) == ("delivered", 1, [204])
        assert await state(conn, ids[1]) == ("delivered", 2, [503, 204])
        # The two after the failure were released unattempted, then sent once.
        assert await state(conn, ids[2]) == ("delivered", 1, [204])
        assert await state(conn, ids[3]) == ("delivered", 1, [204])
    finally:
        await sender.stop()
        await receiver.close()


async def test_a_run_that_fails_midway_is_resumed_in_order(
    pool: asyncpg.Pool,
    conn: asyncpg.Connection,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def send(sender: CallbackSender, conn: asyncpg.Connection, events: list[Event]) -> None:
        (run,) = (await queue_events(conn, events, claim=True)).runs  # a new incident's run
        sender.send_run(run)

    await deliver_with_the_second_failing(
        pool, conn, settings, monkeypatch, "incident.created", send
    )


async def test_the_loop_sends_a_wave_as_one_run_in_order_and_resumes_it_after_a_failure(
    pool: asyncpg.Pool,
    conn: asyncpg.Connection,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def send(sender: CallbackSender, conn: asyncpg.Connection, events: list[Event]) -> None:
        # Queued unclaimed, as a wave's are: the delivery loop's to claim.
        assert len(await record_events(conn, events)) == len(events)
        sender.wake()

    await deliver_with_the_second_failing(
        pool, conn, settings, monkeypatch, "incident.escalated", send
    )


async def test_the_delivery_loop_claims_each_due_head_with_the_events_behind_it(
    conn: asyncpg.Connection, center_id: str
) -> None:
    # A wave's events (queued unclaimed, as an escalation's are), a long backlog, and an
    # incident whose second event waits for a retry.
    wave = await queue_incident(conn, center_id, ["incident.escalated", *["offer.created"] * 3])
    backlog = await queue_incident(conn, center_id, ["offer.expired"] * (RUN_MAX + 2))
    stuck = await queue_incident(conn, center_id, ["offer.expired"] * 3)
    await conn.execute(
        "UPDATE webhook_pending SET next_attempt_at = now() + interval '1 minute' "
        "WHERE id = (SELECT id FROM webhook_deliveries WHERE event_id = $1)",
        stuck[1],
    )

    claimed = await claim_due(conn)

    runs: dict[str, list[str]] = {}
    for row in claimed:
        runs.setdefault(row["incident_id"], []).append(row["event_id"])
        assert row["attempts"] == 1 and row["webhook_secret"]
    # Each incident's run in event order, at most RUN_MAX, up to the first event not due.
    assert sorted(runs.values()) == sorted([wave, backlog[:RUN_MAX], stuck[:1]])
    assert [r["event_id"] for r in claimed if r["event_id"] in wave] == wave
    for event_id in [*wave, *backlog[:RUN_MAX], stuck[0]]:
        assert await state(conn, event_id) == ("pending", 1, [None])
    for event_id in [*backlog[RUN_MAX:], *stuck[1:]]:
        assert await state(conn, event_id) == ("pending", 0, [])
    # Another worker's loop finds nothing: every head is in flight.
    assert await claim_due(conn) == []


async def test_the_delivery_loop_claims_as_many_incidents_as_it_has_slots(
    conn: asyncpg.Connection, center_id: str
) -> None:
    first = await queue_incident(conn, center_id, ["incident.created", "offer.created"])
    second = await queue_incident(conn, center_id, ["incident.created", "offer.created"])

    one = [r["event_id"] for r in await claim_due(conn, heads=1)]
    other = [r["event_id"] for r in await claim_due(conn, heads=1)]

    assert sorted([one, other]) == sorted([first, second])


async def test_the_loop_does_not_claim_again_a_follower_another_worker_is_recording(
    pg: asyncpg.Connection, pool: asyncpg.Pool, conn: asyncpg.Connection, center_id: str
) -> None:
    # Worker A claimed an incident's event when it was the incident's only one; an event that
    # sorts before it came late (its batch read after), and A's lease ran out: the late one is
    # now the due head, A's event a due follower. A records its attempt delivered meanwhile.
    early, late = await new_incident(conn, center_id, ["offer.created", "offer.expired"])
    await record_events(conn, [late])
    (in_flight,) = await claim_due(conn)
    await record_events(conn, [early])
    await conn.execute(
        "UPDATE webhook_pending SET next_attempt_at = now() - interval '1 second' "
        "WHERE id = (SELECT id FROM webhook_deliveries WHERE event_id = $1)",
        late.id,
    )
    async with pool.acquire() as worker_a:
        recording = worker_a.transaction()
        await recording.start()
        await worker_a.fetchrow(
            DELIVERED_CLAIM_NEXT, [in_flight["id"]], [1], [204], [3], LEASE_S, False
        )
        loop_pid = conn.get_server_pid()
        claiming = asyncio.create_task(claim_due(conn))

        async def loop_waits_for_a() -> bool:
            # Asked outside A's transaction, which would keep its first snapshot of the activity.
            return await pg.fetchval(
                "SELECT $2 = ANY (pg_blocking_pids($1))", loop_pid, worker_a.get_server_pid()
            )

        await wait_until(loop_waits_for_a, what="the delivery loop waiting for A's row lock")
        await recording.commit()
        claimed = await claiming

    # The loop takes the head alone: the follower it waited for is delivered, not sent again.
    assert [(r["event_id"], r["attempts"]) for r in claimed] == [(early.id, 1)]
    assert await state(conn, late.id) == ("delivered", 1, [204])
    assert await state(conn, early.id) == ("pending", 1, [None])


async def test_what_a_worker_can_send_itself_is_not_announced_to_the_others(
    conn: asyncpg.Connection, center_id: str, schema: str
) -> None:
    heard: list[str] = []
    listener = await asyncpg.connect(schema)
    await listener.add_listener(CHANNEL, lambda *args: heard.append(args[3]))
    try:
        created, offered, accepted = await new_incident(
            conn, center_id, ["incident.created", "offer.created", "offer.accepted"]
        )
        await queue_events(conn, [created, offered], claim=True)
        # A later event, queued by a worker with a free slot: waiting for its own loop only.
        queued = await queue_events(conn, [accepted], claim=True)
        assert queued.waiting and not queued.runs
        # A worker with no free slot announces what it queued to every worker's loop.
        (other,) = await new_incident(conn, center_id, ["incident.created"])
        assert (await queue_events(conn, [other], claim=False)).waiting

        await wait_until(lambda: bool(heard))
        await listener.execute("SELECT 1")  # a round trip: any earlier notification is in
        assert heard == [""]
    finally:
        await listener.close()
