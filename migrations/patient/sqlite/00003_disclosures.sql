-- +goose Up
-- Issue 17: every disclosure audited per patient. A read, change or search writes one chained
-- audit_log entry (pkg/platform/audit); audit_disclosures holds one row per patient record
-- that entry disclosed (a search: one per record returned, position 1..n; a single-record
-- action: position 0), written in the same transaction as the entry by the audit writer's
-- AfterBatch hook (pkg/patient/disclose.go). GET /patients/{id}/access-log reads it.
-- transport is how the request arrived (http, grpc, kafka); emergency marks break-glass
-- access (none exists yet: always false).
CREATE TABLE audit_disclosures (
    entry_seq  INTEGER NOT NULL,
    entry_id   TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    position   INTEGER NOT NULL,
    transport  TEXT NOT NULL,
    emergency  BOOLEAN NOT NULL DEFAULT 0
);
-- The one index is the access log's (a patient's rows, newest first): every other index
-- would cost each 500-row search page 500 more index entries.
CREATE INDEX audit_disclosures_patient ON audit_disclosures (patient_id, entry_seq);

-- A search's query is kept only as a keyed fingerprint: HMAC-SHA-256 under the key in
-- --patient-search-key-file, never as text (a plain hash of a name or birth date can be
-- brute-forced). Destroying or rotating the key makes old fingerprints unlinkable.
CREATE TABLE audit_searches (
    entry_seq   INTEGER PRIMARY KEY,
    entry_id    TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    results     INTEGER NOT NULL
);

-- +goose Down
DROP TABLE audit_searches;
DROP TABLE audit_disclosures;
