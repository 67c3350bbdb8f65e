"""Guidance rooms across workers: one Redis pub/sub channel per session.

Any worker publishes a session's live message (publish); each worker's GuidanceHub holds one
PubSub connection subscribed to the channels of the sessions whose sockets it holds, and hands
each message to those sockets: a `signal` only to the sockets of its addressee, a `closed` to
every socket, which then closes. (The mechanism is rescue.pubsub's ChannelHub.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from dispatch.guidance import presence
from dispatch.guidance.constants import SESSION_CHANNEL_PREFIX, session_channel
from dispatch.guidance.models import CLOSED, SIGNAL
from rescue import jsonio
from rescue.pubsub import CLOSE_TOO_SLOW as CLOSE_TOO_SLOW  # re-exported
from rescue.pubsub import ChannelHub, QueuedSocket
from rescue.typedefs import guidance_hub_key, redis_key

logger = logging.getLogger(__name__)

# Keeps the hub's PubSub connection open while it holds no session (never published to).
_IDLE_CHANNEL = "rescue:guidance-hub:idle"
# A client whose queue overflows is closed with CLOSE_TOO_SLOW; it reconnects and gets the
# whole state again.
CLOSE_SESSION_ENDED = 1000
_QUEUE_SIZE = 512


def encode(message: dict[str, Any]) -> str:
    """A message as sent on the sockets."""
    return jsonio.dumps_text(message, default=str)


async def publish(redis: Redis, session_id: str, message: dict[str, Any]) -> int:
    """Send a live message to the session's sockets on every worker; how many workers hold
    some of them (0: nobody is connected right now)."""
    return int(await redis.publish(session_channel(session_id), encode(message)))


class GuidanceSocket(QueuedSocket[tuple[int | None, str, bool]]):
    """One participant's open socket, with its outbound queue (the socket's only writer)."""

    def __init__(self, ws: web.WebSocketResponse, *, participant_id: str, role: str) -> None:
        super().__init__(ws, queue_size=_QUEUE_SIZE, kind="guidance")
        self.participant_id = participant_id
        # This socket in the session's presence set (dispatch.guidance.presence).
        self.member = presence.new_member({"id": participant_id, "role": role})
        # Ids of the recorded messages this socket was given (in its state, or live): one
        # published again (the bus delivers at least once) or already in the state is not
        # sent twice.
        self.seen: set[int] = set()
        # Set once the pump sent `closed` and is closing the socket itself.
        self.ending = False

    def deliver(self, message: dict[str, Any], raw: str | None = None) -> None:
        """Queue a message; a `closed` one ends the socket once sent."""
        ident = message.get("id")
        self._put(
            (
                ident if isinstance(ident, int) else None,
                raw if raw is not None else encode(message),
                message.get("type") == CLOSED,
            )
        )

    async def pump(self) -> None:
        """Send queued messages in order until cancelled, or until a `closed` one is sent.

        Started once the state was sent: a recorded message whose id was in the state, or was
        sent already, is skipped here (not when queued, which may happen before the state).
        """
        while True:
            ident, raw, closing = await self._queue.get()
            if ident is not None and ident in self.seen:
                if closing:
                    break
                continue
            if ident is not None:
                self.seen.add(ident)
            if not await self._send(raw):
                return  # the socket is closing; its handler cleans up
            if closing:
                break
        self.ending = True
        await self.ws.close(code=CLOSE_SESSION_ENDED, message=b"session closed")


class GuidanceHub(ChannelHub[GuidanceSocket]):
    """This worker's guidance sockets by session, and the one subscription that feeds them."""

    def __init__(self, redis: Redis) -> None:
        super().__init__(
            redis,
            name="guidance hub",
            prefix=SESSION_CHANNEL_PREFIX,
            dispatch=_to_addressees,
            fixed={_IDLE_CHANNEL: None},
        )

    def sessions(self) -> list[str]:
        """The sessions this worker holds sockets of."""
        return self.keys()

    def members(self) -> dict[str, list[str]]:
        """This worker's sockets in the sessions' presence sets, by session."""
        return {key: [s.member for s in self.sockets_of(key)] for key in self.keys()}


def _to_addressees(session_id: str, sockets: list[GuidanceSocket], raw: str) -> None:
    """A `signal` goes to the sockets of its addressee only; anything else to every socket."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        logger.warning("ignoring a malformed guidance message on %s", session_channel(session_id))
        return
    if not isinstance(parsed, dict):
        return
    if parsed.get("type") == SIGNAL:
        # Signalling goes to its addressee only (all of its sockets, on any worker).
        targets = [s for s in sockets if s.participant_id == parsed.get("to")]
    else:
        targets = sockets
    for socket in targets:
        socket.deliver(parsed, raw)


async def guidance_hub_ctx(app: web.Application) -> AsyncIterator[None]:
    """The worker's GuidanceHub."""
    hub = GuidanceHub(app[redis_key])
    app[guidance_hub_key] = hub
    hub.start()
    renewal = asyncio.create_task(presence.renew_forever(hub.members, app[redis_key], publish))
    yield
    renewal.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await renewal
    await hub.stop()


async def close_guidance_sockets(app: web.Application) -> None:
    """on_shutdown: close the guidance sockets so the server can stop promptly."""
    hub = app.get(guidance_hub_key)
    if hub is not None:
        await hub.close_all()
