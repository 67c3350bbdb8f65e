"""Who is connected to a guidance session: told live, shown in the state, across workers."""

from __future__ import annotations

import time
from typing import Any

import asyncpg
from redis.asyncio import Redis

from dispatch.guidance import presence
from dispatch.guidance.constants import presence_key
from tests.dispatch.guidance_support import (
    accept,
    get_session,
    join,
    next_presence,
    receive,
    scene,
)


def online_of(session: dict[str, Any]) -> dict[str, bool]:
    """role -> online, of a session's participants (one dispatcher, one responder here)."""
    return {p["role"]: p["online"] for p in session["participants"]}


async def test_who_comes_online_and_goes_offline_is_told_and_shown(
    make_client: Any, pg: asyncpg.Connection
) -> None:
    a = await make_client()
    b = await make_client()  # another worker: the responder's sockets are there
    s = await scene(a, pg)
    responder = await accept(a, s, s.volunteers[0])
    async with await join(a, s.session_id, s.token) as dispatcher:
        state = await receive(dispatcher)
        assert state["me"]["online"] is True
        assert online_of(state) == {"dispatcher": True, "responder": False}

        phone = await join(b, s.session_id, responder.token)
        mine = await receive(phone)
        assert mine["me"]["online"] is True and online_of(mine)["responder"] is True
        came = await next_presence(dispatcher)
        assert came["event"] == "online"
        assert came["participant"] == {"id": mine["me"]["id"], "role": "responder"}
        status, body = await get_session(a, s.session_id, s.token)
        assert status == 200 and online_of(body) == {"dispatcher": True, "responder": True}

        # A second socket of the same participant (another tab): not told again, nor when
        # one of the two closes. The chat after it comes first.
        second = await join(a, s.session_id, responder.token)
        await receive(second)
        await second.close()
        await phone.send_json({"type": "chat", "text": "到了"})
        after = await dispatcher.receive_json(timeout=10)
        assert (after["type"], after.get("text")) == ("chat", "到了")

        await phone.close()
        gone = await next_presence(dispatcher)
        assert gone["event"] == "offline" and gone["participant"]["id"] == mine["me"]["id"]
        status, body = await get_session(a, s.session_id, s.token)
        assert online_of(body) == {"dispatcher": True, "responder": False}


async def test_the_sockets_of_a_dead_worker_lapse_and_are_told_offline(redis: Redis) -> None:
    """A worker that died never removed its sockets: they lapse, and the next renewal of any
    worker holding the session removes them and names who is now offline."""
    key = presence_key("gs_test")
    now = time.time()
    await redis.zadd(
        key,
        {
            "gp_dead responder gone-worker-socket": now - 1,  # lapsed: its worker stopped renewing
            "gp_both responder lapsed-socket": now - 1,
            "gp_both responder live-socket": now + 30,  # the same participant, on a live worker
            "gp_mine dispatcher my-socket": now - 1,  # this worker's, renewed now
        },
    )
    assert await presence.online(redis, "gs_test") == {"gp_both"}

    gone = await presence.renew(redis, {"gs_test": ["gp_mine dispatcher my-socket"]})

    assert gone == {"gs_test": [{"id": "gp_dead", "role": "responder"}]}
    assert await presence.online(redis, "gs_test") == {"gp_both", "gp_mine"}
    assert await redis.zscore(key, "gp_dead responder gone-worker-socket") is None
    assert 0 < await redis.ttl(key) <= 2 * presence.LAPSE_S
    # Renewal never brings back a socket its worker removed meanwhile (ZADD XX).
    await presence.renew(redis, {"gs_test": ["gp_closed responder closed-socket"]})
    assert await redis.zscore(key, "gp_closed responder closed-socket") is None
