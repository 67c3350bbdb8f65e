"""Callbacks to 120 end to end: real PostgreSQL, the real delivery loop, a real receiver."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from dispatch import callback_routes, callback_sender, callbacks
from dispatch.callback_sender import CallbackSender
from dispatch.callbacks import make_handler, record_event, record_events, setup_callbacks
from geo import TravelMode, TravelModel
from rescue import db
from rescue.app import create_app
from rescue.bus import BatchContext, Event, bus_ctx, emit, install_bus
from rescue.foreground import Foreground
from rescue.ids import new_id
from rescue.settings import Settings
from rescue.typedefs import bus_key, db_key, foreground_key
from tests.conftest import ADMIN
from tests.dispatch.receiver import Receiver
from tests.dispatch.support import PATIENT, Center, offset, raise_alert, volunteer
from tests.helpers import bearer, create_center, wait_until

FAST = {"callback_backoff_base_s": 0.01, "callback_backoff_max_s": 0.05}
CALLBACKS_PATH = "/v1/incidents/{incident_id}/callbacks"


@dataclass(frozen=True)
class Incident:
    id: str
    external_id: str
    center_id: str


@pytest.fixture
async def pool(pg: asyncpg.Connection, schema: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool like a worker's (JSON codecs), on the emptied test database."""
    if await pg.fetchval("SELECT to_regclass('incidents')") is None:
        pytest.skip("the incidents table (migration 004) does not exist yet")
    created = await db.create_pool(schema, min_size=1, max_size=4)
    yield created
    await created.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """The 120 center's callback endpoint."""
    started = await Receiver().start()
    yield started
    await started.close()


@pytest.fixture
async def client(make_client: Callable[..., Awaitable[TestClient]]) -> TestClient:
    """The app, with the same fast retries as the test's delivery loops (it may run one too)."""
    return await make_client(**FAST)


SenderFactory = Callable[..., Awaitable[CallbackSender]]


@pytest.fixture
async def start_sender(pool: asyncpg.Pool, settings: Settings) -> AsyncIterator[SenderFactory]:
    """Start a delivery loop (one worker's) with some settings changed; several may run."""
    senders: list[CallbackSender] = []

    async def start(**changes: Any) -> CallbackSender:
        sender = CallbackSender(settings.replace(**{**FAST, **changes}))
        await sender.start(pool)
        senders.append(sender)
        return sender

    yield start
    for sender in senders:
        await sender.stop()


async def new_center(client: TestClient, receiver: Receiver | None) -> dict[str, Any]:
    """A dispatch center through the API whose secret the receiver verifies with."""
    center = await create_center(client, callback_url=receiver.url if receiver else None)
    if receiver is not None:
        receiver.secret = center["webhook_secret"]
    return center


async def insert_incident(
    pg: asyncpg.Connection, center_id: str, *, callback_url: str | None = None
) -> Incident:
    """An incident row straight into PostgreSQL (the alert's path is not under test here)."""
    incident = Incident(new_id("inc"), f"QD120-{new_id('x')[-8:]}", center_id)
    await pg.execute(
        """INSERT INTO incidents (id, center_id, external_id, request_hash, lat, lng,
               time_budget_s, budget_now_s, plan, callback_url)
           VALUES ($1, $2, $3, $4, 36.0671, 120.3826, 300, 300, '{}'::jsonb, $5)""",
        incident.id,
        center_id,
        incident.external_id,
        hashlib.sha256(incident.id.encode()).digest(),
        callback_url,
    )
    return incident


def make_event(kind: str, incident: Incident, *, at: datetime | None = None, **data: Any) -> Event:
    """An incident event as the bus hands it to a handler."""
    return Event(
        id=new_id("evt"),
        type=kind,
        data={
            "incident_id": incident.id,
            "external_id": incident.external_id,
            "center_id": incident.center_id,
            "exercise": False,
            **data,
        },
        at=at or datetime.now(UTC),
        key=incident.id,
    )


async def handle(
    pool: asyncpg.Pool, redis: Redis, event: Event, sender: CallbackSender | None = None
) -> None:
    """Run the batch handler of group "callbacks" on one event."""
    ctx = BatchContext(pool=pool, redis=redis, group=callbacks.GROUP, consumer="test")
    await make_handler(sender)([event], ctx)


