-- +goose Up
-- Issue 17. audit_pending holds the entries a change's own transaction records (audit.InTx);
-- the audit writer moves them into the chained audit_log. SQLite instants are fixed-width
-- TEXT (db.Time). SQLite has no roles and no TRUNCATE; audit_log's insert-only triggers are
-- PostgreSQL's (docs/audit.md): a SQLite file is protected by its file permissions, and the
-- chain and the signed checkpoints still catch an edit.
CREATE TABLE audit_pending (
    pseq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT NOT NULL UNIQUE,
    at             TEXT NOT NULL,
    actor          TEXT NOT NULL,
    role           TEXT NOT NULL,
    action         TEXT NOT NULL,
    subject_id     TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    request_id     TEXT NOT NULL,
    client_address TEXT NOT NULL
);

-- +goose Down
DROP TABLE audit_pending;
