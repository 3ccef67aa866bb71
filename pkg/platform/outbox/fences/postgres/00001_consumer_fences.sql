-- +goose Up
-- consumer_fences are the intervals of a topic whose messages the consumers of this database
-- skip: written by a restore, from the moment its source's snapshot was taken to the restore,
-- they are the events of changes the restore took away from the source (its records are gone,
-- its events stay on the topic). Instants are compared with Kafka record timestamps.
CREATE TABLE consumer_fences (
    topic      TEXT NOT NULL,
    after_time TIMESTAMPTZ NOT NULL,
    until_time TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (topic, after_time)
);

-- +goose Down
DROP TABLE consumer_fences;
