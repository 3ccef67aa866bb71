-- +goose Up
-- Merge and unmerge (issue 19 item 3): as the PostgreSQL migration of the same number.
ALTER TABLE patients ADD COLUMN merged_into TEXT;
ALTER TABLE patient_versions ADD COLUMN merged_into TEXT NOT NULL DEFAULT '';
CREATE TABLE patient_merges (
    id                 TEXT PRIMARY KEY,
    survivor_id        TEXT NOT NULL REFERENCES patients (id),
    duplicate_id       TEXT NOT NULL REFERENCES patients (id),
    reason             TEXT NOT NULL,
    merged_at          TEXT NOT NULL,
    merged_by          TEXT NOT NULL,
    role               TEXT NOT NULL,
    request_id         TEXT NOT NULL,
    unmerged_at        TEXT,
    unmerged_by        TEXT NOT NULL DEFAULT '',
    unmerge_reason     TEXT NOT NULL DEFAULT '',
    unmerge_request_id TEXT NOT NULL DEFAULT ''
);
CREATE INDEX patient_merges_duplicate ON patient_merges (duplicate_id, merged_at);
CREATE INDEX patient_merges_survivor ON patient_merges (survivor_id, merged_at);

-- +goose Down
DROP TABLE patient_merges;
ALTER TABLE patient_versions DROP COLUMN merged_into;
ALTER TABLE patients DROP COLUMN merged_into;
