-- Guidance sessions' protocol step, the reports' range scans, and what protects volunteers:
-- their legal-aid requests and their aftercare debriefs. Missions themselves are derived on
-- read from accepted offers and the timeline (dispatch/missions.py), so they never disagree
-- with the record; only what a volunteer or an administrator writes is stored here.

-- The protocol step the dispatcher last chose (NULL: the protocol's first step). The change
-- itself is also a timeline entry (guidance_step), so this is only the current value.
ALTER TABLE guidance_sessions
    ADD COLUMN step     text,
    ADD COLUMN step_at  timestamptz;

-- Reports select incidents by the alert's time.
CREATE INDEX incidents_created_at_idx ON incidents (created_at);

-- A mission is an accepted offer of a real incident: its id is the offer's id.
CREATE TABLE legal_aid_requests (
    id             text PRIMARY KEY,
    offer_id       text NOT NULL UNIQUE REFERENCES offers (id),
    volunteer_id   text NOT NULL REFERENCES volunteers (id),
    description    text NOT NULL CHECK (length(description) BETWEEN 1 AND 5000),
    contact_phone  text CHECK (length(contact_phone) <= 50),
    status         text NOT NULL DEFAULT 'open'
        CHECK (status IN ('open', 'in_progress', 'resolved', 'declined')),
    -- The administrators' note (who handles it, what was done).
    note           text CHECK (length(note) <= 5000),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX legal_aid_requests_status_idx ON legal_aid_requests (status, id);

CREATE TABLE debriefs (
    id              text PRIMARY KEY,
    offer_id        text NOT NULL UNIQUE REFERENCES offers (id),
    volunteer_id    text NOT NULL REFERENCES volunteers (id),
    answers         jsonb NOT NULL DEFAULT '{}'::jsonb,
    call_requested  boolean NOT NULL DEFAULT false,
    -- Where to call when it is not the registry's phone number.
    callback_phone  text CHECK (length(callback_phone) <= 50),
    submitted_at    timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX debriefs_call_requested_idx ON debriefs (id) WHERE call_requested;
