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
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import WSMsgType, web
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from rescue.auth import Role, bearer_token, hash_token, principal_of, requires
from rescue.errors import ApiError, unavailable
from rescue.typedefs import auth_key, metrics_key, phone_hub_key, redis_key
from volunteers import positions
from volunteers.constants import PHONE_CHANNEL_PREFIX, TOKEN_REVOKED_CHANNEL, phone_channel

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()

HEARTBEAT_S = 25.0
# Close code for a socket whose token was rotated (4000-4999: application codes).
CLOSE_TOKEN_REVOKED = 4001
# Close code when a phone reads too slowly and its queue overflows (it reconnects and
# fetches GET /v1/me/offers).
CLOSE_TOO_SLOW = 4008
_QUEUE_SIZE = 256
_SUBSCRIBE_WAIT_S = 2.0
_READ_TIMEOUT_S = 5.0
_MAX_BACKOFF_S = 5.0


async def push_to_phone(redis: Redis, volunteer_id: str, message: dict[str, Any]) -> int:
    """Send a message to every socket of a volunteer, on whichever worker; how many workers got
    it (0: no phone connected right now)."""
    data = json.dumps(message, ensure_ascii=False, separators=(",", ":"), default=str)
    return int(await redis.publish(phone_channel(volunteer_id), data))


async def publish_token_revoked(
    redis: Redis, *, volunteer_id: str, token_hash: bytes | None
) -> None:
    """Tell every worker that a volunteer's token was replaced."""
    message = {"subject": volunteer_id, "token_hash": token_hash.hex() if token_hash else None}
    await redis.publish(TOKEN_REVOKED_CHANNEL, json.dumps(message))


class PhoneSocket:
    """One open phone socket and its outbound queue (a slow phone never blocks the hub)."""

    def __init__(self, ws: web.WebSocketResponse, *, token_hash: bytes) -> None:
        self.ws = ws
        self.token_hash = token_hash
        self._queue: asyncio.Queue[str] = asyncio.Queue(_QUEUE_SIZE)
        self._closing: asyncio.Task[Any] | None = None

    def offer(self, data: str) -> None:
        """Queue a message for this phone (closing the socket if it has fallen too far behind)."""
        try:
            self._queue.put_nowait(data)
        except asyncio.QueueFull:
            logger.warning("phone socket too slow, closing it")
            self.close_soon(CLOSE_TOO_SLOW, "too slow")

    def close_soon(self, code: int, reason: str) -> None:
        """Close the socket from outside its handler."""
        if self._closing is None and not self.ws.closed:
            self._closing = asyncio.ensure_future(self.ws.close(code=code, message=reason.encode()))

    async def pump(self) -> None:
        """Send queued messages in order (the socket's only writer after hello) until cancelled."""
        while True:
            data = await self._queue.get()
            try:
                await self.ws.send_str(data)
            except (ConnectionError, RuntimeError):
                return  # the socket is closing; its handler cleans up


