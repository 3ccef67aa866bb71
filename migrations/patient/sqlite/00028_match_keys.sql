-- +goose Up
-- Duplicate detection (issue 19 item 2). The blocking keys of every live patient
-- (pkg/patient/match Keys: Soundex and birth year, date of birth, nickname group, phone,
-- email, identifiers), each stored as a 64-bit hash so that no email, phone or identifier is
-- repeated in this table; candidates for a registration are found by key IN (...) on the
-- primary key. The store writes a record's keys in the transaction of every create, update
-- and delete (a deleted record has none). Existing records are back-filled by the service on
-- start (Store.BackfillMatchKeys), which raises patient_match_keys_state.version to the key
-- scheme it wrote; a later scheme (a higher version) re-keys every record the same way.
CREATE TABLE patient_match_keys (
    key        BIGINT NOT NULL,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    PRIMARY KEY (key, patient_id)
);
CREATE INDEX patient_match_keys_patient ON patient_match_keys (patient_id);
CREATE TABLE patient_match_keys_state (
    version INTEGER NOT NULL
);
INSERT INTO patient_match_keys_state (version) VALUES (0);

-- +goose Down
DROP TABLE patient_match_keys_state;
DROP TABLE patient_match_keys;
