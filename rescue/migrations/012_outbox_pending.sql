-- An event waiting to be published is a row of its own, `outbox_pending`, instead of a mark on
-- the event's outbox row (`published_at IS NULL`, found through `outbox_unpublished_idx`, with
-- the relay's lease in `claimed_until`). The event row is now written once and never updated.
--
-- The stamp that marked an event published was an UPDATE that could not be HOT (published_at
-- is in the partial index's predicate) on a page that inserts had filled: for every event it
-- wrote a new version of the whole row (about 560 bytes with its data) on another page, a
-- lock record on the old one, and an entry in each of the outbox's three other indexes, and
-- left a dead row for vacuum. Publishing is now the pending row's DELETE, and a claim's lease
-- an update of that small row (HOT: claimed_until is not indexed). An alert's five or six
-- events are most of what the bus writes per alert (BENCHMARKS.md, session 20).
--
-- No foreign key to outbox: checking one would lock the event row (a WAL record per event).
-- A pending row is written only with its event, in the same statement, and the clean-up
-- deletes only events that have none, so none is ever left without its event.
CREATE TABLE outbox_pending (
    id             bigint PRIMARY KEY,  -- outbox.id
    -- A relay's (or the producing worker's) lease on publishing the event; NULL: free to claim.
    claimed_until  timestamptz
) WITH (
    -- A queue of a few live rows, each deleted once published: vacuumed, as the other queues
    -- are (migration 009), after 1 % of changes, at least 1,000 rows.
    autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.01, autovacuum_analyze_threshold = 1000
);

INSERT INTO outbox_pending (id, claimed_until)
SELECT id, claimed_until FROM outbox WHERE published_at IS NULL;

DROP INDEX outbox_unpublished_idx;
ALTER TABLE outbox DROP COLUMN published_at, DROP COLUMN claimed_until;
-- Rows the outbox keeps are now only inserted and deleted: its autovacuum can follow
-- PostgreSQL's defaults again (what migration 009 set was for its updates' dead rows).
ALTER TABLE outbox RESET (
    autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold,
    autovacuum_analyze_scale_factor, autovacuum_analyze_threshold
);
