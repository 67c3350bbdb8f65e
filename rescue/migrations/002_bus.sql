-- The event bus (rescue.bus): a transactional outbox relayed onto a Redis Stream.
-- emit() inserts a row in the caller's transaction; the relays publish unpublished rows in id
-- order and stamp published_at; consumer groups record the events they have handled so a
-- redelivery is recognised and a Redis that lost its data can be refilled from here.

CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    event_id      text NOT NULL UNIQUE,
    type          text NOT NULL CHECK (length(type) BETWEEN 1 AND 200),
    key           text,
    data          jsonb NOT NULL,
    occurred_at   timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_created_at_idx ON outbox (created_at);
CREATE INDEX outbox_key_idx ON outbox (key) WHERE key IS NOT NULL;

-- Every consumer group ever subscribed, with the event types it takes (NULL: all of them).
CREATE TABLE bus_groups (
    name        text PRIMARY KEY,
    types       text[],
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Events a group is done with: handled ('done') or given up on ('dead', in the dead-letter stream).
CREATE TABLE bus_processed (
    group_name    text NOT NULL,
    event_id      text NOT NULL,
    outcome       text NOT NULL DEFAULT 'done' CHECK (outcome IN ('done', 'dead')),
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_name, event_id)
);
CREATE INDEX bus_processed_processed_at_idx ON bus_processed (processed_at);
