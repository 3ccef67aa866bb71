-- +goose Up
-- The hash-chained audit log every service keeps in its own schema (pkg/platform/audit).
-- Until issue 14 each service's first migration created it; IF NOT EXISTS lets a database
-- migrated then adopt this set unchanged (audit_log_subject is new to analytics).
CREATE TABLE IF NOT EXISTS audit_log (
    seq            INTEGER PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    at             TEXT NOT NULL,
    actor          TEXT NOT NULL,
    role           TEXT NOT NULL,
    action         TEXT NOT NULL,
    subject_id     TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    request_id     TEXT NOT NULL,
    client_address TEXT NOT NULL,
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_subject ON audit_log (subject_id, seq);
CREATE INDEX IF NOT EXISTS audit_log_actor ON audit_log (actor, seq);
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log (at);

-- +goose Down
DROP TABLE audit_log;
