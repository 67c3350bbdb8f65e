"""The event bus's SQL."""

from __future__ import annotations

from rescue.bus.constants import NOTIFY_CHANNEL


def pending_rows(events: str, lease: str = "NULL") -> str:
    """The insert that leaves the events just written (the `id`s of the CTE `events`)
    unpublished, as every statement writing to the outbox must (migration 012): their
    outbox_pending rows, with `lease` (SQL: NULL leaves them to the relays)."""
    return f"INSERT INTO outbox_pending (id, claimed_until) SELECT id, {lease} FROM {events}"


# One statement, so the row and the wake-up commit together even outside a transaction;
# the data travels as text so the caller's connection needs no JSON codec.
EMIT = f"""
WITH e AS (
    INSERT INTO outbox (event_id, type, key, data, occurred_at)
    VALUES ($1, $2, $3, $4::text::jsonb, $5)
    RETURNING id
), pending AS (
    {pending_rows("e")}
)
SELECT pg_notify('{NOTIFY_CHANNEL}', '') FROM e
"""

PROCESSED = """
SELECT EXISTS (SELECT 1 FROM bus_processed WHERE group_name = $1 AND event_id = $2)
"""

MARK_PROCESSED = """
INSERT INTO bus_processed (group_name, event_id, outcome)
VALUES ($1, $2, $3)
ON CONFLICT (group_name, event_id) DO NOTHING
RETURNING true
"""

# A consumer's batch: which of its events the group already recorded (one round trip).
PROCESSED_AMONG = """
SELECT event_id FROM bus_processed WHERE group_name = $1 AND event_id = ANY($2::text[])
"""

# The bus's own bookkeeping (records, claims, stamps) commits without waiting for the WAL flush:
# a crash that loses the last few of them only makes an event delivered or published again,
# which delivery at least once already allows. Events themselves (the outbox rows, written in
# the producer's transaction) and every handler's effects keep the durable commit.
_LAZY = "(SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL"

# A consumer's batch: record every event it handled in one statement.
MARK_PROCESSED_MANY = f"""
INSERT INTO bus_processed (group_name, event_id, outcome)
SELECT $1, u.event_id, 'done' FROM unnest($2::text[]) AS u(event_id) WHERE {_LAZY}
ON CONFLICT (group_name, event_id) DO NOTHING
"""

REGISTER_GROUP = """
INSERT INTO bus_groups (name, types)
VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET types = EXCLUDED.types, updated_at = now()
"""

GROUP_NAMES = "SELECT name FROM bus_groups ORDER BY name"

_COLUMNS = "id, event_id, type, key, data::text AS data, occurred_at"

# An event is unpublished while it has a row in outbox_pending (migration 012): publishing it
# deletes that row, and a lease on publishing it is that row's claimed_until. The event's own
# row is written once and never updated.
#
# Several relays (one per worker) drain concurrently: each claims, for $2, the unpublished
# events nobody holds a live claim on (SKIP LOCKED settles two relays claiming at the same
# instant), and in the same statement stamps $3, the events it published since its last claim
# (their claim is still live, so the claim cannot take them again). RETURNING is in no
# particular order: the relay sorts by id. The events are read by their ids, as an array
# computed once: a join to the outbox could be planned as a pass over all of it when stale
# statistics promise a large claim (a generic plan expects a tenth of the pending rows).
CLAIM_UNPUBLISHED = f"""
WITH stamped AS (
    DELETE FROM outbox_pending WHERE id = ANY($3::bigint[])
), claimed AS (
    UPDATE outbox_pending p SET claimed_until = now() + $2::interval
    FROM (
        SELECT id FROM outbox_pending
        WHERE (claimed_until IS NULL OR claimed_until < now()) AND id <> ALL($3::bigint[])
        ORDER BY id
        LIMIT $1
        FOR UPDATE SKIP LOCKED
    ) c
    WHERE p.id = c.id AND {_LAZY}
    RETURNING p.id
)
SELECT {_COLUMNS} FROM outbox WHERE id = ANY (ARRAY(SELECT id FROM claimed))
"""

# A claim given back (the XADD failed): the next pass may publish the events at once.
RELEASE_CLAIM = "UPDATE outbox_pending SET claimed_until = NULL WHERE id = ANY($1::bigint[])"

MARK_PUBLISHED = f"DELETE FROM outbox_pending WHERE id = ANY($1::bigint[]) AND {_LAZY}"

# The replay holds the pending rows it deletes until it commits, after its last batch: waiting
# for a row another relay holds (its claim or its stamp, which may be waiting for the replay's
# rows) could deadlock them. It passes over those rows instead: they are that relay's to
# publish or stamp (published twice at worst, which delivery at least once allows).
MARK_REPLAYED = """
DELETE FROM outbox_pending
WHERE id IN (
    SELECT id FROM outbox_pending WHERE id = ANY($1::bigint[])
    FOR UPDATE SKIP LOCKED)
"""

TRY_REPLAY_LOCK = "SELECT pg_try_advisory_xact_lock($1, hashtext($2))"

TRY_LISTEN_LOCK = "SELECT pg_try_advisory_lock($1, hashtext($2))"

# An event is still owed to a group when the group takes its type and has not recorded it.
_OWED = """
EXISTS (
    SELECT 1 FROM bus_groups g
    WHERE (g.types IS NULL OR o.type = ANY (g.types))
      AND NOT EXISTS (
          SELECT 1 FROM bus_processed p
          WHERE p.group_name = g.name AND p.event_id = o.event_id))
"""

# Events some group still owes, within the retention window, keyset-paged by id. Unpublished
# rows are included: one a relay published just before Redis emptied, then committed after
# this query's snapshot, would otherwise be lost.
REPLAYABLE = f"""
SELECT {_COLUMNS}
FROM outbox o
WHERE o.created_at > now() - $1::interval
  AND o.id > $2
  AND {_OWED}
ORDER BY o.id
LIMIT $3
"""

# The clean-up (every ten minutes, in every worker) deletes by the keys it chose, taken as an
# array computed once: the rows are found through the BRIN index by time (migration 013), and
# only those are read again to be deleted. Written as `IN (subquery)` the chosen rows were
# hash-joined back to a sequential scan of the whole table: on the bench's data 90,889 outbox
# rows and 164,985 records read to delete 5,000 of each (tests/rescue/test_cleanup_plans.py).
#
# Published events past the retention window that no group owes, or past the purge horizon.
DELETE_OLD_OUTBOX = f"""
DELETE FROM outbox
WHERE id = ANY (ARRAY(
    SELECT o.id FROM outbox o
    WHERE NOT EXISTS (SELECT 1 FROM outbox_pending p WHERE p.id = o.id)
      AND o.created_at < now() - $1::interval
      AND (o.created_at < now() - $2::interval OR NOT {_OWED})
    LIMIT $3))
"""

# Records past the purge horizon, by their row's address (a TID scan): a record is inserted
# once and never updated (ON CONFLICT DO NOTHING), so the address the subquery read is the row's
# in this statement. A row deleted meanwhile by another worker's clean-up is skipped.
DELETE_OLD_PROCESSED = """
DELETE FROM bus_processed
WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM bus_processed
    WHERE processed_at < now() - $1::interval
    LIMIT $2))
"""
