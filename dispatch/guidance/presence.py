"""Who is connected to a guidance session now, whichever worker holds their sockets.

One sorted set per session in Redis (`presence_key`): a member per open socket,
"<participant id> <role> <socket id>", scored with when it lapses. The worker holding the
socket adds it when the socket opens, removes it when it closes, and renews it every RENEW_S
(one pipeline for all its sockets), so the sockets of a worker that died lapse within
LAPSE_S. A participant is online while one of its members has not lapsed. Going online (its
first socket) and offline (its last one closed, or lapsed) is told to the session as a live
`participant` message with `event` "online" / "offline" and `participant` `{id, role}`; the
state and GET /v1/guidance/{id} mark each participant `online`. Settled in Lua, so two
sockets of one participant opening or closing at once on two workers announce it once.
Presence is best effort: with Redis unavailable a socket still works, and everybody is shown
offline.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from dispatch.guidance.constants import presence_key
from dispatch.guidance.models import PARTICIPANT

logger = logging.getLogger(__name__)

# A socket's member lapses this long after its last renewal; renewed well within it.
LAPSE_S = 60.0
RENEW_S = 20.0
# A session's set outlives its last renewal by this much (then Redis drops it).
_KEY_TTL_S = int(LAPSE_S * 2)

# Members not lapsed (score >= now) of one participant ("<id> "-prefixed), but `skip`.
_LIVE_OF = """
local function live_of(key, participant, now, skip)
  local prefix = participant .. ' '
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', key, now, '+inf')) do
    if m ~= skip and string.sub(m, 1, #prefix) == prefix then return true end
  end
  return false
end
"""

# KEYS[1] the session's set; ARGV member, now, lapse at, key TTL (s). 1 when the member's
# participant was not online before this socket.
_JOIN = (
    _LIVE_OF
    + """
local participant = string.match(ARGV[1], '^(%S+) ')
local was = live_of(KEYS[1], participant, ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
if was then return 0 end
return 1
"""
)

# KEYS[1] the session's set; ARGV member, now. 1 when this socket was its participant's last.
_LEAVE = (
    _LIVE_OF
    + """
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
if removed == 0 then return 0 end
if live_of(KEYS[1], string.match(ARGV[1], '^(%S+) '), ARGV[2], ARGV[1]) then return 0 end
return 1
"""
)

# KEYS[1] the session's set; ARGV now, lapse at, key TTL, then this worker's members. Renews
# them (those still there), removes the lapsed ones and returns the participants left with
# no live member (their last socket's worker died), each as "<id> <role>".
_RENEW = (
    _LIVE_OF
    + """
for i = 4, #ARGV do redis.call('ZADD', KEYS[1], 'XX', ARGV[2], ARGV[i]) end
redis.call('EXPIRE', KEYS[1], ARGV[3])
local gone = {}
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])) do
  redis.call('ZREM', KEYS[1], m)
  local participant, role = string.match(m, '^(%S+) (%S+) ')
  if participant and not gone[participant] and not live_of(KEYS[1], participant, ARGV[1], '') then
    gone[participant] = role
  end
end
local out = {}
for participant, role in pairs(gone) do out[#out + 1] = participant .. ' ' .. role end
return out
"""
)


def new_member(participant: dict[str, str]) -> str:
    """A socket's member: its participant (`{id, role}`), then an id of its own."""
    return f"{participant['id']} {participant['role']} {uuid.uuid4().hex}"


def message(event: str, participant: dict[str, Any]) -> dict[str, Any]:
    """The live `participant` message of someone going online or offline."""
    return {
        "type": PARTICIPANT,
        "at": dt.datetime.now(dt.UTC).isoformat(),
        "from": participant,
        "event": event,
        "participant": participant,
    }


async def join(redis: Redis, session_id: str, member: str) -> bool:
    """Record an open socket; whether its participant has just come online."""
    now = time.time()
    came = await redis.eval(
        _JOIN, 1, presence_key(session_id), member, now, now + LAPSE_S, _KEY_TTL_S
    )
    return bool(came)


async def leave(redis: Redis, session_id: str, member: str) -> bool:
    """Forget a closed socket; whether its participant has just gone offline."""
    return bool(await redis.eval(_LEAVE, 1, presence_key(session_id), member, time.time()))


async def online(redis: Redis, session_id: str) -> set[str]:
    """The participants online now (empty when Redis cannot say)."""
    try:
        members = await redis.zrangebyscore(presence_key(session_id), time.time(), "+inf")
    except (RedisError, OSError) as exc:
        logger.warning("guidance presence unavailable: %r", exc)
        return set()
    return {str(m).split(" ", 1)[0] for m in members}


async def mark(redis: Redis, session: dict[str, Any]) -> dict[str, Any]:
    """The session (as load_session renders it) with each participant's `online` (its `me`
    is one of its participants, or a dict of its own)."""
    here = await online(redis, session["session_id"])
    for participant in [*session["participants"], session["me"]]:
        participant["online"] = participant["id"] in here
    return session


async def renew(
    redis: Redis, sockets: Mapping[str, Sequence[str]]
) -> dict[str, list[dict[str, str]]]:
    """Renew this worker's members ({session: members}); per session, the participants
    (`{id, role}`) whose last member lapsed, to be told offline."""
    now = time.time()
    gone: dict[str, list[dict[str, str]]] = {}
    async with redis.pipeline(transaction=False) as pipe:
        sessions = list(sockets)
        for session_id in sessions:
            pipe.eval(
                _RENEW,
                1,
                presence_key(session_id),
                now,
                now + LAPSE_S,
                _KEY_TTL_S,
                *sockets[session_id],
            )
        replies = await pipe.execute()
    for session_id, reply in zip(sessions, replies, strict=True):
        if reply:
            pairs = (str(p).split(" ", 1) for p in reply)
            gone[session_id] = sorted(
                ({"id": i, "role": r} for i, r in pairs), key=lambda p: p["id"]
            )
    return gone


async def renew_forever(
    members: Callable[[], dict[str, list[str]]],
    redis: Redis,
    publish: Callable[[Redis, str, dict[str, Any]], Awaitable[int]],
) -> None:
    """A worker's renewal loop: every RENEW_S, its sockets' members (`members()`, by session);
    whoever lapsed meanwhile is told offline."""
    while True:
        await asyncio.sleep(RENEW_S)
        mine = members()
        if not mine:
            continue
        try:
            gone = await renew(redis, mine)
            for session_id, participants in gone.items():
                for participant in participants:
                    await publish(redis, session_id, message("offline", participant))
        except (RedisError, OSError) as exc:
            logger.warning("guidance presence not renewed: %r", exc)
