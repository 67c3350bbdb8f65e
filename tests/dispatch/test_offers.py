"""The volunteer's offers: listing, acceptance races, declines, status markers, expiry."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import asyncpg
from redis.asyncio import Redis

from geo import Crs, from_wgs84
from tests.dispatch.support import (
    PATIENT,
    aed,
    center,
    location,
    offset,
    raise_alert,
    responders,
    volunteer,
)
from volunteers.constants import ENGAGED

OFFER_KEYS = {
    "id",
    "incident_id",
    "role",
    "state",
    "eta_s",
    "distance_m",
    "offered_at",
    "expires_at",
    "exercise",
    "aed",
    "incident",
    "guidance",
}


def offer_of(plan: dict[str, Any], volunteer_id: str) -> str:
    """The offer id a plan made to a volunteer."""
    (offer_id,) = [r["offer_id"] for r in plan["responders"] if r["volunteer_id"] == volunteer_id]
    return str(offer_id)


async def test_accept_reveals_the_location(
    make_client: Any, pg: asyncpg.Connection, redis: Redis
) -> None:
    client = await make_client()
    c = await center(client)
    fetcher = await volunteer(client, pg, offset(PATIENT, north_m=60))
    await volunteer(client, pg, offset(PATIENT, north_m=20))
    unit = await aed(client, offset(PATIENT, north_m=80), access_note="前台登记")
    plan = await raise_alert(client, c, address="青岛市市南区香港中路 10 号")
    assert responders(plan)[fetcher.id] == "aed"

    resp = await client.get("/v1/me/offers", headers=fetcher.headers)
    assert resp.status == 200
    body = await resp.json()
    assert body["next_cursor"] is None
    (offer,) = body["items"]
    assert set(offer) == OFFER_KEYS
    assert offer["state"] == "open" and offer["role"] == "aed"
    assert offer["incident"] is None and offer["guidance"] is None
    assert offer["aed"]["id"] == unit and offer["aed"]["access_note"] == "前台登记"
    assert 55 <= offer["distance_m"] <= 65 and offer["eta_s"] > 0

    resp = await client.post(
        f"/v1/me/offers/{offer['id']}/accept?crs=gcj02", headers=fetcher.headers
    )
    assert resp.status == 200, await resp.text()
    accepted = await resp.json()
    assert set(accepted) == OFFER_KEYS
    assert accepted["state"] == "accepted"
    assert accepted["incident"]["address"] == "青岛市市南区香港中路 10 号"
    lat, lng = from_wgs84(*PATIENT, Crs.GCJ02)
    where = accepted["incident"]["location"]
    assert (
        where["crs"] == "gcj02"
        and abs(where["lat"] - lat) < 1e-6
        and abs(where["lng"] - lng) < 1e-6
    )
    guidance = accepted["guidance"]
    assert guidance["session_id"] == plan["guidance"]["session_id"]
    assert guidance["token"] != plan["guidance"]["token"]
    participant = await pg.fetchrow(
        "SELECT role, volunteer_id, token_hash FROM guidance_participants WHERE session_id = $1"
        " AND role = 'responder'",
        guidance["session_id"],
    )
    assert participant["volunteer_id"] == fetcher.id
    assert participant["token_hash"] == hashlib.sha256(guidance["token"].encode()).digest()
    assert await redis.hget(ENGAGED, fetcher.id) == plan["incident_id"]
    assert await pg.fetchval("SELECT engaged FROM offers WHERE id = $1", offer["id"]) is True
    kinds = await pg.fetch(
        "SELECT type, actor FROM timeline WHERE incident_id = $1 AND type = 'offer_accepted'",
        plan["incident_id"],
    )
    assert [(k["type"], k["actor"]) for k in kinds] == [("offer_accepted", fetcher.id)]
    assert await pg.fetchval("SELECT count(*) FROM outbox WHERE type = 'offer.accepted'") == 1
    # Still listed while engaged, with the same token.
    (listed,) = (await (await client.get("/v1/me/offers", headers=fetcher.headers)).json())["items"]
    assert listed["state"] == "accepted" and listed["guidance"]["token"] == guidance["token"]


async def test_only_the_volunteers_own_offers(make_client: Any, pg: asyncpg.Connection) -> None:
    client = await make_client()
    c = await center(client)
    owner = await volunteer(client, pg, offset(PATIENT, north_m=60))
    stranger = await volunteer(client, pg, None)
    offer_id = offer_of(await raise_alert(client, c), owner.id)
    for action in ("accept", "decline"):
        resp = await client.post(f"/v1/me/offers/{offer_id}/{action}", headers=stranger.headers)
        assert resp.status == 404
    resp = await client.post(
        f"/v1/me/offers/{offer_id}/status", json={"status": "arrived"}, headers=stranger.headers
    )
    assert resp.status == 404
    assert (await (await client.get("/v1/me/offers", headers=stranger.headers)).json())[
        "items"
    ] == []
    assert (await client.post(f"/v1/me/offers/{offer_id}/accept", headers=c.headers)).status == 403
    assert await pg.fetchval("SELECT state FROM offers WHERE id = $1", offer_id) == "open"


async def test_a_second_acceptance_of_the_same_offer_loses(
    make_client: Any, pg: asyncpg.Connection
) -> None:
    first, second = await make_client(), await make_client()
    c = await center(first)
    vol = await volunteer(first, pg, offset(PATIENT, north_m=60))
    offer_id = offer_of(await raise_alert(first, c), vol.id)
    results = await asyncio.gather(
        *(
            client.post(f"/v1/me/offers/{offer_id}/accept", headers=vol.headers)
            for client in (first, second, first, second)
        )
    )
    assert sorted(r.status for r in results) == [200, 409, 409, 409]
    for r in results:
        if r.status == 409:
            assert (await r.json())["error"]["code"] == "offer_not_open"
    assert (
        await pg.fetchval("SELECT count(*) FROM guidance_participants WHERE role = 'responder'")
        == 1
    )
    assert await pg.fetchval("SELECT count(*) FROM outbox WHERE type = 'offer.accepted'") == 1


async def test_one_volunteer_accepting_two_incidents_at_once_gets_one(
    make_client: Any, pg: asyncpg.Connection
) -> None:
    first, second = await make_client(), await make_client()
    c = await center(first)
    vol = await volunteer(first, pg, offset(PATIENT, north_m=60))
    one = offer_of(await raise_alert(first, c), vol.id)
    other_place = location(offset(PATIENT, north_m=200))
    two = offer_of(await raise_alert(first, c, location=other_place), vol.id)
    results = await asyncio.gather(
        first.post(f"/v1/me/offers/{one}/accept", headers=vol.headers),
        second.post(f"/v1/me/offers/{two}/accept", headers=vol.headers),
    )
    assert sorted(r.status for r in results) == [200, 409]
    (loser,) = [r for r in results if r.status == 409]
    # Refused by the engagement index, or, once the winner withdrew it, as no longer open.
    assert (await loser.json())["error"]["code"] in ("already_engaged", "offer_not_open")
    assert await pg.fetchval("SELECT count(*) FROM offers WHERE engaged") == 1
    assert await pg.fetchval("SELECT count(*) FROM offers WHERE state = 'accepted'") == 1


async def test_accepting_withdraws_the_volunteers_other_open_offers(
    make_client: Any, pg: asyncpg.Connection
) -> None:
    client = await make_client()
    c = await center(client)
    vol = await volunteer(client, pg, offset(PATIENT, north_m=60))
    first = await raise_alert(client, c)
    other_place = location(offset(PATIENT, north_m=200))
    second = await raise_alert(client, c, location=other_place)
    one, two = offer_of(first, vol.id), offer_of(second, vol.id)
    due_before = await pg.fetchval(
        "SELECT next_escalation_at FROM incidents WHERE id = $1", second["incident_id"]
    )
    assert due_before > await pg.fetchval("SELECT now()")

    resp = await client.post(f"/v1/me/offers/{one}/accept", headers=vol.headers)
    assert resp.status == 200

    assert await pg.fetchval("SELECT state FROM offers WHERE id = $1", two) == "cancelled"
    listed = (await (await client.get("/v1/me/offers", headers=vol.headers)).json())["items"]
    assert [o["id"] for o in listed] == [one]
    entry = await pg.fetchrow(
        "SELECT actor, data->>'offer_id' AS offer_id, data->>'reason' AS reason FROM timeline"
        " WHERE incident_id = $1 AND type = 'offer_cancelled'",
        second["incident_id"],
    )
    assert tuple(entry) == ("system", two, "engaged_elsewhere")
    events = await pg.fetch(
        "SELECT data->>'offer_id' AS offer_id, data->>'reason' AS reason FROM outbox"
        " WHERE type = 'offer.cancelled'"
    )
    assert [tuple(e) for e in events] == [(two, "engaged_elsewhere")]
    # Its only responder withdrawn, the second incident escalates now, not at its window.
    due = await pg.fetchval(
        "SELECT next_escalation_at FROM incidents WHERE id = $1", second["incident_id"]
    )
    assert due <= await pg.fetchval("SELECT now()")
    # The first incident is untouched, and the withdrawn offer cannot be accepted.
    assert await pg.fetchval("SELECT state FROM offers WHERE id = $1", one) == "accepted"
    resp = await client.post(f"/v1/me/offers/{two}/accept", headers=vol.headers)
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "offer_not_open"


async def test_the_database_refuses_a_second_engagement_even_if_redis_forgot(
    make_client: Any, pg: asyncpg.Connection, redis: Redis
) -> None:
    client = await make_client()
    c = await center(client)
    vol = await volunteer(client, pg, offset(PATIENT, north_m=60))
    first = await raise_alert(client, c)
    resp = await client.post(f"/v1/me/offers/{offer_of(first, vol.id)}/accept", headers=vol.headers)
    assert resp.status == 200
    # An engaged volunteer is not offered another incident...
    assert vol.id not in responders(await raise_alert(client, c))
    # ...and if Redis lost the engagement, PostgreSQL still refuses a second one.
    await redis.delete(ENGAGED)
    again = await raise_alert(client, c)
    resp = await client.post(f"/v1/me/offers/{offer_of(again, vol.id)}/accept", headers=vol.headers)
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "already_engaged"


async def test_status_markers_land_in_the_timeline(
    make_client: Any, pg: asyncpg.Connection, redis: Redis
) -> None:
    client = await make_client()
    c = await center(client)
    vol = await volunteer(client, pg, offset(PATIENT, north_m=60))
    plan = await raise_alert(client, c)
    offer_id = offer_of(plan, vol.id)
    url = f"/v1/me/offers/{offer_id}/status"
    resp = await client.post(url, json={"status": "arrived"}, headers=vol.headers)
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "offer_not_engaged"
    assert (
        await client.post(f"/v1/me/offers/{offer_id}/accept", headers=vol.headers)
    ).status == 200
    resp = await client.post(url, json={"status": "dancing"}, headers=vol.headers)
    assert resp.status == 400
    assert (await resp.json())["error"]["details"][0]["field"] == "status"
    markers = [
        "aed_collected",
        "arrived",
        "cpr_started",
        "pads_attached",
        "shock_delivered",
        "rosc",
    ]
    for marker in [*markers, "handed_over"]:
        resp = await client.post(url, json={"status": marker}, headers=vol.headers)
        assert resp.status == 200, await resp.text()
    rows = await pg.fetch(
        "SELECT type, actor, data FROM timeline WHERE incident_id = $1 ORDER BY id",
        plan["incident_id"],
    )
    tail = [r["type"] for r in rows][-8:]
    assert tail == ["offer_accepted", *markers, "handed_over"]
    assert all(r["actor"] == vol.id for r in rows[-7:])
    assert await pg.fetchval("SELECT count(*) FROM outbox WHERE type = 'responder.status'") == 7
    # handed_over ended the engagement: no more markers, and the volunteer is free again.
    assert await pg.fetchval("SELECT engaged FROM offers WHERE id = $1", offer_id) is False
    assert await redis.hget(ENGAGED, vol.id) is None
    resp = await client.post(url, json={"status": "rosc"}, headers=vol.headers)
    assert resp.status == 409
    assert vol.id in responders(await raise_alert(client, c))


async def test_decline(make_client: Any, pg: asyncpg.Connection) -> None:
    client = await make_client()
    c = await center(client)
    vol = await volunteer(client, pg, offset(PATIENT, north_m=60))
    plan = await raise_alert(client, c)
    offer_id = offer_of(plan, vol.id)
    resp = await client.post(f"/v1/me/offers/{offer_id}/decline", headers=vol.headers)
    assert resp.status == 200
    declined = await resp.json()
    assert declined["state"] == "declined" and declined["incident"] is None
    for action in ("decline", "accept"):
        resp = await client.post(f"/v1/me/offers/{offer_id}/{action}", headers=vol.headers)
        assert resp.status == 409
        assert (await resp.json())["error"]["code"] == "offer_not_open"
    assert (await (await client.get("/v1/me/offers", headers=vol.headers)).json())["items"] == []
    types = await pg.fetch("SELECT type FROM timeline WHERE incident_id = $1", plan["incident_id"])
    assert "offer_declined" in [t["type"] for t in types]
    assert await pg.fetchval("SELECT count(*) FROM outbox WHERE type = 'offer.declined'") == 1


async def test_an_expired_offer_cannot_be_accepted(
    make_client: Any, pg: asyncpg.Connection
) -> None:
    client = await make_client()
    c = await center(client)
    vol = await volunteer(client, pg, offset(PATIENT, north_m=60))
    offer_id = offer_of(await raise_alert(client, c), vol.id)
    # Time passes (the sweep has not run yet: the state is still 'open').
    await pg.execute(
        "UPDATE offers SET expires_at = now() - interval '1 second' WHERE id = $1", offer_id
    )
    assert (await (await client.get("/v1/me/offers", headers=vol.headers)).json())["items"] == []
    resp = await client.post(f"/v1/me/offers/{offer_id}/accept", headers=vol.headers)
    assert resp.status == 409
    assert "expired" in (await resp.json())["error"]["message"]
