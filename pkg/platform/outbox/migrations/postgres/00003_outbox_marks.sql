-- +goose NO TRANSACTION
-- +goose Up
-- Marking a row published rewrites it (PostgreSQL keeps versions). With half of each page left
-- free the new version lands on the old one's page, where the write-ahead log records only
-- the bytes that changed (published_at) rather than the whole event, and no index on
-- published_at takes a new entry: marking was the costliest part of a drain (issue 20
-- item 10). Pages written before this migration keep their fill. The relay prunes published
-- rows by id (Relay.prune), so the index on published_at is not needed.
ALTER TABLE outbox SET (fillfactor = 50);
-- Outside a transaction, so the index is dropped CONCURRENTLY: a plain drop waits for every
-- transaction using the outbox, and every write would queue behind it.
DROP INDEX CONCURRENTLY IF EXISTS outbox_published;

-- +goose Down
CREATE INDEX IF NOT EXISTS outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;
ALTER TABLE outbox RESET (fillfactor);
