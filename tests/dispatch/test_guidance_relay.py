"""Guidance sessions: signalling to one addressee, bad messages, markers to 120, the end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from tests.dispatch.guidance_support import accept, get_session, join, next_of, receive, scene
from tests.dispatch.receiver import Receiver
from tests.dispatch.support import Center, alert_body, post_alert
from tests.helpers import bearer, create_center, wait_until


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """The 120 center's callback endpoint."""
    started = await Receiver().start()
    yield started
    await started.close()


async def test_signalling_reaches_only_its_addressee(
    make_client: Any, pg: asyncpg.Connection
) -> None:
    a = await make_client()
    b = await make_client()
    s = await scene(a, pg, volunteers=2)
    first = await accept(a, s, s.volunteers[0])
    second = await accept(a, s, s.volunteers[1])
    async with (
        await join(a, s.session_id, s.token) as dispatcher,
        await join(b, s.session_id, first.token) as phone1,
        await join(a, s.session_id, second.token) as phone2,
    ):
        states = [await receive(ws) for ws in (dispatcher, phone1, phone2)]
        me = [state["me"]["id"] for state in states]
        sdp = {"kind": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}
        await dispatcher.send_json({"type": "signal", "to": me[1], "data": sdp})
        got = await receive(phone1)
        assert got["type"] == "signal" and got["data"] == sdp and got["to"] == me[1]
        assert got["from"] == {"id": me[0], "role": "dispatcher"} and got["at"]
        # The answer goes back across workers, to the dispatcher only.
        answer = {"kind": "answer", "sdp": "v=0"}
        await phone1.send_json({"type": "signal", "to": me[0], "data": answer})
        assert (await receive(dispatcher))["data"] == answer
        # A chat after the signals: the first thing the others see is the chat, in order.
        await dispatcher.send_json({"type": "chat", "text": "视频已接通"})
        for ws in (phone2, dispatcher, phone1):
            assert (await receive(ws))["type"] == "chat"
        # Signalling is relayed, never recorded.
        status, body = await get_session(a, s.session_id, s.token)
        assert status == 200
        assert "signal" not in {m["type"] for m in body["timeline"]}


async def test_a_bad_message_gets_an_error_and_the_socket_stays_open(
    client: TestClient, pg: asyncpg.Connection
) -> None:
    s = await scene(client, pg)
    responder = await accept(client, s, s.volunteers[0])
    async with (
        await join(client, s.session_id, s.token) as dispatcher,
        await join(client, s.session_id, responder.token) as phone,
    ):
        await receive(dispatcher)
        await receive(phone)
        bad: list[tuple[Any, Any, str]] = [
            (dispatcher, "not json", "invalid_message"),
            (dispatcher, [1, 2], "invalid_message"),
            (dispatcher, {"type": "dance"}, "unknown_type"),
            (dispatcher, {"type": "marker", "marker": "teleported"}, "invalid_marker"),
            (dispatcher, {"type": "marker", "marker": "handed_over"}, "marker_not_allowed"),
            (dispatcher, {"type": "chat", "text": "   "}, "invalid_message"),
            (dispatcher, {"type": "chat", "text": "长" * 2001}, "invalid_message"),
            (dispatcher, {"type": "step", "step": "pray"}, "unknown_step"),
            (phone, {"type": "step", "step": "shock"}, "forbidden"),
            (phone, {"type": "signal", "to": "gp_nobody", "data": {}}, "unknown_participant"),
            (phone, {"type": "signal", "to": "gp_nobody", "data": "sdp"}, "invalid_message"),
            (phone, {"type": "signal", "data": {}}, "invalid_message"),
        ]
        for ws, message, code in bad:
            if isinstance(message, str):
                await ws.send_str(message)
            else:
                await ws.send_json(message)
            error = await receive(ws)
            assert error["type"] == "error", message
            assert error["error"]["code"] == code, (message, error)
            assert error["error"]["message"]
        await phone.send_bytes(b"\x00")
        assert (await receive(phone))["error"]["code"] == "invalid_message"
        # Still open, and nothing bad was recorded.
        await phone.send_json({"type": "chat", "text": "还在"})
        assert (await next_of(dispatcher, "chat"))["text"] == "还在"
        status, body = await get_session(client, s.session_id, s.token)
        assert status == 200
        assert [m["type"] for m in body["timeline"]] == ["participant", "chat"]
        assert body["step"] == "en_route"


