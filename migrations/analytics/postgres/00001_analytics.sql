-- +goose Up
-- The analytics service's figures, folded from the patient, billing and audit topics. Every
-- table is written in the transaction that records the event's id in processed_events, so a
-- redelivered event changes nothing. A rebuild empties them all and starts a new generation.

-- state is one row: the generation (it names the consumer group, so a new one replays the
-- topics from the earliest offset) and the latest occurred_at folded.
CREATE TABLE state (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    generation    TEXT NOT NULL,
    last_event_at TIMESTAMPTZ
);

-- counters holds the scalar figures by name (patients_registered, events_audit, ...).
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);

-- days buckets patient and invoice events by the UTC day of their occurred_at.
CREATE TABLE days (
    day             TEXT PRIMARY KEY CHECK (length(day) = 10),
    registered      BIGINT NOT NULL DEFAULT 0,
    updated         BIGINT NOT NULL DEFAULT 0,
    deleted         BIGINT NOT NULL DEFAULT 0,
    invoices_issued BIGINT NOT NULL DEFAULT 0
);

-- amounts are integer minor units per ISO 4217 currency.
CREATE TABLE amounts (
    currency TEXT PRIMARY KEY,
    invoiced BIGINT NOT NULL DEFAULT 0,
    paid     BIGINT NOT NULL DEFAULT 0
);

-- issued_invoices remembers what an issued invoice added to invoiced, so voiding it takes
-- exactly that away, once.
CREATE TABLE issued_invoices (
    invoice_id TEXT PRIMARY KEY,
    currency   TEXT NOT NULL,
    subtotal   BIGINT NOT NULL,
    voided     INTEGER NOT NULL DEFAULT 0
);

-- offsets is the next offset to fold per partition, for the lag.
CREATE TABLE offsets (
    topic       TEXT NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset BIGINT NOT NULL,
    PRIMARY KEY (topic, partition)
);

-- processed_events is pkg/platform/outbox's table of applied event ids.
CREATE TABLE processed_events (
    consumer     TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

-- +goose Down
DROP TABLE processed_events;
DROP TABLE offsets;
DROP TABLE issued_invoices;
DROP TABLE amounts;
DROP TABLE days;
DROP TABLE counters;
DROP TABLE state;
