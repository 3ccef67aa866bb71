-- +goose NO TRANSACTION
-- +goose Up
-- Richer demographics (issue 19 item 1). The structured name (family, given as a JSON array of
-- strings), FHIR administrative gender and phone are columns of the record and of every
-- version; existing records get them empty (their display name stays as it was: see
-- docs/api.md, "Demographics"). Identifiers other than the MRN (which stays the mrn column)
-- live in their own table; a pair (system, value) is unique among live patients only: the
-- row's deleted_at follows the record's soft delete, and the partial index leaves deleted
-- holders out. Email stops being unique at the index: family members may share one when the
-- caller confirms they are different people; the store checks it in the transaction under an
-- advisory lock keyed by the email (pkg/patient/store.go).
-- Outside a transaction, so the email index is rebuilt CONCURRENTLY (a plain build holds
-- writes while it reads the table): the new one is built beside the old under another name,
-- then takes its place. Every statement can run again after an interrupted run.
ALTER TABLE patients ADD COLUMN IF NOT EXISTS family TEXT NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS given TEXT NOT NULL DEFAULT '[]',
    ADD COLUMN IF NOT EXISTS gender TEXT NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS phone TEXT NOT NULL DEFAULT '';
ALTER TABLE patient_versions ADD COLUMN IF NOT EXISTS family TEXT NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS given TEXT NOT NULL DEFAULT '[]',
    ADD COLUMN IF NOT EXISTS gender TEXT NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS phone TEXT NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS identifiers TEXT NOT NULL DEFAULT '[]';
DROP INDEX CONCURRENTLY IF EXISTS patients_email_live_next;
CREATE INDEX CONCURRENTLY patients_email_live_next ON patients (lower(email)) WHERE deleted_at IS NULL;
DROP INDEX CONCURRENTLY IF EXISTS patients_email_live;
ALTER INDEX patients_email_live_next RENAME TO patients_email_live;
CREATE TABLE IF NOT EXISTS patient_identifiers (
    patient_id UUID NOT NULL REFERENCES patients (id),
    system     TEXT NOT NULL,
    value      TEXT NOT NULL,
    deleted_at TIMESTAMPTZ,
    PRIMARY KEY (patient_id, system, value)
);
CREATE UNIQUE INDEX IF NOT EXISTS patient_identifiers_live ON patient_identifiers (system, value) WHERE deleted_at IS NULL;

-- +goose Down
DROP TABLE patient_identifiers;
DROP INDEX patients_email_live;
CREATE UNIQUE INDEX patients_email_live ON patients (lower(email)) WHERE deleted_at IS NULL;
ALTER TABLE patient_versions DROP COLUMN identifiers, DROP COLUMN phone, DROP COLUMN gender, DROP COLUMN given, DROP COLUMN family;
ALTER TABLE patients DROP COLUMN phone, DROP COLUMN gender, DROP COLUMN given, DROP COLUMN family;
