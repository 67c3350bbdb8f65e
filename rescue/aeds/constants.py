"""Redis names and timings of the AED index synchronization."""

from __future__ import annotations

# Pub/sub channel on which every AED write publishes the AED's id; each worker's subscriber
# re-reads that AED from PostgreSQL into its in-memory index. Pub/sub ignores the database
# number, so the channel carries it: deployments sharing a Redis server stay apart.
CHANGES_CHANNEL = "rescue:aeds:changed:{db}"
# Published instead of ids when many AEDs changed at once (an import): reload everything.
RELOAD_ALL = "*"
# Above this many changed AEDs a single RELOAD_ALL is published instead of each id.
MAX_IDS_PER_ANNOUNCE = 200
# The safety net for missed messages: every worker reloads its whole index this often.
FULL_RELOAD_INTERVAL_S = 60.0
# How long the subscriber waits for a message before checking whether the worker stops.
POLL_S = 1.0
# Subscriber reconnection backoff while Redis is down.
BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 30.0


def changes_channel(redis_db: int) -> str:
    """The change channel of the deployment using this Redis database number."""
    return CHANGES_CHANNEL.format(db=redis_db)
