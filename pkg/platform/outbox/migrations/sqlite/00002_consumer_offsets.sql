-- +goose Up
-- consumer_offsets is, per consumer and partition, the next offset to apply: written by
-- MarkApplied in the transaction that applies a message, so it never runs ahead of the
-- database. A consumer resumes from it (not from the broker's committed offsets, which run
-- ahead of a restored database): docs/operations.md, "What a restore means".
CREATE TABLE IF NOT EXISTS consumer_offsets (
    consumer    TEXT NOT NULL,
    topic       TEXT NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (consumer, topic, partition)
);

-- +goose Down
DROP TABLE consumer_offsets;
