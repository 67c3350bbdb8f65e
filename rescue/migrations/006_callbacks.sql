-- Callbacks to the 120 center: one delivery per incident event (idempotent by event id), and
-- every attempt to deliver it. Deliveries of one incident go out in event order: only the
-- earliest pending one (event_at, stage, seq) of an incident is ever eligible.
-- incident_id has no foreign key so that this migration depends only on 001 (the incidents
-- table of 004 is written in parallel); rows are written from the incident's own events.

CREATE TABLE webhook_deliveries (
    id                text PRIMARY KEY,
    event_id          text NOT NULL UNIQUE,
    event_type        text NOT NULL,
    event_at          timestamptz NOT NULL,
    -- Orders events of the same instant: incident.created first, the end of the incident last.
    stage             smallint NOT NULL DEFAULT 1,
    seq               bigint GENERATED ALWAYS AS IDENTITY,
    incident_id       text NOT NULL,
    center_id         text NOT NULL REFERENCES dispatch_centers (id),
    url               text NOT NULL,
    payload           jsonb NOT NULL,
    state             text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- While an attempt is in flight this is the end of its lease (then another worker retries).
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    last_attempt_at   timestamptz,
    last_status_code  integer,
    last_error        text,
    delivered_at      timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_due_idx
    ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_order_idx
    ON webhook_deliveries (incident_id, event_at, stage, seq);

CREATE TABLE webhook_attempts (
    delivery_id  text NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt      integer NOT NULL CHECK (attempt >= 1),
    at           timestamptz NOT NULL DEFAULT now(),
    -- All three stay NULL while the attempt is in flight (or if its worker died mid-flight).
    status_code  integer,
    error        text,
    duration_ms  integer,
    PRIMARY KEY (delivery_id, attempt)
);
