-- +goose NO TRANSACTION
-- +goose Up
-- Issue 20: the log is appended in time order, so a block range index (BRIN: the least and
-- greatest `at` of each range of 128 pages) finds a period's entries (GET /audit?from=&to=,
-- audit.Republish) as well as the b-tree did, at a fraction of its size, and an append does
-- not add an entry to it: one index fewer written with every audited request. autosummarize
-- has autovacuum summarize each range as it fills; a range not yet summarized is simply read.
-- SQLite has no such index and keeps its b-tree.
-- Building it reads the whole log once; it is built CONCURRENTLY, outside a transaction, so
-- appends (every audited request) go on meanwhile. The build first drops what an interrupted
-- run may have left (an invalid index of the same name), so the migration can run again.
DROP INDEX CONCURRENTLY IF EXISTS audit_log_at_brin;
CREATE INDEX CONCURRENTLY audit_log_at_brin ON audit_log USING brin (at) WITH (autosummarize = on);
DROP INDEX CONCURRENTLY IF EXISTS audit_log_at;

-- +goose Down
DROP INDEX audit_log_at_brin;
CREATE INDEX audit_log_at ON audit_log (at);
