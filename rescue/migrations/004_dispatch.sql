-- Dispatch: incidents raised by 120, the offers made to volunteers, the append-only timeline
-- and the remote-guidance sessions. Locations are WGS-84; ids are opaque, time-sortable strings.

CREATE TABLE incidents (
    id                  text PRIMARY KEY,
    center_id           text NOT NULL REFERENCES dispatch_centers (id),
    external_id         text NOT NULL CHECK (length(external_id) BETWEEN 1 AND 200),
    -- sha256 of the alert's canonical JSON body: a replay with the same body answers the same plan.
    request_hash        bytea NOT NULL,
    lat                 double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lng                 double precision NOT NULL CHECK (lng BETWEEN -180 AND 180),
    address             text,
    district            text,
    category            text CHECK (category IN ('cardiac_arrest', 'unconscious', 'other')),
    exercise            boolean NOT NULL DEFAULT false,
    note                text,
    callback_url        text,
    reported_at         timestamptz,
    status              text NOT NULL DEFAULT 'open'
        CHECK (status IN ('open', 'cancelled', 'closed')),
    time_budget_s       integer NOT NULL CHECK (time_budget_s > 0),
    -- The reach after escalation: grows by the escalation step per wave, up to the maximum.
    budget_now_s        integer NOT NULL CHECK (budget_now_s > 0),
    wave                integer NOT NULL DEFAULT 1 CHECK (wave >= 1),
    -- The plan as first answered, in WGS-84, without the guidance token (derived, never stored).
    plan                jsonb NOT NULL,
    -- The durable escalation timer; NULL when there is nothing left to escalate.
    next_escalation_at  timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    closed_at           timestamptz,
    outcome             jsonb,
    UNIQUE (center_id, external_id)
);
CREATE INDEX incidents_escalation_due_idx ON incidents (next_escalation_at)
    WHERE status = 'open' AND next_escalation_at IS NOT NULL;
CREATE INDEX incidents_center_idx ON incidents (center_id, id);

CREATE TABLE offers (
    id           text PRIMARY KEY,
    incident_id  text NOT NULL REFERENCES incidents (id),
    volunteer_id text NOT NULL REFERENCES volunteers (id),
    role         text NOT NULL CHECK (role IN ('aed', 'cpr')),
    state        text NOT NULL DEFAULT 'open'
        CHECK (state IN ('open', 'accepted', 'declined', 'expired', 'cancelled')),
    wave         integer NOT NULL DEFAULT 1 CHECK (wave >= 1),
    eta_s        integer NOT NULL CHECK (eta_s >= 0),
    -- Straight-line distance from the volunteer to the patient when offered.
    distance_m   integer NOT NULL CHECK (distance_m >= 0),
    -- The AED to fetch (role aed): its id and the snapshot shown to the volunteer. AEDs are
    -- never deleted (DELETE retires them), and the snapshot keeps what the volunteer was told.
    aed_id       text,
    aed          jsonb,
    offered_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    answered_at  timestamptz,
    last_status  text,
    engaged      boolean NOT NULL DEFAULT false,
    UNIQUE (incident_id, volunteer_id),
    CHECK (NOT engaged OR state = 'accepted'),
    CHECK ((role = 'aed') = (aed_id IS NOT NULL))
);
-- The database guarantees a volunteer is engaged in one incident at a time.
CREATE UNIQUE INDEX offers_one_engagement_idx ON offers (volunteer_id) WHERE engaged;
CREATE INDEX offers_volunteer_idx ON offers (volunteer_id, id);
CREATE INDEX offers_open_expiry_idx ON offers (expires_at) WHERE state = 'open';

CREATE TABLE timeline (
    id           bigserial PRIMARY KEY,
    incident_id  text NOT NULL REFERENCES incidents (id),
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    type         text NOT NULL,
    -- Who did it: a dispatch center id, a volunteer id, a guidance participant id, "admin" or
    -- "system".
    actor        text NOT NULL,
    data         jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX timeline_incident_idx ON timeline (incident_id, id);

-- The timeline is a record: entries are added, never changed or removed.
CREATE FUNCTION timeline_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the timeline is append-only (% refused)', TG_OP;
END;
$$;
CREATE TRIGGER timeline_append_only BEFORE UPDATE OR DELETE ON timeline
    FOR EACH ROW EXECUTE FUNCTION timeline_append_only();

CREATE TABLE guidance_sessions (
    id           text PRIMARY KEY,
    incident_id  text NOT NULL UNIQUE REFERENCES incidents (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    closed_at    timestamptz
);

-- Participant tokens are never stored in plain: only their sha256 (see dispatch/tokens.py).
CREATE TABLE guidance_participants (
    participant_id  text PRIMARY KEY,
    session_id      text NOT NULL REFERENCES guidance_sessions (id),
    role            text NOT NULL CHECK (role IN ('dispatcher', 'responder')),
    volunteer_id    text REFERENCES volunteers (id),
    token_hash      bytea NOT NULL UNIQUE,
    -- When the participant was added to the session (the dispatcher at alert time, a responder
    -- at acceptance).
    joined_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (session_id, volunteer_id),
    CHECK ((role = 'responder') = (volunteer_id IS NOT NULL))
);