async def record_together(pool: asyncpg.Pool, events: Iterable[Event]) -> None:
    """Queue several events' callbacks in one transaction, so no worker sees part of them."""
    async with pool.acquire() as conn, conn.transaction():
        for event in events:
            assert await record_event(conn, event) is not None


async def settle(pool: asyncpg.Pool, event_ids: Iterable[str]) -> None:
    """Wait until these events' deliveries are decided and no attempt is in flight."""
    ids = list(event_ids)

    async def settled() -> bool:
        async with pool.acquire() as conn:
            return bool(
                await conn.fetchval(
                    """SELECT count(*) = $2 AND bool_and(d.state <> 'pending') AND NOT EXISTS (
                           SELECT 1 FROM webhook_attempts a JOIN webhook_deliveries w
                               ON w.id = a.delivery_id
                           WHERE w.event_id = ANY($1) AND a.duration_ms IS NULL)
                       FROM webhook_delivery_states d WHERE d.event_id = ANY($1)""",
                    ids,
                    len(ids),
                )
            )

    await wait_until(settled)


async def delivery(pool: asyncpg.Pool, event_id: str) -> asyncpg.Record:
    """The delivery row of an event."""
    async with pool.acquire() as conn:
        return await conn.fetchrow(
            "SELECT * FROM webhook_delivery_states WHERE event_id = $1", event_id
        )


async def attempts(pool: asyncpg.Pool, event_id: str) -> list[asyncpg.Record]:
    """The attempts of an event's delivery, in order."""
    async with pool.acquire() as conn:
        return await conn.fetch(
            """SELECT a.* FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id
               WHERE d.event_id = $1 ORDER BY a.attempt""",
            event_id,
        )


async def test_callbacks_arrive_in_event_order_with_valid_signatures(
    client: TestClient,
    pg: asyncpg.Connection,
    pool: asyncpg.Pool,
    redis: Redis,
    receiver: Receiver,
    start_sender: SenderFactory,
) -> None:
    center = await new_center(client, receiver)
    incident = await insert_incident(pg, center["id"])
    t0 = datetime.now(UTC)
    events = [
        make_event("incident.created", incident, at=t0),
        make_event("offer.created", incident, at=t0 + timedelta(milliseconds=1), offer_id="o1"),
        make_event("offer.accepted", incident, at=t0 + timedelta(seconds=1), offer_id="o1"),
        make_event("responder.status", incident, at=t0 + timedelta(seconds=2), status="arrived"),
        make_event("incident.closed", incident, at=t0 + timedelta(seconds=3)),
    ]
    # Queued out of order (several workers share the bus): delivered in event order anyway.
    await record_together(pool, reversed(events))
    await start_sender()

    received = await receiver.wait_for(len(events))
    await settle(pool, [e.id for e in events])

    assert [e["id"] for e in received] == [e.id for e in events]
    assert [r.status for r in receiver.requests] == [204] * len(events)
    for event, body, request in zip(events, received, receiver.requests, strict=True):
        assert request.webhook_id == event.id
        assert request.headers["content-type"] == "application/json"
        assert body == {
            "id": event.id,
            "type": event.type,
            "incident_id": incident.id,
            "external_id": incident.external_id,
            "at": event.at.isoformat(),
            "data": event.data,
        }
        row = await delivery(pool, event.id)
        assert (row["state"], row["attempts"], row["last_status_code"]) == ("delivered", 1, 204)
        assert row["url"] == receiver.url


async def test_simultaneous_events_go_creation_first_and_end_last(
    client: TestClient,
    pg: asyncpg.Connection,
    pool: asyncpg.Pool,
    redis: Redis,
    receiver: Receiver,
    start_sender: SenderFactory,
) -> None:
    center = await new_center(client, receiver)
    incident = await insert_incident(pg, center["id"])
    at = datetime.now(UTC)
    closed = make_event("incident.closed", incident, at=at)
    offer = make_event("offer.created", incident, at=at)
    created = make_event("incident.created", incident, at=at)
    await record_together(pool, (closed, offer, created))
    await start_sender()

    assert [e["id"] for e in await receiver.wait_for(3)] == [created.id, offer.id, closed.id]


