-- +goose Up
-- Merge and unmerge (issue 19 item 3). A merged record keeps its row: merged_into names the
-- survivor and deleted_at is set, so every "live" rule (searches, the email check, the
-- identifiers' partial unique index) leaves it out, as it does a deleted one; unmerge clears
-- both. Each version records the survivor it was merged into ('' when none). patient_merges
-- keeps every merge with its reason (free text: never in an event) and, once reversed, the
-- unmerge.
ALTER TABLE patients ADD COLUMN merged_into UUID;
ALTER TABLE patient_versions ADD COLUMN merged_into TEXT NOT NULL DEFAULT '';
CREATE TABLE patient_merges (
    id                 UUID PRIMARY KEY,
    survivor_id        UUID NOT NULL REFERENCES patients (id),
    duplicate_id       UUID NOT NULL REFERENCES patients (id),
    reason             TEXT NOT NULL,
    merged_at          TIMESTAMPTZ NOT NULL,
    merged_by          TEXT NOT NULL,
    role               TEXT NOT NULL,
    request_id         TEXT NOT NULL,
    unmerged_at        TIMESTAMPTZ,
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
