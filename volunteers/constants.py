"""Redis key and channel names of the volunteers package (one place, arq style)."""

from __future__ import annotations

# GEO sets of the latest position of each on-duty volunteer (member = volunteer id), one per
# travel mode, so that a search reads each mode only within that mode's own reach: a walker
# beyond walking reach is never looked at, wherever the bikes and cars are.
POSITIONS_BY_MODE = {
    "walk": "rescue:pos:walk",
    "bike": "rescue:pos:bike",
    "car": "rescue:pos:car",
}
POSITION_KEYS = tuple(POSITIONS_BY_MODE.values())
# Sorted set: member = volunteer id, score = unix time of the last position update.
POSITIONS_SEEN = "rescue:pos:seen"
# Hash: volunteer id -> compact JSON of what eligibility needs. Presence of the field IS the
# on-duty state: written at check-in, deleted at check-out, refreshed on PATCH and import.
META = "rescue:vol:meta"
# Hash: volunteer id -> the incident it is engaged in (set by dispatch through engage/release).
ENGAGED = "rescue:engaged"

# Pub/sub channel of one volunteer's phone sockets: PHONE_CHANNEL_PREFIX + volunteer id.
PHONE_CHANNEL_PREFIX = "rescue:phone:"
# Pub/sub channel telling every worker that a volunteer's token was rotated.
TOKEN_REVOKED_CHANNEL = "rescue:auth:revoked"


def phone_channel(volunteer_id: str) -> str:
    """The pub/sub channel that reaches a volunteer's phone sockets, whichever worker holds them."""
    return PHONE_CHANNEL_PREFIX + volunteer_id