async def test_markers_land_in_the_timeline_and_reach_120(
    make_client: Any, pg: asyncpg.Connection, receiver: Receiver
) -> None:
    client = await make_client(callback_backoff_base_s=0.01, callback_backoff_max_s=0.05)
    created = await create_center(client, callback_url=receiver.url)
    receiver.secret = created["webhook_secret"]
    c = Center(id=created["id"], headers=bearer(created["api_key"]))
    s = await scene(client, pg, the_center=c)
    responder = await accept(client, s, s.volunteers[0])
    async with (
        await join(client, s.session_id, s.token) as dispatcher,
        await join(client, s.session_id, responder.token) as phone,
    ):
        state = await receive(dispatcher)
        await receive(phone)
        await dispatcher.send_json({"type": "marker", "marker": "ems_arrived"})
        ems = await next_of(dispatcher, "marker")
        await phone.send_json({"type": "marker", "marker": "pads_attached"})
        pads = await next_of(dispatcher, "marker")
        await dispatcher.send_json({"type": "step", "step": "stand_clear"})
        await next_of(dispatcher, "step")

    resp = await client.get(f"/v1/incidents/{s.incident_id}", headers=c.headers)
    timeline = (await resp.json())["timeline"]
    by_type = {e["type"]: e for e in timeline}
    assert by_type["ems_arrived"]["at"] == ems["at"]
    assert by_type["ems_arrived"]["actor"] == state["me"]["id"]
    assert by_type["ems_arrived"]["data"]["marker"] == "ems_arrived"
    assert by_type["pads_attached"]["at"] == pads["at"]
    assert by_type["pads_attached"]["actor"] == s.volunteers[0].id
    assert by_type["guidance_step"]["data"]["step"] == "stand_clear"

    def kinds(events: list[dict[str, Any]]) -> list[str]:
        return [e["type"] for e in events]

    async def delivered() -> list[dict[str, Any]]:
        wanted = {"guidance.marker", "responder.status", "guidance.step"}
        return receiver.events if wanted <= set(kinds(receiver.events)) else []

    events = await wait_until(delivered)
    (marker,) = [e for e in events if e["type"] == "guidance.marker"]
    assert marker["incident_id"] == s.incident_id
    assert marker["external_id"] == s.plan["external_id"]
    assert marker["data"]["marker"] == "ems_arrived"
    assert marker["data"]["role"] == "dispatcher"
    assert marker["data"]["center_id"] == c.id and marker["data"]["exercise"] is False
    assert marker["at"] == ems["at"]
    (status,) = [e for e in events if e["type"] == "responder.status"]
    assert status["data"]["status"] == "pads_attached"
    assert status["data"]["volunteer_id"] == s.volunteers[0].id


async def test_closing_the_incident_closes_the_session_for_everyone(
    make_client: Any, pg: asyncpg.Connection
) -> None:
    a = await make_client()
    b = await make_client()
    s = await scene(a, pg)
    responder = await accept(a, s, s.volunteers[0])
    async with (
        await join(a, s.session_id, s.token) as dispatcher,
        await join(b, s.session_id, responder.token) as phone,
    ):
        await receive(dispatcher)
        await receive(phone)
        resp = await a.post(
            f"/v1/incidents/{s.incident_id}/close",
            json={"outcome": {"rosc": True, "transported": True}},
            headers=s.center.headers,
        )
        assert resp.status == 200
        for ws in (dispatcher, phone):
            closed = await next_of(ws, "closed")
            assert closed["status"] == "closed" and closed["at"] and closed["id"]
            assert closed["from"]["role"] == "dispatcher"
            end = await ws.receive(timeout=10)
            assert end.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert dispatcher.closed or (await dispatcher.receive(timeout=10)).type in (
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.CLOSE,
        )

    # Later: the record is readable, a new socket gets the state, `closed`, then the end.
    status, body = await get_session(b, s.session_id, responder.token)
    assert status == 200 and body["status"] == "closed" and body["closed_at"]
    assert body["timeline"][-1]["type"] == "closed"
    async with await join(b, s.session_id, s.token) as late:
        state = await receive(late)
        assert state["type"] == "state" and state["status"] == "closed"
        assert (await receive(late)) == body["timeline"][-1]
        assert (await late.receive(timeout=10)).type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
        )


