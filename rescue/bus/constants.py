"""Names the event bus uses in Redis and PostgreSQL."""

from __future__ import annotations

# The Redis Stream every event is relayed onto; one outbox feeds one stream.
STREAM = "rescue:events"
# Suffixes appended to the stream's name for the keys that belong to it.
DEAD_SUFFIX = ":dead"
EPOCH_SUFFIX = ":epoch"

# PostgreSQL NOTIFY channel that wakes the relays when an outbox row commits.
NOTIFY_CHANNEL = "rescue_bus"
# First half of the two-key advisory lock taken while replaying the outbox into Redis.
REPLAY_LOCK = 0x5E5C0B
# Session advisory lock (with the stream's name) held by the one relay that LISTENs.
LISTEN_LOCK = 0x5E5C0C

# Stream entry fields.
F_ID = "id"
F_TYPE = "type"
F_KEY = "key"
F_DATA = "data"
F_AT = "at"
# The groups whose work on the event the producer's own commit did (space-separated).
F_DONE = "done"
