-- +goose Up
-- Issue 17. audit_pending holds the entries a change's own transaction records (audit.InTx):
-- the change and its entry commit together or not at all, and the audit writer moves pending
-- entries into the chained audit_log afterwards (in pseq order as it finds them), deleting
-- them from here in the same transaction. pseq only orders the queue; the chain's seq is
-- assigned by the writer.
CREATE TABLE audit_pending (
    pseq           BIGSERIAL PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    at             TIMESTAMPTZ NOT NULL,
    actor          TEXT NOT NULL,
    role           TEXT NOT NULL,
    action         TEXT NOT NULL,
    subject_id     TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    request_id     TEXT NOT NULL,
    client_address TEXT NOT NULL
);

-- audit_log is insert-only: the writer only ever appends, so UPDATE, DELETE and TRUNCATE are
-- refused for every role (the owner included, until it disables the triggers, which needs
-- ALTER TABLE: the least-privilege role of docs/audit.md cannot).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION audit_log_insert_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is insert-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
-- +goose StatementEnd
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_insert_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_insert_only();

-- +goose Down
DROP TRIGGER audit_log_no_truncate ON audit_log;
DROP TRIGGER audit_log_no_update ON audit_log;
DROP FUNCTION audit_log_insert_only();
DROP TABLE audit_pending;
