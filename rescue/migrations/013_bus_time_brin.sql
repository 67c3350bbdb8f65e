-- The bus's two indexes by time, read only by its clean-up (and a replay after Redis lost the
-- bus), become BRIN indexes: outbox (created_at) and bus_processed (processed_at).
--
-- Both tables are written in time order and never updated (the outbox since migration 012,
-- bus_processed always: ON CONFLICT DO NOTHING), so each block range holds a narrow span of
-- times, and a range's summary answers "older than the retention" for the clean-up that runs
-- every ten minutes. A B-tree entry was written for every event (about 5.4 per alert) and for
-- every group's record of one (about 10.5 per alert); a BRIN index is written when a vacuum
-- summarises the ranges filled since the last (autovacuum runs on inserts too). The ranges
-- filled since are read whole by the clean-up: the newest rows, which it keeps anyway. Space
-- the clean-up frees is filled again by new rows, which widens those ranges' spans: the
-- clean-up then reads more of the table, never a wrong row.
-- (Not autosummarize: on a server without autovacuum its requests are never served and, once
-- their queue is full, each is logged.)
DROP INDEX outbox_created_at_idx;
CREATE INDEX outbox_created_at_brin ON outbox USING brin (created_at);
DROP INDEX bus_processed_processed_at_idx;
CREATE INDEX bus_processed_processed_at_brin ON bus_processed USING brin (processed_at);
