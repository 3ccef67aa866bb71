-- +goose Up
-- The transactional outbox and its inbound twins (pkg/platform/outbox). Every service that
-- publishes or consumes events has the same three tables in its own schema.

-- Events written in the transaction of the change they describe; the relay publishes the
-- pending ones (published_at IS NULL) in id order and marks them.
CREATE TABLE outbox (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic        TEXT NOT NULL,
    msg_key      TEXT NOT NULL,
    value        BYTEA NOT NULL,
    headers      TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    published_at TIMESTAMPTZ
);
CREATE INDEX outbox_pending ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;

-- Event ids a consumer has applied, written in the transaction of the effect.
CREATE TABLE processed_events (
    consumer     TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

-- Replies of Kafka commands sent with an idempotency-key: a repeat gets the stored reply.
CREATE TABLE command_replies (
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER NOT NULL,
    body         BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, key)
);

-- +goose Down
DROP TABLE command_replies;
DROP TABLE processed_events;
DROP TABLE outbox;
