"""Redis channel names of the guidance sessions (one place, arq style)."""

from __future__ import annotations

# Pub/sub channel of one session: every live message of it, whichever worker holds its
# sockets (each worker's GuidanceHub subscribes to the sessions it holds sockets of).
SESSION_CHANNEL_PREFIX = "rescue:guidance:"


def session_channel(session_id: str) -> str:
    """The pub/sub channel of a session's live messages."""
    return SESSION_CHANNEL_PREFIX + session_id


# The sorted set of a session's open sockets (dispatch.guidance.presence); a key, not a channel.
PRESENCE_KEY_PREFIX = "rescue:guidance-presence:"


def presence_key(session_id: str) -> str:
    """The key of a session's open sockets."""
    return PRESENCE_KEY_PREFIX + session_id