class PhoneHub:
    """This worker's phone sockets by volunteer, and the one subscription that feeds them."""

    def __init__(self, redis: Redis, *, on_revoked: Callable[[str], None]) -> None:
        self._redis = redis
        self._on_revoked = on_revoked
        self._sockets: dict[str, set[PhoneSocket]] = {}
        self._subscribed: set[str] = set()
        self._confirmed: dict[str, asyncio.Event] = {}
        self._lock = asyncio.Lock()
        self._pubsub: PubSub | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def start(self) -> None:
        """Start reading the subscription (reconnecting with backoff while Redis is down)."""
        self._task = asyncio.create_task(self._run(), name="phone-hub")

    async def stop(self) -> None:
        """Close every socket and the subscription."""
        self._stop.set()
        await self.close_all()
        if self._task is not None:
            # The flag ends the loop even if Python 3.11's wait_for (used inside redis-py)
            # swallows the cancellation.
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()

    async def close_all(self) -> None:
        """Close every socket this worker holds (shutdown)."""
        sockets = [s for group in self._sockets.values() for s in group]
        await asyncio.gather(
            *(s.ws.close(code=1001, message=b"server shutdown") for s in sockets),
            return_exceptions=True,
        )

    async def attach(self, volunteer_id: str, socket: PhoneSocket) -> None:
        """Add a socket; returns once Redis confirmed the subscription (or after a short wait)."""
        self._sockets.setdefault(volunteer_id, set()).add(socket)
        channel = phone_channel(volunteer_id)
        await self._reconcile(channel)
        # Before the reader's first (re)subscription the event is created here and set when
        # that subscription is confirmed.
        confirmed = self._confirmed.setdefault(channel, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_SUBSCRIBE_WAIT_S):
                await confirmed.wait()

    async def detach(self, volunteer_id: str, socket: PhoneSocket) -> None:
        """Remove a socket; the last one of a volunteer ends the subscription."""
        group = self._sockets.get(volunteer_id)
        if group is not None:
            group.discard(socket)
            if not group:
                del self._sockets[volunteer_id]
        await self._reconcile(phone_channel(volunteer_id))

    async def _reconcile(self, channel: str) -> None:
        """Make the subscription match the sockets held (serialized: add/remove may race)."""
        async with self._lock:
            wanted = channel[len(PHONE_CHANNEL_PREFIX) :] in self._sockets
            if self._pubsub is None or wanted == (channel in self._subscribed):
                return
            try:
                if wanted:
                    self._confirmed.setdefault(channel, asyncio.Event())
                    await self._pubsub.subscribe(channel)
                    self._subscribed.add(channel)
                else:
                    self._subscribed.discard(channel)
                    self._confirmed.pop(channel, None)
                    await self._pubsub.unsubscribe(channel)
            except (RedisError, OSError) as exc:
                # The reader loop resubscribes everything once Redis is back.
                logger.warning("phone hub could not (un)subscribe: %r", exc)

    async def _resubscribe_all(self) -> None:
        async with self._lock:
            if self._pubsub is not None:
                with contextlib.suppress(Exception):
                    await self._pubsub.aclose()
            self._pubsub = self._redis.pubsub()
            self._subscribed.clear()
            channels = [phone_channel(v) for v in self._sockets]
            for channel in channels:
                self._confirmed.setdefault(channel, asyncio.Event())
            await self._pubsub.subscribe(TOKEN_REVOKED_CHANNEL, *channels)
            self._subscribed.update(channels)

    async def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                await self._resubscribe_all()
                assert self._pubsub is not None
                backoff = 0.1
                while not self._stop.is_set():
                    message = await self._pubsub.get_message(timeout=_READ_TIMEOUT_S)
                    if message is not None:
                        self._handle(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the hub alive through any Redis failure
                if self._stop.is_set():
                    return
                logger.warning("phone hub subscription lost (%r); retrying in %.1fs", exc, backoff)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(backoff):
                        await self._stop.wait()
                backoff = min(backoff * 2, _MAX_BACKOFF_S)

    def _handle(self, message: dict[str, Any]) -> None:
        kind, channel = message["type"], message["channel"]
        if kind == "subscribe":
            event = self._confirmed.get(channel)
            if event is not None:
                event.set()
        elif kind == "message" and channel == TOKEN_REVOKED_CHANNEL:
            self._revoked(message["data"])
        elif kind == "message" and channel.startswith(PHONE_CHANNEL_PREFIX):
            volunteer_id = channel[len(PHONE_CHANNEL_PREFIX) :]
            for socket in list(self._sockets.get(volunteer_id, ())):
                socket.offer(message["data"])

    def _revoked(self, data: str) -> None:
        try:
            payload = json.loads(data)
            subject = str(payload["subject"])
            revoked = bytes.fromhex(payload["token_hash"]) if payload.get("token_hash") else None
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring a malformed token revocation message")
            return
        self._on_revoked(subject)
        for socket in list(self._sockets.get(subject, ())):
            if revoked is not None and socket.token_hash == revoked:
                socket.close_soon(CLOSE_TOKEN_REVOKED, "token revoked")


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