async def test_events_handled_while_running_are_delivered(
    client: TestClient,
    pg: asyncpg.Connection,
    pool: asyncpg.Pool,
    redis: Redis,
    receiver: Receiver,
    start_sender: SenderFactory,
) -> None:
    center = await new_center(client, receiver)
    incident = await insert_incident(pg, center["id"])
    sender = await start_sender()
    sent = []
    for kind in ("incident.created", "offer.created", "offer.declined", "incident.escalated"):
        event = make_event(kind, incident)
        await handle(pool, redis, event, sender)
        sent.append(event.id)
        await receiver.wait_for(len(sent))
    assert receiver.event_ids == sent


async def test_failures_are_retried_until_a_2xx_and_every_attempt_is_recorded(
    client: TestClient,
    pg: asyncpg.Connection,
    pool: asyncpg.Pool,
    redis: Redis,
    receiver: Receiver,
    start_sender: SenderFactory,
) -> None:
    center = await new_center(client, receiver)
    incident = await insert_incident(pg, center["id"])
    first = make_event("incident.created", incident)
    second = make_event("offer.created", incident)
    receiver.fail_next(2)
    await record_together(pool, (first, second))
    await start_sender()

    assert [e["id"] for e in await receiver.wait_for(2)] == [first.id, second.id]
    await settle(pool, [first.id, second.id])

    # The later event waited for the earlier one: the first three requests are all its tries.
    assert [(r.webhook_id, r.status) for r in receiver.requests] == [
        (first.id, 503),
        (first.id, 503),
        (first.id, 204),
        (second.id, 204),
    ]
    row = await delivery(pool, first.id)
    assert (row["state"], row["attempts"], row["last_status_code"]) == ("delivered", 3, 204)
    assert row["last_error"] is None and row["delivered_at"] is not None
    tries = await attempts(pool, first.id)
    assert [(a["attempt"], a["status_code"]) for a in tries] == [(1, 503), (2, 503), (3, 204)]
    assert tries[0]["error"].startswith("HTTP 503") and tries[2]["error"] is None
    assert all(a["duration_ms"] is not None and a["duration_ms"] >= 0 for a in tries)
    assert tries[0]["at"] <= tries[1]["at"] <= tries[2]["at"]
    assert [a["status_code"] for a in await attempts(pool, second.id)] == [204]


