"""HTTP and WebSocket routes of the guidance sessions (session tokens, checked here).

These routes carry no role mark for the auth middleware: a session token is not a bearer
token of the three roles, so the handlers resolve it themselves (before the upgrade, so a
refused socket is a plain 401/403 JSON answer). Tokens are never logged; the access log
redacts `?token=` (volunteers/accesslog.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import time
from typing import Any

from aiohttp import WSMsgType, web
from redis.exceptions import RedisError

from dispatch.guidance import presence, service
from dispatch.guidance.errors import (
    GuidanceError,
    SessionClosed,
    not_this_session,
    session_token_required,
)
from dispatch.guidance.hub import GuidanceSocket, encode, publish
from dispatch.guidance.models import (
    CHAT,
    MARKER,
    SIGNAL,
    SIGNAL_MAX_BYTES,
    STEP,
    Participant,
)
from dispatch.guidance.render import closing_message, iso, state_message
from rescue.auth import bearer_token, forbidden
from rescue.errors import ApiError
from rescue.http import json_response
from rescue.typedefs import (
    auth_key,
    db_key,
    dispatch_key,
    guidance_hub_key,
    guidance_key,
    metrics_key,
    redis_key,
)

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()

HEARTBEAT_S = 25.0
_MAX_MESSAGE_BYTES = 2 * SIGNAL_MAX_BYTES
_CLOSE_WAIT_S = 2.0
CLOSE_UNAVAILABLE = 1011


async def authorize(request: web.Request) -> Participant:
    """The participant of the session in the path whose token the request carries.

    401: no token or an unknown one; 403: a participant of another session, or a token of
    another kind (admin, dispatch, volunteer).
    """
    token = bearer_token(request)
    if token is None:
        raise session_token_required()
    async with request.app[db_key].acquire() as conn:
        me = await service.authenticate(conn, token)
    if me is None:
        principal = await request.app[auth_key].resolve(token)
        if principal is not None:
            raise forbidden(
                f"this endpoint takes a guidance session token, not a {principal.role} token"
            )
        raise session_token_required()
    if me.session_id != request.match_info["session_id"]:
        raise not_this_session()
    return me


@routes.get("/v1/guidance/{session_id}")
async def get_session(request: web.Request) -> web.Response:
    """The session: participants, the current protocol step, the protocol, the timeline."""
    me = await authorize(request)
    async with request.app[db_key].acquire() as conn:
        session = await service.load_session(conn, me=me, config=request.app[guidance_key])
    return json_response(await presence.mark(request.app[redis_key], session))


class _Bucket:
    """A token bucket: how many messages a socket may send in a burst and per second."""

    def __init__(self, capacity: int, per_s: float) -> None:
        self.capacity = capacity
        self.per_s = per_s
        self.tokens = float(capacity)
        self.last = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.per_s)
        self.last = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class _Connection:
    """One participant's socket: what it sends, checked, recorded and published."""

    def __init__(
        self, app: web.Application, me: Participant, socket: GuidanceSocket, known: set[str]
    ) -> None:
        self.app = app
        self.me = me
        self.socket = socket
        self.known = known
        config = app[guidance_key]
        self.recorded = _Bucket(config.burst, config.per_s)
        self.signals = _Bucket(config.signal_burst, config.signal_per_s)

    async def receive(self, text: str) -> None:
        """Handle one client message; a bad one gets an error and the socket stays open."""
        try:
            await self._dispatch(text)
        except SessionClosed as exc:
            self.socket.deliver(exc.body())
            await self._close_ended()
        except GuidanceError as exc:
            self.socket.deliver(exc.body())
        except Exception:
            logger.exception("guidance message of %s failed", self.me.id)
            error = GuidanceError("internal_error", "the message could not be handled; retry")
            self.socket.deliver(error.body())

    async def _dispatch(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise GuidanceError(
                "invalid_message", 'a message is a JSON object with a "type" string'
            )
        kind = message["type"]
        if kind == SIGNAL:
            await self._signal(message)
            return
        if kind not in (MARKER, CHAT, STEP):
            raise GuidanceError(
                "unknown_type", f"type {kind!r} is not one of marker, chat, step, signal"
            )
        if not self.recorded.take():
            raise GuidanceError("rate_limited", "too many messages: slow down")
        app = self.app
        pool = app[db_key]
        live: dict[str, Any] | None
        if kind == MARKER:
            live = await service.record_marker(
                pool=pool,
                redis=app[redis_key],
                dispatch=app[dispatch_key],
                me=self.me,
                marker=message.get("marker"),
            )
        elif kind == CHAT:
            live = await service.record_chat(pool=pool, me=self.me, text=message.get("text"))
        else:
            live = await service.record_step(
                pool=pool, me=self.me, step=message.get("step"), config=app[guidance_key]
            )
        if live is not None:
            await self._publish(live, recorded=True)

    async def _signal(self, message: dict[str, Any]) -> None:
        if not self.signals.take():
            raise GuidanceError("rate_limited", "too many signalling messages: slow down")
        to, data = message.get("to"), message.get("data")
        if not isinstance(to, str) or not to:
            raise GuidanceError("invalid_message", "to: a participant id is required")
        if not isinstance(data, dict):
            raise GuidanceError("invalid_message", "data: an object is required")
        if to == self.me.id:
            raise GuidanceError("invalid_message", "to: signalling goes to another participant")
        if len(encode(data)) > SIGNAL_MAX_BYTES:
            raise GuidanceError("invalid_message", f"data: at most {SIGNAL_MAX_BYTES} bytes")
        if to not in self.known:
            # A responder may have joined since this socket's state.
            async with self.app[db_key].acquire() as conn:
                self.known = await service.participant_ids(conn, self.me.session_id)
            if to not in self.known:
                raise GuidanceError("unknown_participant", f"to: no participant {to!r} here")
        relay = {
            "type": SIGNAL,
            "at": iso(dt.datetime.now(dt.UTC)),
            "from": self.me.ref,
            "to": to,
            "data": data,
        }
        await self._publish(relay, recorded=False)

    async def _publish(self, message: dict[str, Any], *, recorded: bool) -> None:
        try:
            await publish(self.app[redis_key], self.me.session_id, message)
        except (RedisError, OSError) as exc:
            logger.warning("guidance publish failed: %r", exc)
            if not recorded:
                raise GuidanceError(
                    "unavailable", "signalling is unavailable right now; retry"
                ) from None
            # Recorded: the others get it with their next state; the sender sees it now.
            self.socket.deliver(message)

    async def _close_ended(self) -> None:
        """The incident ended: say so on this socket (the broadcast may not have come yet)."""
        async with self.app[db_key].acquire() as conn:
            session = await service.load_session(conn, me=self.me, config=self.app[guidance_key])
        self.socket.deliver(closing_message(session))


@routes.get("/v1/guidance/{session_id}/ws")
async def session_socket(request: web.Request) -> web.StreamResponse:
    """The session's WebSocket: `state`, then live messages; client messages as API.md says."""
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=_MAX_MESSAGE_BYTES)
    if not ws.can_prepare(request).ok:
        raise ApiError(400, "websocket_required", "this endpoint is a WebSocket (Upgrade)")
    me = await authorize(request)
    app = request.app
    hub = app[guidance_hub_key]
    socket = GuidanceSocket(ws, participant_id=me.id, role=me.role.value)
    gauge = app[metrics_key].websockets.labels("guidance")
    await ws.prepare(request)
    gauge.inc()
    pump: asyncio.Task[None] | None = None
    try:
        # Subscribed before the state is read: nothing recorded after the read is missed, and
        # what the state already holds is skipped by id (GuidanceSocket.pump).
        # Told before this socket subscribes: the others hear it came online, it does not.
        await _presence(app, me, socket, join=True)
        await hub.attach(me.session_id, socket)
        try:
            async with app[db_key].acquire() as conn:
                session = await service.load_session(conn, me=me, config=app[guidance_key])
            await presence.mark(app[redis_key], session)
        except Exception:
            # Upgraded already: no HTTP error now. The client reconnects and gets the state.
            logger.exception("the state of guidance session %s could not be read", me.session_id)
            await ws.close(code=CLOSE_UNAVAILABLE, message=b"state unavailable, reconnect")
            return ws
        socket.seen.update(m["id"] for m in session["timeline"] if "id" in m)
        with contextlib.suppress(ConnectionError):
            await ws.send_str(encode(state_message(session)))
        if session["status"] == "closed":
            with contextlib.suppress(ConnectionError):
                await ws.send_str(encode(closing_message(session)))
            await ws.close(message=b"session closed")
            return ws
        pump = asyncio.create_task(socket.pump())
        connection = _Connection(app, me, socket, {p["id"] for p in session["participants"]})
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await connection.receive(msg.data)
            elif msg.type == WSMsgType.BINARY:
                error = GuidanceError("invalid_message", "messages are JSON text frames")
                socket.deliver(error.body())
    finally:
        if pump is not None:
            if socket.ending:  # let it finish the closing handshake it started
                await asyncio.wait({pump}, timeout=_CLOSE_WAIT_S)
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        await hub.detach(me.session_id, socket)
        await _presence(app, me, socket, join=False)
        gauge.dec()
    return ws


async def _presence(
    app: web.Application, me: Participant, socket: GuidanceSocket, *, join: bool
) -> None:
    """Record the socket opening or closing; tell the session when its participant came
    online or went offline. Best effort: a socket works without Redis's presence."""
    redis = app[redis_key]
    try:
        if join:
            changed = await presence.join(redis, me.session_id, socket.member)
        else:
            changed = await presence.leave(redis, me.session_id, socket.member)
        if changed:
            event = "online" if join else "offline"
            await publish(redis, me.session_id, presence.message(event, me.ref))
    except (RedisError, OSError) as exc:
        logger.warning("guidance presence of %s not recorded: %r", me.id, exc)
