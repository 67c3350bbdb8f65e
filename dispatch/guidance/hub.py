"""Guidance rooms across workers: one Redis pub/sub channel per session.

Any worker publishes a session's live message (publish); each worker's GuidanceHub holds one
PubSub connection subscribed to the channels of the sessions whose sockets it holds, and hands
each message to those sockets: a `signal` only to the sockets of its addressee, a `closed` to
every socket, which then closes. (The pattern of volunteers/channels.py's PhoneHub.)
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
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from dispatch.guidance.constants import SESSION_CHANNEL_PREFIX, session_channel
from dispatch.guidance.models import CLOSED, SIGNAL
from rescue.typedefs import guidance_hub_key, redis_key

logger = logging.getLogger(__name__)

# Keeps the hub's PubSub connection open while it holds no session (never published to).
_IDLE_CHANNEL = "rescue:guidance-hub:idle"
# Close code when a client reads too slowly and its queue overflows (it reconnects and gets
# the whole state again).
CLOSE_TOO_SLOW = 4008
CLOSE_SESSION_ENDED = 1000
_QUEUE_SIZE = 512
_SUBSCRIBE_WAIT_S = 2.0
_READ_TIMEOUT_S = 5.0
_MAX_BACKOFF_S = 5.0


def encode(message: dict[str, Any]) -> str:
    """A message as sent on the sockets."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"), default=str)


async def publish(redis: Redis, session_id: str, message: dict[str, Any]) -> int:
    """Send a live message to the session's sockets on every worker; how many workers hold
    some of them (0: nobody is connected right now)."""
    return int(await redis.publish(session_channel(session_id), encode(message)))


class GuidanceSocket:
    """One participant's open socket, with its outbound queue (the socket's only writer)."""

    def __init__(self, ws: web.WebSocketResponse, *, participant_id: str) -> None:
        self.ws = ws
        self.participant_id = participant_id
        # Ids of the recorded messages this socket was given (in its state, or live): one
        # published again (the bus delivers at least once) or already in the state is not
        # sent twice.
        self.seen: set[int] = set()
        self._queue: asyncio.Queue[tuple[int | None, str, bool]] = asyncio.Queue(_QUEUE_SIZE)
        self._closing: asyncio.Task[Any] | None = None
        # Set once the pump sent `closed` and is closing the socket itself.
        self.ending = False

    def deliver(self, message: dict[str, Any], raw: str | None = None) -> None:
        """Queue a message; a `closed` one ends the socket once sent."""
        ident = message.get("id")
        item = (
            ident if isinstance(ident, int) else None,
            raw if raw is not None else encode(message),
            message.get("type") == CLOSED,
        )
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            logger.warning("guidance socket too slow, closing it")
            self.close_soon(CLOSE_TOO_SLOW, "too slow")

    def close_soon(self, code: int, reason: str) -> None:
        """Close the socket from outside its handler."""
        if self._closing is None and not self.ws.closed:
            self._closing = asyncio.ensure_future(self.ws.close(code=code, message=reason.encode()))

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
            try:
                await self.ws.send_str(raw)
            except (ConnectionError, RuntimeError):
                return  # the socket is closing; its handler cleans up
            if closing:
                break
        self.ending = True
        await self.ws.close(code=CLOSE_SESSION_ENDED, message=b"session closed")


class GuidanceHub:
    """This worker's guidance sockets by session, and the one subscription that feeds them."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._sockets: dict[str, set[GuidanceSocket]] = {}
        self._subscribed: set[str] = set()
        self._confirmed: dict[str, asyncio.Event] = {}
        self._lock = asyncio.Lock()
        self._pubsub: PubSub | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def start(self) -> None:
        """Start reading the subscription (reconnecting with backoff while Redis is down)."""
        self._task = asyncio.create_task(self._run(), name="guidance-hub")

    async def stop(self) -> None:
        """Close every socket and the subscription."""
        self._stop.set()
        await self.close_all()
        if self._task is not None:
            # The flag ends the loop even if Python 3.11's wait_for (inside redis-py)
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

    def sessions(self) -> list[str]:
        """The sessions this worker holds sockets of."""
        return list(self._sockets)

    async def attach(self, session_id: str, socket: GuidanceSocket) -> None:
        """Add a socket; returns once Redis confirmed the subscription (or after a short wait)."""
        self._sockets.setdefault(session_id, set()).add(socket)
        channel = session_channel(session_id)
        await self._reconcile(channel)
        confirmed = self._confirmed.setdefault(channel, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_SUBSCRIBE_WAIT_S):
                await confirmed.wait()

    async def detach(self, session_id: str, socket: GuidanceSocket) -> None:
        """Remove a socket; the last one of a session ends the subscription."""
        group = self._sockets.get(session_id)
        if group is not None:
            group.discard(socket)
            if not group:
                del self._sockets[session_id]
        await self._reconcile(session_channel(session_id))

    async def _reconcile(self, channel: str) -> None:
        """Make the subscription match the sockets held (serialized: add/remove may race)."""
        async with self._lock:
            wanted = channel[len(SESSION_CHANNEL_PREFIX) :] in self._sockets
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
                logger.warning("guidance hub could not (un)subscribe: %r", exc)

    async def _resubscribe_all(self) -> None:
        async with self._lock:
            if self._pubsub is not None:
                with contextlib.suppress(Exception):
                    await self._pubsub.aclose()
            self._pubsub = self._redis.pubsub()
            self._subscribed.clear()
            channels = [session_channel(s) for s in self._sockets]
            for channel in channels:
                self._confirmed.setdefault(channel, asyncio.Event())
            await self._pubsub.subscribe(_IDLE_CHANNEL, *channels)
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
                logger.warning(
                    "guidance hub subscription lost (%r); retrying in %.1fs", exc, backoff
                )
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
            return
        if kind != "message" or not channel.startswith(SESSION_CHANNEL_PREFIX):
            return
        sockets = self._sockets.get(channel[len(SESSION_CHANNEL_PREFIX) :])
        if not sockets:
            return
        raw = message["data"]
        try:
            parsed = json.loads(raw)
        except ValueError:
            logger.warning("ignoring a malformed guidance message on %s", channel)
            return
        if not isinstance(parsed, dict):
            return
        if parsed.get("type") == SIGNAL:
            # Signalling goes to its addressee only (all of its sockets, on any worker).
            targets = [s for s in sockets if s.participant_id == parsed.get("to")]
        else:
            targets = list(sockets)
        for socket in targets:
            socket.deliver(parsed, raw)


async def guidance_hub_ctx(app: web.Application) -> AsyncIterator[None]:
    """The worker's GuidanceHub."""
    hub = GuidanceHub(app[redis_key])
    app[guidance_hub_key] = hub
    hub.start()
    yield
    await hub.stop()


async def close_guidance_sockets(app: web.Application) -> None:
    """on_shutdown: close the guidance sockets so the server can stop promptly."""
    hub = app.get(guidance_hub_key)
    if hub is not None:
        await hub.close_all()