async def test_a_cancelled_incident_says_why(client: TestClient, pg: asyncpg.Connection) -> None:
    s = await scene(client, pg)
    async with await join(client, s.session_id, s.token) as dispatcher:
        await receive(dispatcher)
        resp = await client.post(
            f"/v1/incidents/{s.incident_id}/cancel",
            json={"reason": "误报"},
            headers=s.center.headers,
        )
        assert resp.status == 200
        closed = await next_of(dispatcher, "closed")
        assert closed["status"] == "cancelled" and closed["reason"] == "误报"


async def test_a_responder_withdrawing_in_the_session_ends_its_engagement(
    client: TestClient, pg: asyncpg.Connection
) -> None:
    s = await scene(client, pg)
    responder = await accept(client, s, s.volunteers[0])
    async with await join(client, s.session_id, responder.token) as phone:
        await receive(phone)
        await phone.send_json({"type": "marker", "marker": "withdrawn"})
        assert (await next_of(phone, "marker"))["marker"] == "withdrawn"
        offer = await pg.fetchrow(
            "SELECT last_status, engaged FROM offers WHERE id = $1", responder.offer_id
        )
        assert offer["last_status"] == "withdrawn" and offer["engaged"] is False
        # Still in the session: a later marker is the session's, not its offer's.
        await phone.send_json({"type": "marker", "marker": "ems_arrived"})
        assert (await next_of(phone, "marker"))["marker"] == "ems_arrived"
        await phone.send_json({"type": "marker", "marker": "handed_over"})
        assert (await next_of(phone, "error"))["error"]["code"] == "not_engaged"
    # (Withdrawing brings escalation forward: its events may come in between.)
    events = await pg.fetch(
        """SELECT type, coalesce(data->>'status', data->>'marker') AS what FROM outbox
           WHERE data->>'incident_id' = $1 AND type IN ('responder.status', 'guidance.marker')
           ORDER BY id""",
        s.incident_id,
    )
    assert [(e["type"], e["what"]) for e in events] == [
        ("responder.status", "withdrawn"),
        ("guidance.marker", "ems_arrived"),
    ]


async def test_an_exercise_session_says_so_and_marks_its_entries(
    client: TestClient, pg: asyncpg.Connection
) -> None:
    s = await scene(client, pg, exercise=True)
    async with await join(client, s.session_id, s.token) as dispatcher:
        state = await receive(dispatcher)
        assert state["exercise"] is True
        await dispatcher.send_json({"type": "marker", "marker": "cpr_started"})
        await next_of(dispatcher, "marker")
    data = await pg.fetchval(
        "SELECT data FROM timeline WHERE incident_id = $1 AND type = 'cpr_started'",
        s.incident_id,
    )
    assert '"exercise": true' in data


async def test_a_replayed_alert_answers_the_same_working_token(
    client: TestClient, pg: asyncpg.Connection
) -> None:
    s = await scene(client, pg)
    body = alert_body()
    first = await post_alert(client, s.center, body)
    again = await post_alert(client, s.center, body)
    token = (await again.json())["guidance"]["token"]
    assert token == (await first.json())["guidance"]["token"]
    session_id = (await again.json())["guidance"]["session_id"]
    assert (await get_session(client, session_id, token))[0] == 200
