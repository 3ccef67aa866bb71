-- +goose Up
-- The audit log is pkg/platform/audit's own migration set.
-- SQLite twin of the PostgreSQL file: instants are fixed-width UTC text (pkg/platform/db.Time), booleans 0/1.
-- The analytics service's figures, folded from the patient, billing and audit topics. Every
-- table is written in the transaction that records the event's id in processed_events, so a
-- redelivered event changes nothing. A rebuild empties them all and starts a new generation.

-- Figures that every event moves are kept per shard (the event's topic/partition) and summed
-- when read: a partition is folded by one consumer at a time, so folds of different
-- partitions never wait for each other's row locks.

-- state is one row: the generation (it names the consumer group, so a new one replays the
-- topics from the earliest offset).
CREATE TABLE state (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation TEXT NOT NULL
);

-- counters holds the scalar figures by name (patients_registered, events_audit, ...).
CREATE TABLE counters (
    name  TEXT NOT NULL,
    shard TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (name, shard)
);

-- days buckets patient and invoice events by the UTC day of their occurred_at.
CREATE TABLE days (
    day             TEXT NOT NULL CHECK (length(day) = 10),
    shard           TEXT NOT NULL,
    registered      INTEGER NOT NULL DEFAULT 0,
    updated         INTEGER NOT NULL DEFAULT 0,
    deleted         INTEGER NOT NULL DEFAULT 0,
    invoices_issued INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, shard)
);

-- amounts are integer minor units per ISO 4217 currency.
CREATE TABLE amounts (
    currency TEXT NOT NULL,
    shard    TEXT NOT NULL,
    invoiced INTEGER NOT NULL DEFAULT 0,
    paid     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (currency, shard)
);

-- issued_invoices remembers what an issued invoice added to invoiced, so voiding it takes
-- exactly that away, once.
CREATE TABLE issued_invoices (
    invoice_id TEXT PRIMARY KEY,
    currency   TEXT NOT NULL,
    subtotal   INTEGER NOT NULL,
    voided     INTEGER NOT NULL DEFAULT 0
);

-- offsets is, per partition, the next offset to fold (for the lag) and the latest
-- occurred_at folded from it (lastEventAt is their maximum).
CREATE TABLE offsets (
    topic         TEXT NOT NULL,
    partition     INTEGER NOT NULL,
    next_offset   INTEGER NOT NULL,
    last_event_at TEXT,
    PRIMARY KEY (topic, partition)
);

-- processed_events is pkg/platform/outbox's table of applied event ids.
CREATE TABLE processed_events (
    consumer     TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    processed_at TEXT NOT NULL,
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
