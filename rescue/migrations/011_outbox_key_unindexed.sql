-- The outbox's key (the incident an event belongs to) is no longer indexed: no statement reads
-- the outbox by key. The relays read it by id (unpublished, claimed), the replay by id within
-- the retention window, the clean-up by creation time; consumers get the key from the stream.
-- The index was written for every event the service emits, and again when the relay stamps the
-- event published (an update that is not HOT: published_at is in outbox_unpublished_idx's
-- predicate): about 10.6 index entries per alert, 1.1 KiB of its WAL (bench.wal, BENCHMARKS.md
-- session 19). A look-up by key (an operator following an incident's events) reads the table,
-- which retention keeps short.
DROP INDEX outbox_key_idx;