async def test_after_max_attempts_it_gives_up_and_the_next_event_goes(
    make_client: Callable[..., Awaitable[TestClient]],
    pg: asyncpg.Connection,
    pool: asyncpg.Pool,
    redis: Redis,
    receiver: Receiver,
    start_sender: SenderFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = await make_client(**FAST, callback_max_attempts=3)
    center = await new_center(client, receiver)
    incident = await insert_incident(pg, center["id"])
    doomed = make_event("incident.created", incident)
    later = make_event("offer.created", incident)
    receiver.fail_next(3, status=500)
    await record_together(pool, (doomed, later))
    with caplog.at_level(logging.WARNING, logger="dispatch.callbacks"):
        await start_sender(callback_max_attempts=3)
        assert [e["id"] for e in await receiver.wait_for(1)] == [later.id]
        await settle(pool, [doomed.id, later.id])

    row = await delivery(pool, doomed.id)
    assert (row["state"], row["attempts"], row["last_status_code"]) == ("failed", 3, 500)
    assert row["delivered_at"] is None
    assert [a["status_code"] for a in await attempts(pool, doomed.id)] == [500, 500, 500]
    assert [r.webhook_id for r in receiver.requests] == [doomed.id] * 3 + [later.id]
    assert any("gave up" in r.getMessage() and doomed.id in r.getMessage() for r in caplog.records)


async def test_an_unreachable_receiver_is_recorded_as_an_error(
    make_client: Callable[..., Awaitable[TestClient]],
    pg: asyncpg.Connection,
    pool: asyncpg.Pool,
    redis: Redis,
    start_sender: SenderFactory,
) -> None:
    client = await make_client(**FAST, callback_max_attempts=2)
    gone = await Receiver().start()
    url = gone.url
    await gone.close()
    center = await create_center(client, callback_url=url)
    incident = await insert_incident(pg, center["id"])
    event = make_event("incident.created", incident)
    await handle(pool, redis, event)
    await start_sender(callback_max_attempts=2)

    async def failed() -> asyncpg.Record | None:
        row = await delivery(pool, event.id)
        return row if row["state"] == "failed" else None

    row = await wait_until(failed)
    assert row["attempts"] == 2 and row["last_status_code"] is None
    assert "Connect" in row["last_error"]
    tries = await attempts(pool, event.id)
    assert [(a["status_code"], "Connect" in a["error"]) for a in tries] == [(None, True)] * 2


async def test_the_same_event_handled_twice_is_delivered_once(
    client: TestClient,
    pg: asyncpg.Connection,
    pool: asyncpg.Pool,
    redis: Redis,
    receiver: Receiver,
    start_sender: SenderFactory,
) -> None:
    center = await new_center(client, receiver)
    incident = await insert_incident(pg, center["id"])
    event = make_event("incident.created", incident)
    async with pool.acquire() as conn:
        assert await record_event(conn, event) is not None
        assert await record_event(conn, event) is None
    await asyncio.gather(*(handle(pool, redis, event) for _ in range(4)))
    await start_sender()

    await receiver.wait_for(1)
    await settle(pool, [event.id])
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM webhook_deliveries") == 1
        assert await conn.fetchval("SELECT count(*) FROM webhook_attempts") == 1
    assert [r.webhook_id for r in receiver.requests] == [event.id]


async def test_the_alerts_callback_url_wins_and_no_url_means_no_callback(
    client: TestClient,
    pg: asyncpg.Connection,
    pool: asyncpg.Pool,
    redis: Redis,
    receiver: Receiver,
    start_sender: SenderFactory,
) -> None:
    center = await new_center(client, receiver)
    own = await Receiver(center["webhook_secret"]).start()
    try:
        with_url = await insert_incident(pg, center["id"], callback_url=own.url)
        event = make_event("incident.created", with_url)
        await handle(pool, redis, event)
        silent_center = await create_center(client, name="no callbacks")
        silent = await insert_incident(pg, silent_center["id"])
        async with pool.acquire() as conn:
            assert await record_event(conn, make_event("incident.created", silent)) is None
            not_incident = make_event("aed.updated", with_url)
            assert await record_event(conn, not_incident) is None
        await start_sender()

        assert [e["id"] for e in await own.wait_for(1)] == [event.id]
        assert receiver.requests == []
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM webhook_deliveries") == 1
    finally:
        await own.close()


async def test_a_batch_queues_what_each_event_alone_would(
    client: TestClient, pg: asyncpg.Connection, pool: asyncpg.Pool, receiver: Receiver
) -> None:
    center = await new_center(client, receiver)
    loud = await insert_incident(pg, center["id"])
    silent = await insert_incident(pg, (await create_center(client, name="quiet"))["id"])
    at = datetime(2026, 11, 23, 8, 0, 0, 123456, tzinfo=UTC)
    created = make_event("incident.created", loud, at=at)
    queued_before = make_event("offer.created", loud, at=at, offer_id="off_1")
    offered = make_event("offer.created", loud, at=at, offer_id="off_2")
    closed = make_event("incident.closed", loud, at=at, outcome={"rosc": True})
    unknown = make_event("incident.created", Incident("inc_gone", "QD120-gone", center["id"]))
    batch = [
        closed,  # stage orders it last although it comes first here
        created,
        make_event("incident.created", silent),
        queued_before,
        make_event("aed.updated", loud),
        offered,
        unknown,
    ]
    async with pool.acquire() as conn:
        assert await record_event(conn, queued_before) is not None
        assert len(await record_events(conn, batch)) == 3
        assert await record_events(conn, batch) == []  # a batch delivered again queues nothing
    rows = await pg.fetch(
        """SELECT event_id, event_type, stage, incident_id, center_id, url, payload
           FROM webhook_deliveries ORDER BY event_at, stage, seq"""
    )
    assert [r["event_id"] for r in rows] == [created.id, queued_before.id, offered.id, closed.id]
    assert {r["url"] for r in rows} == {receiver.url}
    assert {(r["incident_id"], r["center_id"]) for r in rows} == {(loud.id, center["id"])}
    payload = (
        json.loads(rows[2]["payload"])
        if isinstance(rows[2]["payload"], str)
        else rows[2]["payload"]
    )
    assert payload == {
        "id": offered.id,
        "type": "offer.created",
        "incident_id": loud.id,
        "external_id": loud.external_id,
        "at": at.isoformat(),
        "data": offered.data,
    }


async def test_two_workers_deliver_each_event_once_in_order_per_incident(
    client: TestClient,
    pg: asyncpg.Connection,
    pool: asyncpg.Pool,
    redis: Redis,
    receiver: Receiver,
    start_sender: SenderFactory,
) -> None:
    center = await new_center(client, receiver)
    incidents = [await insert_incident(pg, center["id"]) for _ in range(3)]
    kinds = ("incident.created", "offer.created", "offer.accepted", "incident.closed")
    expected: dict[str, list[str]] = {i.id: [] for i in incidents}
    workers = [await start_sender(), await start_sender()]
    receiver.fail_next(3)
    t0 = datetime.now(UTC)
    for step, kind in enumerate(kinds):
        for n, incident in enumerate(incidents):
            event = make_event(kind, incident, at=t0 + timedelta(milliseconds=step * 10 + n))
            await handle(pool, redis, event, workers[n % 2])
            expected[incident.id].append(event.id)

    received = await receiver.wait_for(12)

    assert sorted(r.webhook_id or "" for r in receiver.requests if r.status == 204) == sorted(
        e for ids in expected.values() for e in ids
    )
    for incident in incidents:
        got = [e["id"] for e in received if e["incident_id"] == incident.id]
        assert got == expected[incident.id]


@pytest.fixture
async def api(
    pg: asyncpg.Connection, redis: Redis, settings: Settings
) -> AsyncIterator[TestClient]:
    """The app with the callbacks' routes (added here until dispatch/setup.py wires them)."""
    if await pg.fetchval("SELECT to_regclass('incidents')") is None:
        pytest.skip("the incidents table (migration 004) does not exist yet")
    app: web.Application = create_app(settings=settings.replace(**FAST))
    if not any(r.canonical == CALLBACKS_PATH for r in app.router.resources()):
        app.router.add_routes(callback_routes.routes)
    test_client = TestClient(TestServer(app))
    await test_client.start_server()
    yield test_client
    await test_client.close()


async def test_the_callbacks_of_an_incident_are_listed_with_their_attempts(
    api: TestClient,
    pg: asyncpg.Connection,
    pool: asyncpg.Pool,
    redis: Redis,
    receiver: Receiver,
    start_sender: SenderFactory,
) -> None:
    center = await new_center(api, receiver)
    other = await create_center(api, name="another 120")
    incident = await insert_incident(pg, center["id"])
    events = [make_event(k, incident) for k in ("incident.created", "offer.created")]
    receiver.fail_next(1)
    await record_together(pool, events)
    await start_sender()
    await receiver.wait_for(2)
    await settle(pool, [e.id for e in events])

    path = f"/v1/incidents/{incident.id}/callbacks"
    resp = await api.get(path, headers=ADMIN)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["next_cursor"] is None
    assert [i["event_id"] for i in body["items"]] == [e.id for e in events]
    first = body["items"][0]
    assert first["state"] == "delivered" and first["attempts"] == 2
    assert first["type"] == "incident.created" and first["url"] == receiver.url
    assert first["next_attempt_at"] is None and first["delivered_at"] is not None
    assert first["payload"]["id"] == events[0].id
    assert [(a["attempt"], a["status_code"]) for a in first["attempt_log"]] == [(1, 503), (2, 204)]

    resp = await api.get(path, headers=bearer(center["api_key"]), params={"limit": "1"})
    assert resp.status == 200
    page1 = await resp.json()
    assert [i["event_id"] for i in page1["items"]] == [events[0].id]
    resp = await api.get(
        path, headers=bearer(center["api_key"]), params={"cursor": page1["next_cursor"]}
    )
    page2 = await resp.json()
    assert [i["event_id"] for i in page2["items"]] == [events[1].id]
    assert page2["next_cursor"] is None

    # Another center's incident does not exist for it (as for GET /v1/incidents/{id}).
    resp = await api.get(path, headers=bearer(other["api_key"]))
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"
    resp = await api.get("/v1/incidents/inc_missing/callbacks", headers=ADMIN)
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"
    resp = await api.get(path)
    assert resp.status == 401


@pytest.fixture
async def wired(
    pg: asyncpg.Connection, redis: Redis, settings: Settings
) -> AsyncIterator[TestClient]:
    """The app with the bus and setup_callbacks wired (here until app.py/dispatch do it)."""
    if await pg.fetchval("SELECT to_regclass('incidents')") is None:
        pytest.skip("the incidents table (migration 004) does not exist yet")
    app: web.Application = create_app(settings=settings.replace(**FAST))
    if bus_key not in app:
        install_bus(app)
        app.cleanup_ctx.append(bus_ctx)
    if callbacks.GROUP not in app[bus_key].groups:
        setup_callbacks(app)
    test_client = TestClient(TestServer(app))
    await test_client.start_server()
    yield test_client
    await test_client.close()


async def test_events_emitted_on_the_bus_reach_the_120_center_in_order(
    wired: TestClient, pg: asyncpg.Connection, receiver: Receiver
) -> None:
    center = await new_center(wired, receiver)
    incident = await insert_incident(pg, center["id"])
    data = {"incident_id": incident.id, "external_id": incident.external_id}
    pool = wired.app[db_key]
    async with pool.acquire() as conn, conn.transaction():
        created = await emit(conn, type="incident.created", data=data, key=incident.id)
        offered = await emit(conn, type="offer.created", data=data, key=incident.id)
        await emit(conn, type="aed.updated", data={"aed_id": "aed_1"})
    async with pool.acquire() as conn, conn.transaction():
        closed = await emit(conn, type="incident.closed", data=data, key=incident.id)

    received = await receiver.wait_for(3)

    assert [e["id"] for e in received] == [created.id, offered.id, closed.id]
    assert received[0]["external_id"] == incident.external_id
    assert [r.status for r in receiver.requests] == [204, 204, 204]


async def test_a_post_waits_for_the_workers_alerts_in_flight(
    make_client: Callable[..., Awaitable[TestClient]],
    pg: asyncpg.Connection,
    pool: asyncpg.Pool,
    settings: Settings,
    receiver: Receiver,
) -> None:
    api = await make_client(background=False, **FAST)  # no delivery loop but the test's
    center = await new_center(api, receiver)
    incident = await insert_incident(pg, center["id"])
    event = make_event("incident.created", incident)
    foreground = Foreground(max_wait_s=60)
    sender = CallbackSender(settings.replace(**FAST), foreground=foreground)
    await sender.start(pool)
    try:
        with foreground.busy():
            await record_together(pool, [event])
            claimed = "SELECT attempts = 1 FROM webhook_delivery_states WHERE event_id = $1"
            await wait_until(lambda: pg.fetchval(claimed, event.id), what="claimed")
            # Claimed, and held before its POST while the alert is in flight.
            arrival = asyncio.create_task(receiver.wait_for(1))
            done, _ = await asyncio.wait({arrival}, timeout=0.2)
            assert not done and receiver.requests == []
            arrival.cancel()
        received = await receiver.wait_for(1)
        assert [e["id"] for e in received] == [event.id]
    finally:
        await sender.stop()


async def alert_with_one_offer(
    api: TestClient, pg: asyncpg.Connection, receiver: Receiver
) -> tuple[str, list[str]]:
    """An alert through the API that offers one volunteer; its incident id and event ids."""
    center = await new_center(api, receiver)
    c = Center(id=center["id"], headers=bearer(center["api_key"]))
    await volunteer(api, pg, offset(PATIENT, north_m=100))
    plan = await raise_alert(api, c)
    assert len(plan["responders"]) == 1
    events = await pg.fetch(
        "SELECT event_id, type FROM outbox WHERE key = $1 ORDER BY id", plan["incident_id"]
    )
    assert [e["type"] for e in events] == ["incident.created", "offer.created"]
    return plan["incident_id"], [e["event_id"] for e in events]


async def queued_with_their_events(pg: asyncpg.Connection, event_ids: list[str]) -> bool:
    """Whether these events' deliveries were written by the transaction that wrote the events
    (created_at is now(): the transaction's start)."""
    return bool(
        await pg.fetchval(
            """SELECT count(*) = cardinality($1::text[]) FROM webhook_deliveries d
               JOIN outbox o ON o.event_id = d.event_id AND o.created_at = d.created_at
               WHERE d.event_id = ANY($1)""",
            event_ids,
        )
    )


async def test_an_alert_queues_its_callbacks_in_its_commit_and_its_worker_sends_them(
    wired: TestClient, pg: asyncpg.Connection, receiver: Receiver
) -> None:
    incident_id, event_ids = await alert_with_one_offer(wired, pg, receiver)

    received = await receiver.wait_for(2)
    assert [e["id"] for e in received] == event_ids
    assert received[0]["incident_id"] == incident_id
    pool = wired.app[db_key]
    await settle(pool, event_ids)
    # Queued and claimed by the alert's own statement (one attempt each, no other claim).
    assert await queued_with_their_events(pg, event_ids)
    for event_id in event_ids:
        row = await delivery(pool, event_id)
        assert (row["state"], row["attempts"], row["last_status_code"]) == ("delivered", 1, 204)
        [attempt] = await attempts(pool, event_id)
        assert attempt["at"] == row["created_at"]
    # The callbacks group recorded them without queueing them again.
    bus = wired.app[bus_key]
    recorded = """SELECT count(*) = 2 FROM bus_processed
                  WHERE group_name = $1 AND event_id = ANY($2)"""
    await wait_until(lambda: pg.fetchval(recorded, callbacks.GROUP, event_ids), what="recorded")
    await wait_until(lambda: bus.stats.served >= 2, what="served")
    assert len(receiver.requests) == 2


async def test_an_alert_in_a_worker_without_a_free_sender_announces_its_callbacks(
    make_client: Callable[..., Awaitable[TestClient]],
    pg: asyncpg.Connection,
    receiver: Receiver,
    start_sender: SenderFactory,
) -> None:
    """No slot here (this worker runs no delivery loop): queued unclaimed, and the NOTIFY of
    the alert's statement wakes another worker's loop at once (its poll is 5 s away)."""
    api = await make_client(background=False, **FAST)  # no bus, no loop: nobody else queues
    await start_sender()
    _, event_ids = await alert_with_one_offer(api, pg, receiver)

    # Claimed here, they would wait for their lease (30 s); unannounced, for the poll (5 s).
    received = await receiver.wait_for(2, timeout=3.0)
    assert [e["id"] for e in received] == event_ids
    assert await queued_with_their_events(pg, event_ids)
    assert [len(await attempts(api.app[db_key], e)) for e in event_ids] == [1, 1]


async def test_a_worker_serving_other_alerts_leaves_the_callbacks_to_the_group(
    wired: TestClient, pg: asyncpg.Connection, receiver: Receiver
) -> None:
    """Another alert in flight on the worker: its sender's POSTs would hold that one up, so the
    callbacks group queues them (in a transaction of its own) and whichever worker reads it
    sends them."""
    with wired.app[foreground_key].busy():  # another alert, in flight throughout
        incident_id, event_ids = await alert_with_one_offer(wired, pg, receiver)
        received = await receiver.wait_for(2)

    assert [e["id"] for e in received] == event_ids
    assert received[0]["incident_id"] == incident_id
    await settle(wired.app[db_key], event_ids)
    assert not await queued_with_their_events(pg, event_ids)
    assert wired.app[bus_key].stats.served == 0


async def test_a_wave_queues_its_callbacks_in_its_commit_behind_the_alerts(
    make_client: Callable[..., Awaitable[TestClient]],
    pg: asyncpg.Connection,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Queued unclaimed by the wave's statement, without a NOTIFY (this worker's sender has a
    free slot): the wave wakes its own worker's delivery loop, whose poll is a minute away."""
    monkeypatch.setattr(callback_sender, "POLL_S", 60.0)
    api = await make_client(escalation_window_s=1, **FAST)
    center = await new_center(api, receiver)
    c = Center(id=center["id"], headers=bearer(center["api_key"]))
    model = TravelModel()
    # Beyond the alert's 300 s walk, within the second wave's 420 s.
    await volunteer(api, pg, offset(PATIENT, east_m=model.reach_m(380, TravelMode.WALK)))
    plan = await raise_alert(api, c)
    assert plan["responders"] == []

    received = await receiver.wait_for(3, timeout=30)

    assert [e["type"] for e in received] == [
        "incident.created",
        "incident.escalated",
        "offer.created",
    ]
    wave = [e["id"] for e in received[1:]]
    assert await queued_with_their_events(pg, wave)
    assert [len(await attempts(api.app[db_key], e)) for e in wave] == [1, 1]
    bus = api.app[bus_key]
    await wait_until(lambda: bus.stats.served >= 3, what="the alert's and the wave's served")
