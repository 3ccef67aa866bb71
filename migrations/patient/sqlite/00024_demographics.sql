-- +goose Up
-- Richer demographics (issue 19 item 1): as the PostgreSQL migration of the same number. The
-- email check in the transaction needs no lock here: SQLite's write transaction (BEGIN
-- IMMEDIATE) already serialises writers.
ALTER TABLE patients ADD COLUMN family TEXT NOT NULL DEFAULT '';
ALTER TABLE patients ADD COLUMN given TEXT NOT NULL DEFAULT '[]';
ALTER TABLE patients ADD COLUMN gender TEXT NOT NULL DEFAULT '';
ALTER TABLE patients ADD COLUMN phone TEXT NOT NULL DEFAULT '';
ALTER TABLE patient_versions ADD COLUMN family TEXT NOT NULL DEFAULT '';
ALTER TABLE patient_versions ADD COLUMN given TEXT NOT NULL DEFAULT '[]';
ALTER TABLE patient_versions ADD COLUMN gender TEXT NOT NULL DEFAULT '';
ALTER TABLE patient_versions ADD COLUMN phone TEXT NOT NULL DEFAULT '';
ALTER TABLE patient_versions ADD COLUMN identifiers TEXT NOT NULL DEFAULT '[]';
DROP INDEX patients_email_live;
CREATE INDEX patients_email_live ON patients (lower(email)) WHERE deleted_at IS NULL;
CREATE TABLE patient_identifiers (
    patient_id TEXT NOT NULL REFERENCES patients (id),
    system     TEXT NOT NULL,
    value      TEXT NOT NULL,
    deleted_at TEXT,
    PRIMARY KEY (patient_id, system, value)
);
CREATE UNIQUE INDEX patient_identifiers_live ON patient_identifiers (system, value) WHERE deleted_at IS NULL;

-- +goose Down
DROP TABLE patient_identifiers;
DROP INDEX patients_email_live;
CREATE UNIQUE INDEX patients_email_live ON patients (lower(email)) WHERE deleted_at IS NULL;
ALTER TABLE patient_versions DROP COLUMN identifiers;
ALTER TABLE patient_versions DROP COLUMN phone;
ALTER TABLE patient_versions DROP COLUMN gender;
ALTER TABLE patient_versions DROP COLUMN given;
ALTER TABLE patient_versions DROP COLUMN family;
ALTER TABLE patients DROP COLUMN phone;
ALTER TABLE patients DROP COLUMN gender;
ALTER TABLE patients DROP COLUMN given;
ALTER TABLE patients DROP COLUMN family;
