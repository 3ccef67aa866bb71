-- +goose Up
-- Issue 20 item 2. The outbox relay publishes the chain's entries straight from audit_log
-- (audit.Tail): seq is the chain's commit order, so the relay keeps one position per table
-- instead of an outbox row and a mark per entry. An existing log's entries were published
-- through the outbox, so its position starts at its end.
CREATE TABLE audit_published (
    tbl TEXT PRIMARY KEY,
    seq BIGINT NOT NULL
);
INSERT INTO audit_published (tbl, seq) SELECT 'audit_log', coalesce(max(seq), 0) FROM audit_log;

-- +goose Down
DROP TABLE audit_published;
