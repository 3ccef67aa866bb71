-- +goose Up
-- The transactional outbox and its inbound twins (pkg/platform/outbox); see the PostgreSQL
-- twin of this file. AUTOINCREMENT: an id is never reused after published rows are pruned,
-- so id order stays commit order per key.
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    topic        TEXT NOT NULL,
    msg_key      TEXT NOT NULL,
    value        BLOB NOT NULL,
    headers      TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    published_at TEXT
);
CREATE INDEX outbox_pending ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;

CREATE TABLE processed_events (
    consumer     TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    processed_at TEXT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

CREATE TABLE command_replies (
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER NOT NULL,
    body         BLOB NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);

-- +goose Down
DROP TABLE command_replies;
DROP TABLE processed_events;
DROP TABLE outbox;
