"""Guidance sessions: tokens, two workers in one room, reconnects, markers, signalling, close."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import ADMIN
from tests.dispatch.guidance_support import accept, get_session, join, next_of, receive, scene
from tests.helpers import bearer, wait_until


async def test_the_dispatcher_reads_the_session_with_the_plans_token(
    client: TestClient, pg: asyncpg.Connection
) -> None:
    s = await scene(client, pg)
    status, body = await get_session(client, s.session_id, s.token)
    assert status == 200, body
    assert body["session_id"] == s.session_id and body["incident_id"] == s.incident_id
    assert body["status"] == "open" and body["exercise"] is False
    (dispatcher,) = body["participants"]
    assert dispatcher["role"] == "dispatcher" and dispatcher["volunteer_id"] is None
    assert body["me"] == dispatcher
    assert body["step"] == "en_route" == body["protocol"]["first_step"]
    assert body["timeline"] == []
    protocol = body["protocol"]
    assert protocol["metronome"]["cadence_per_min"] == 110
    steps = {step["id"]: step for step in protocol["steps"]}
    assert steps["compressions"]["metronome"] is True
    assert steps["compressions"]["cadence_per_min"] == 110
    assert steps["check"]["metronome"] is False and steps["check"]["cadence_per_min"] is None
    for step in protocol["steps"]:
        assert step["title_zh"] and step["title_en"]
        assert set(step["roles"]) == {"dispatcher", "cpr", "aed"}
        assert all(t["text_zh"] and t["text_en"] for t in step["roles"].values())
    assert "100-120" in steps["compressions"]["roles"]["cpr"]["text_en"]
    assert "5-6" in steps["compressions"]["roles"]["cpr"]["text_zh"]


async def test_any_other_token_is_refused(client: TestClient, pg: asyncpg.Connection) -> None:
    s = await scene(client, pg)
    other = await scene(client, pg, the_center=s.center)
    path = f"/v1/guidance/{s.session_id}"

    resp = await client.get(path)
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "unauthorized"
    assert (await get_session(client, s.session_id, "gds_not-a-real-token"))[0] == 401
    # The other incident's dispatcher, an admin, the center's key, a volunteer: 403.
    assert (await get_session(client, s.session_id, other.token))[0] == 403
    for headers in (ADMIN, s.center.headers, s.volunteers[0].headers):
        resp = await client.get(path, headers=headers)
        assert resp.status == 403, await resp.text()
        assert (await resp.json())["error"]["code"] == "forbidden"
    # A volunteer offered (not accepted) has no token; a session id alone opens nothing.
    for token in ("gds_not-a-real-token", other.token):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await join(client, s.session_id, token)
        assert refused.value.status in (401, 403)
    resp = await client.get(f"{path}/ws", headers=bearer(s.token))
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "websocket_required"


async def test_two_workers_share_one_room(make_client: Any, pg: asyncpg.Connection) -> None:
    a = await make_client()
    b = await make_client()
    s = await scene(a, pg)
    async with await join(a, s.session_id, s.token) as dispatcher:
        state = await receive(dispatcher)
        assert state["type"] == "state" and state["me"]["role"] == "dispatcher"
        responder = await accept(b, s, s.volunteers[0])
        joined = await next_of(dispatcher, "participant")
        assert joined["event"] == "joined"
        assert joined["participant"]["volunteer_id"] == s.volunteers[0].id
        assert joined["participant"]["responder_role"] == "cpr"
        assert joined["from"] == {"id": joined["participant"]["id"], "role": "responder"}

        async with await join(b, s.session_id, responder.token) as phone:
            mine = await receive(phone)
            assert mine["type"] == "state" and mine["me"]["id"] == joined["participant"]["id"]
            assert [m["type"] for m in mine["timeline"]] == ["participant"]

            await dispatcher.send_json({"type": "step", "step": "compressions"})
            for ws in (dispatcher, phone):
                step = await next_of(ws, "step")
                assert step["step"] == "compressions"
                assert step["from"] == {"id": state["me"]["id"], "role": "dispatcher"}

            await phone.send_json({"type": "chat", "text": "  到了，开始按压  "})
            for ws in (dispatcher, phone):
                chat = await next_of(ws, "chat")
                assert chat["text"] == "到了，开始按压" and chat["from"]["role"] == "responder"

            # The responder's marker is its offer's status (through the bus), seen by both.
            await phone.send_json({"type": "marker", "marker": "cpr_started"})
            for ws in (dispatcher, phone):
                marker = await next_of(ws, "marker")
                assert marker["marker"] == "cpr_started"
                assert marker["from"] == {"id": mine["me"]["id"], "role": "responder"}
            await dispatcher.send_json({"type": "marker", "marker": "ems_arrived"})
            for ws in (dispatcher, phone):
                assert (await next_of(ws, "marker"))["marker"] == "ems_arrived"

    offer = await pg.fetchrow(
        "SELECT last_status, engaged FROM offers WHERE id = $1", responder.offer_id
    )
    assert offer["last_status"] == "cpr_started" and offer["engaged"] is True
    status, body = await get_session(b, s.session_id, responder.token)
    assert status == 200
    assert body["step"] == "compressions"
    assert [m["type"] for m in body["timeline"]] == [
        "participant",
        "step",
        "chat",
        "marker",
        "marker",
    ]


async def test_a_reconnect_gets_the_full_state_and_misses_nothing(
    make_client: Any, pg: asyncpg.Connection
) -> None:
    a = await make_client()
    b = await make_client()
    s = await scene(a, pg)
    responder = await accept(a, s, s.volunteers[0])
    live: list[dict[str, Any]] = []
    async with await join(a, s.session_id, s.token) as dispatcher:
        await receive(dispatcher)
        async with await join(b, s.session_id, responder.token) as phone:
            await receive(phone)
            await dispatcher.send_json({"type": "step", "step": "check"})
            live.append(await next_of(phone, "step"))
            assert await next_of(dispatcher, "step") == live[-1]
            await dispatcher.send_json({"type": "chat", "text": "先判断呼吸"})
            live.append(await next_of(phone, "chat"))
            assert await next_of(dispatcher, "chat") == live[-1]
        # The phone is gone: what happens now it must get when it comes back.
        await dispatcher.send_json({"type": "step", "step": "compressions"})
        await dispatcher.send_json({"type": "marker", "marker": "cpr_started"})
        missed = [await next_of(dispatcher, "step"), await next_of(dispatcher, "marker")]
        # The phone's own marker, from its offer (POST /status), while it was away.
        resp = await b.post(
            f"/v1/me/offers/{responder.offer_id}/status",
            json={"status": "arrived"},
            headers=responder.headers,
        )
        assert resp.status == 200
        missed.append(await next_of(dispatcher, "marker"))
        assert missed[-1]["marker"] == "arrived"

        async with await join(b, s.session_id, responder.token) as phone:
            state = await receive(phone)
            assert state["type"] == "state"
            assert state["step"] == "compressions"
            assert state["timeline"][1:] == live + missed
            assert state["timeline"][0]["type"] == "participant"
            (me,) = [p for p in state["participants"] if p["role"] == "responder"]
            assert me["status"] == "arrived" and me["engaged"] is True
            # Live again, and nothing it already has is sent twice.
            await dispatcher.send_json({"type": "chat", "text": "好"})
            after = await receive(phone)
            assert after["type"] == "chat" and after["text"] == "好"
            assert after["id"] > max(m["id"] for m in state["timeline"])


async def test_session_tokens_never_reach_the_logs(
    client: TestClient, pg: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    s = await scene(client, pg)
    secret = s.token.split("_", 1)[1]
    async with await join(client, s.session_id, s.token) as ws:
        assert (await receive(ws))["type"] == "state"
        await ws.send_str("not json")
        assert (await receive(ws))["type"] == "error"
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await join(client, s.session_id, s.token + "x")

    async def logged() -> list[logging.LogRecord]:
        return [r for r in caplog.records if f"/v1/guidance/{s.session_id}/ws" in r.getMessage()]

    records = await wait_until(logged, timeout=5)
    assert "token=[redacted]" in records[0].getMessage()
    for record in caplog.records:
        assert secret not in record.getMessage()
        assert secret not in str(getattr(record, "first_request_line", ""))
