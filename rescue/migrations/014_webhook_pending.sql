-- A callback waiting to be delivered is a row of its own, `webhook_pending`, as an unpublished
-- event is (migration 012), instead of state kept on the delivery's row. The delivery row
-- (the event's payload to 120, its URL and its place in the incident's order) is now written
-- once and never updated; every attempt keeps its own row, as before, and says how it ended.
--
-- Recording a delivery rewrote its row whole (about 700 bytes with the payload) by an UPDATE
-- that could not be HOT (`state` is in webhook_deliveries_due_idx's predicate): a new version
-- on another page, an entry in each of its four indexes, a lock record and a dead row. With an
-- alert's five or six callbacks that was the largest part of what an alert writes
-- (BENCHMARKS.md, sessions 20 and 21). Now recording it is the pending row's DELETE, a claim an
-- update of that small row (HOT: neither attempts nor next_attempt_at is indexed), and its
-- outcome the attempt's own row (HOT, as before).
--
-- What the delivery row said of its progress is derived (the view webhook_delivery_states):
-- pending while its pending row exists; else delivered when an attempt was answered 2xx, else
-- failed (given up). Its attempts, last status and error, and delivered_at come from the
-- attempts' rows; next_attempt_at from the pending row.
--
-- No foreign key from the pending row: it is written only with its delivery, in the same
-- statement, and deliveries are never deleted.
CREATE TABLE webhook_pending (
    id               text PRIMARY KEY,  -- webhook_deliveries.id
    -- The delivery's place in its incident's order (copied: the heads are found here).
    incident_id      text NOT NULL,
    event_at         timestamptz NOT NULL,
    stage            smallint NOT NULL,
    seq              bigint NOT NULL,
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- While an attempt is in flight this is the end of its lease (then another worker retries).
    next_attempt_at  timestamptz NOT NULL DEFAULT now()
) WITH (
    -- A queue of a few live rows, each deleted once delivered: vacuumed, as the other queues
    -- are (migration 009), after 1 % of changes, at least 1,000 rows.
    autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.01, autovacuum_analyze_threshold = 1000
);
CREATE INDEX webhook_pending_order_idx ON webhook_pending (incident_id, event_at, stage, seq);

INSERT INTO webhook_pending (id, incident_id, event_at, stage, seq, attempts, next_attempt_at)
SELECT id, incident_id, event_at, stage, seq, attempts, next_attempt_at
FROM webhook_deliveries WHERE state = 'pending';

-- When an attempt's outcome was recorded (NULL while in flight, or if its worker died).
ALTER TABLE webhook_attempts ADD COLUMN finished_at timestamptz;
UPDATE webhook_attempts a
SET finished_at = a.at + make_interval(secs => COALESCE(a.duration_ms, 0) / 1000.0)
WHERE a.status_code IS NOT NULL OR a.error IS NOT NULL;
-- A delivered one's last attempt is its 2xx answer, at delivered_at.
UPDATE webhook_attempts a
SET finished_at = d.delivered_at, status_code = COALESCE(a.status_code, d.last_status_code, 200)
FROM webhook_deliveries d
WHERE d.state = 'delivered' AND a.delivery_id = d.id AND a.attempt = d.attempts;

DROP INDEX webhook_deliveries_due_idx;
ALTER TABLE webhook_deliveries
    DROP COLUMN state, DROP COLUMN attempts, DROP COLUMN next_attempt_at,
    DROP COLUMN last_attempt_at, DROP COLUMN last_status_code, DROP COLUMN last_error,
    DROP COLUMN delivered_at;
-- Only inserted now: PostgreSQL's default autovacuum again (migration 009's was for updates).
ALTER TABLE webhook_deliveries RESET (
    autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold,
    autovacuum_analyze_scale_factor, autovacuum_analyze_threshold
);

-- A delivery as the API shows it (dispatch.callback_routes): its row, with its progress.
CREATE VIEW webhook_delivery_states AS
SELECT d.id, d.event_id, d.event_type, d.event_at, d.stage, d.seq, d.incident_id, d.center_id,
       d.url, d.payload, d.created_at,
       CASE WHEN p.id IS NOT NULL THEN 'pending'
            WHEN ok.finished_at IS NOT NULL THEN 'delivered'
            ELSE 'failed' END AS state,
       COALESCE(p.attempts, a.attempts, 0) AS attempts,
       p.next_attempt_at,
       a.last_attempt_at,
       f.status_code AS last_status_code,
       f.error AS last_error,
       ok.finished_at AS delivered_at
FROM webhook_deliveries d
LEFT JOIN webhook_pending p ON p.id = d.id
LEFT JOIN LATERAL (
    SELECT max(x.attempt) AS attempts, max(x.at) AS last_attempt_at
    FROM webhook_attempts x WHERE x.delivery_id = d.id
) a ON true
LEFT JOIN LATERAL (
    SELECT x.status_code, x.error FROM webhook_attempts x
    WHERE x.delivery_id = d.id AND x.finished_at IS NOT NULL
    ORDER BY x.attempt DESC LIMIT 1
) f ON true
LEFT JOIN LATERAL (
    SELECT x.finished_at FROM webhook_attempts x
    WHERE x.delivery_id = d.id AND x.finished_at IS NOT NULL AND x.status_code BETWEEN 200 AND 299
    ORDER BY x.attempt DESC LIMIT 1
) ok ON true;
