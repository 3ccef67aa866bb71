-- +goose Up
-- consumer_offsets is, per consumer and partition, the next offset to apply: written by
-- MarkProcessed in the transaction that applies a message, so it never runs ahead of the
-- database. A consumer resumes from it (not from the broker's committed offsets, which run
-- ahead of a restored database): docs/operations.md, "What a restore means".
CREATE TABLE IF NOT EXISTS consumer_offsets (
    consumer    TEXT NOT NULL,
    topic       TEXT NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset BIGINT NOT NULL,
    PRIMARY KEY (consumer, topic, partition)
);

-- consumer_fences are the intervals of a topic whose messages the consumers of this database
-- skip: written by a restore, from the moment its source's snapshot was taken to the restore,
-- they are the events of changes the restore took away from the source (its records are gone,
-- its events stay on the topic). Instants are compared with Kafka record timestamps.
CREATE TABLE IF NOT EXISTS consumer_fences (
    topic      TEXT NOT NULL,
    after_time TIMESTAMPTZ NOT NULL,
    until_time TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (topic, after_time)
);

-- +goose Down
DROP TABLE consumer_fences;
DROP TABLE consumer_offsets;
