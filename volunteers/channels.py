"""The channels that reach a volunteer's phone: a WebSocket per phone, fed over Redis pub/sub.

Any worker publishes a message for a volunteer (push_to_phone); each worker's PhoneHub holds
one PubSub connection subscribed to the channels of the volunteers whose sockets it holds, and
to the token-revocation channel, and forwards what arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from aiohttp import WSMsgType, web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from rescue import jsonio
from rescue.auth import Role, bearer_token, hash_token, principal_of, requires
from rescue.errors import ApiError, unavailable
from rescue.pubsub import CLOSE_TOO_SLOW as CLOSE_TOO_SLOW  # re-exported
from rescue.pubsub import ChannelHub, QueuedSocket
from rescue.typedefs import auth_key, metrics_key, phone_hub_key, redis_key
from volunteers import positions
from volunteers.constants import PHONE_CHANNEL_PREFIX, TOKEN_REVOKED_CHANNEL, phone_channel

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()

HEARTBEAT_S = 25.0
# Close code for a socket whose token was rotated (4000-4999: application codes).
CLOSE_TOKEN_REVOKED = 4001
# A phone whose queue overflows is closed with CLOSE_TOO_SLOW; it reconnects and fetches
# GET /v1/me/offers.
_QUEUE_SIZE = 256


async def push_to_phone(redis: Redis, volunteer_id: str, message: dict[str, Any]) -> int:
    """Send a message to every socket of a volunteer, on whichever worker; how many workers got
    it (0: no phone connected right now)."""
    return int(await redis.publish(phone_channel(volunteer_id), _encode(message)))


def _encode(message: dict[str, Any]) -> str:
    return jsonio.dumps_text(message, default=str)


async def push_many_to_phones(redis: Redis, messages: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Send each (volunteer id, message), in order, in one pipeline (one round trip)."""
    if not messages:
        return
    async with redis.pipeline(transaction=False) as pipe:
        for volunteer_id, message in messages:
            pipe.publish(phone_channel(volunteer_id), _encode(message))
        await pipe.execute()


async def publish_token_revoked(
    redis: Redis, *, volunteer_id: str, token_hash: bytes | None
) -> None:
    """Tell every worker that a volunteer's token was replaced."""
    message = {"subject": volunteer_id, "token_hash": token_hash.hex() if token_hash else None}
    await redis.publish(TOKEN_REVOKED_CHANNEL, json.dumps(message))


class PhoneSocket(QueuedSocket[str]):
    """One open phone socket and its outbound queue (a slow phone never blocks the hub)."""

    def __init__(self, ws: web.WebSocketResponse, *, token_hash: bytes) -> None:
        super().__init__(ws, queue_size=_QUEUE_SIZE, kind="phone")
        self.token_hash = token_hash

    def offer(self, data: str) -> None:
        """Queue a message for this phone (closing the socket if it has fallen too far behind)."""
        self._put(data)

    async def pump(self) -> None:
        """Send queued messages in order (the socket's only writer after hello) until cancelled."""
        while True:
            if not await self._send(await self._queue.get()):
                return  # the socket is closing; its handler cleans up


class PhoneHub(ChannelHub[PhoneSocket]):
    """This worker's phone sockets by volunteer, and the one subscription that feeds them (and
    the token-revocation channel)."""

    def __init__(self, redis: Redis, *, on_revoked: Callable[[str], None]) -> None:
        self._on_revoked = on_revoked
        super().__init__(
            redis,
            name="phone hub",
            prefix=PHONE_CHANNEL_PREFIX,
            dispatch=_to_every_socket,
            fixed={TOKEN_REVOKED_CHANNEL: self._revoked},
        )

    def _revoked(self, data: str) -> None:
        try:
            payload = json.loads(data)
            subject = str(payload["subject"])
            revoked = bytes.fromhex(payload["token_hash"]) if payload.get("token_hash") else None
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring a malformed token revocation message")
            return
        self._on_revoked(subject)
        for socket in self.sockets_of(subject):
            if revoked is not None and socket.token_hash == revoked:
                socket.close_soon(CLOSE_TOKEN_REVOKED, "token revoked")


def _to_every_socket(volunteer_id: str, sockets: list[PhoneSocket], data: str) -> None:
    """A message for a volunteer goes to all of its phones."""
    for socket in sockets:
        socket.offer(data)


async def phone_hub_ctx(app: web.Application) -> AsyncIterator[None]:
    """The worker's PhoneHub; it also makes rotated tokens stop working on this worker."""
    hub = PhoneHub(app[redis_key], on_revoked=app[auth_key].forget_subject)
    app[phone_hub_key] = hub
    hub.start()
    yield
    await hub.stop()


async def close_phone_sockets(app: web.Application) -> None:
    """on_shutdown: close the phones' sockets so the server can stop promptly."""
    hub = app.get(phone_hub_key)
    if hub is not None:
        await hub.close_all()


@routes.get("/v1/me/stream")
@requires(Role.VOLUNTEER)
async def stream(request: web.Request) -> web.StreamResponse:
    """The phone's WebSocket: hello, then every message pushed to this volunteer."""
    volunteer_id = principal_of(request).id
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S)
    if not ws.can_prepare(request).ok:
        raise ApiError(400, "websocket_required", "this endpoint is a WebSocket (Upgrade)")
    try:
        on_duty = await positions.is_on_duty(request.app[redis_key], volunteer_id)
    except RedisError:
        raise unavailable("redis") from None
    token = bearer_token(request) or ""
    socket = PhoneSocket(ws, token_hash=hash_token(token))
    hub = request.app[phone_hub_key]
    gauge = request.app[metrics_key].websockets.labels("phone")
    await ws.prepare(request)
    gauge.inc()
    pump: asyncio.Task[None] | None = None
    try:
        await hub.attach(volunteer_id, socket)
        hello = {"type": "hello", "volunteer_id": volunteer_id, "on_duty": on_duty}
        with contextlib.suppress(ConnectionError):  # the phone left already: the loop ends
            await ws.send_json(hello)
        pump = asyncio.create_task(socket.pump())
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                socket.offer(_answer(msg.data))
    finally:
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        await hub.detach(volunteer_id, socket)
        gauge.dec()
    return ws


_PONG = json.dumps({"type": "pong"})
_UNSUPPORTED = json.dumps(
    {
        "type": "error",
        "error": {
            "code": "unsupported_message",
            "message": 'this socket only carries pushes; send {"type": "ping"} to test it',
        },
    }
)


def _answer(data: str) -> str:
    """The phone may ping; anything else gets an error and the socket stays open."""
    try:
        message = json.loads(data)
    except ValueError:
        message = None
    if isinstance(message, dict) and message.get("type") == "ping":
        return _PONG
    return _UNSUPPORTED
