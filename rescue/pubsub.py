"""Cross-worker fan-out to WebSockets over Redis pub/sub (a leaf module: redis, aiohttp, stdlib).

Any worker publishes on a key's channel (prefix + key); each worker's ChannelHub holds one
PubSub connection subscribed to the channels of the keys whose sockets it holds, plus a few
fixed channels, and hands what arrives to a dispatch hook. Each socket has a bounded outbound
queue pumped by one writer, so a slow client never blocks the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from aiohttp import web
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# Close code when a client reads too slowly and its queue overflows (4000-4999: application
# codes; it reconnects and fetches what it missed).
CLOSE_TOO_SLOW = 4008
_SUBSCRIBE_WAIT_S = 2.0
_READ_TIMEOUT_S = 5.0
_MAX_BACKOFF_S = 5.0

Item = TypeVar("Item")


class QueuedSocket(Generic[Item]):
    """One open WebSocket with a bounded outbound queue; subclasses pump it (the only writer)."""

    def __init__(self, ws: web.WebSocketResponse, *, queue_size: int, kind: str) -> None:
        self.ws = ws
        self._kind = kind
        self._queue: asyncio.Queue[Item] = asyncio.Queue(queue_size)
        self._closing: asyncio.Task[Any] | None = None

    def _put(self, item: Item) -> None:
        """Queue an item (closing the socket if it has fallen too far behind)."""
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            logger.warning("%s socket too slow, closing it", self._kind)
            self.close_soon(CLOSE_TOO_SLOW, "too slow")

    def close_soon(self, code: int, reason: str) -> None:
        """Close the socket from outside its handler."""
        if self._closing is None and not self.ws.closed:
            self._closing = asyncio.ensure_future(self.ws.close(code=code, message=reason.encode()))

    async def _send(self, data: str) -> bool:
        """Send one frame; False if the socket is closing (its handler cleans up)."""
        try:
            await self.ws.send_str(data)
        except (ConnectionError, RuntimeError):
            return False
        return True


Socket = TypeVar("Socket", bound=QueuedSocket[Any])
# (key, the key's sockets on this worker, the published data); called only if it has some.
DispatchHook = Callable[[str, list[Socket], str], None]


class ChannelHub(Generic[Socket]):
    """This worker's sockets by key, and the one subscription that feeds them."""

    def __init__(
        self,
        redis: Redis,
        *,
        name: str,
        prefix: str,
        dispatch: DispatchHook[Socket],
        fixed: Mapping[str, Callable[[str], None] | None],
    ) -> None:
        """`fixed`: channels always subscribed, with the handler of their messages (None:
        ignored; such a channel still keeps the PubSub connection open while no key is held)."""
        self._redis = redis
        self._name = name
        self._prefix = prefix
        self._dispatch = dispatch
        self._fixed = dict(fixed)
        self._sockets: dict[str, set[Socket]] = {}
        self._subscribed: set[str] = set()
        self._confirmed: dict[str, asyncio.Event] = {}
        self._lock = asyncio.Lock()
        self._pubsub: PubSub | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def start(self) -> None:
        """Start reading the subscription (reconnecting with backoff while Redis is down)."""
        self._task = asyncio.create_task(self._run(), name=self._name.replace(" ", "-"))

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

    def keys(self) -> list[str]:
        """The keys this worker holds sockets of."""
        return list(self._sockets)

    def sockets_of(self, key: str) -> list[Socket]:
        """The sockets this worker holds for a key."""
        return list(self._sockets.get(key, ()))

    async def attach(self, key: str, socket: Socket) -> None:
        """Add a socket; returns once Redis confirmed the subscription (or after a short wait)."""
        self._sockets.setdefault(key, set()).add(socket)
        channel = self._prefix + key
        await self._reconcile(channel)
        # Before the reader's first (re)subscription the event is created here and set when
        # that subscription is confirmed.
        confirmed = self._confirmed.setdefault(channel, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_SUBSCRIBE_WAIT_S):
                await confirmed.wait()

    async def detach(self, key: str, socket: Socket) -> None:
        """Remove a socket; the last one of a key ends the subscription."""
        group = self._sockets.get(key)
        if group is not None:
            group.discard(socket)
            if not group:
                del self._sockets[key]
        await self._reconcile(self._prefix + key)

    async def _reconcile(self, channel: str) -> None:
        """Make the subscription match the sockets held (serialized: add/remove may race)."""
        async with self._lock:
            wanted = channel[len(self._prefix) :] in self._sockets
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
                logger.warning("%s could not (un)subscribe: %r", self._name, exc)

    async def _resubscribe_all(self) -> None:
        async with self._lock:
            if self._pubsub is not None:
                with contextlib.suppress(Exception):
                    await self._pubsub.aclose()
            self._pubsub = self._redis.pubsub()
            self._subscribed.clear()
            channels = [self._prefix + key for key in self._sockets]
            for channel in channels:
                self._confirmed.setdefault(channel, asyncio.Event())
            await self._pubsub.subscribe(*self._fixed, *channels)
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
                    "%s subscription lost (%r); retrying in %.1fs", self._name, exc, backoff
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
        elif kind != "message":
            return
        elif channel in self._fixed:
            handler = self._fixed[channel]
            if handler is not None:
                handler(message["data"])
        elif channel.startswith(self._prefix):
            key = channel[len(self._prefix) :]
            sockets = self.sockets_of(key)
            if sockets:
                self._dispatch(key, sockets, message["data"])
