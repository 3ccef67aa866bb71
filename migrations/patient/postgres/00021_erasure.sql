-- +goose Up
-- Erasure (issue 17, "Retention and erasure"). An erased patient keeps a tombstone row in
-- patients (id, MRN, dates; the PHI columns blanked, date_of_birth '0000-00-00', a date no one
-- is born on) and its erase record here; its versions are deleted.
ALTER TABLE patients ADD COLUMN erased_at TIMESTAMPTZ;

CREATE TABLE patient_erasures (
    patient_id  UUID PRIMARY KEY REFERENCES patients (id),
    mrn         TEXT NOT NULL,
    erased_at   TIMESTAMPTZ NOT NULL,
    erased_by   TEXT NOT NULL,
    role        TEXT NOT NULL,
    reason      TEXT NOT NULL,
    request_id  TEXT NOT NULL
);

-- Crypto-shredding (pkg/platform/shred): each patient's data key, wrapped by the service's
-- key-encryption key (a file, never in the database); erasure deletes the row.
CREATE TABLE data_keys (
    subject    TEXT PRIMARY KEY,
    wrapped    BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- +goose Down
DROP TABLE data_keys;
DROP TABLE patient_erasures;
ALTER TABLE patients DROP COLUMN erased_at;
