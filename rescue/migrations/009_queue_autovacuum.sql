-- The tables the service uses as work queues are vacuumed and analysed after a fixed share of
-- changes (1 %, at least 1,000 rows) instead of PostgreSQL's default 20 %.
--
-- Each of their rows is written, then updated once its work is done, and the work left is found
-- through a partial index that holds a handful of live rows: the pending callbacks
-- (webhook_deliveries_due_idx, read by every delivery loop at every wake), the unpublished
-- events (outbox_unpublished_idx, every relay), the open offers (offers_open_expiry_idx) and the
-- incidents due to escalate (incidents_escalation_due_idx, every worker twice a second). Every
-- update leaves a dead entry in that small index until a vacuum removes it, and these tables
-- keep their history, so at 20 % a table of 200,000 deliveries owes 40,000 dead entries before
-- its first vacuum, and every claim walks them. Measured on the bench (autovacuum off there, as
-- on the CI machine): 61,000 dead deliveries made a claim 9.7 ms instead of 0.17 ms, and the
-- delivery of a run 1.4 ms instead of 0.35 ms. The analyses follow the same rule, so that the
-- planner learns of a burst of pending rows within a naptime.
ALTER TABLE webhook_deliveries SET (
    autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.01, autovacuum_analyze_threshold = 1000
);
ALTER TABLE outbox SET (
    autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.01, autovacuum_analyze_threshold = 1000
);
ALTER TABLE offers SET (
    autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.01, autovacuum_analyze_threshold = 1000
);
ALTER TABLE incidents SET (
    autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.01, autovacuum_analyze_threshold = 1000
);
