-- +goose Up
-- Instants are fixed-width UTC text (see pkg/platform/db.Time); ids are text UUIDs.
CREATE TABLE patients (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    mrn             TEXT UNIQUE,
    name            TEXT NOT NULL,
    email           TEXT NOT NULL,
    address         TEXT NOT NULL,
    date_of_birth   TEXT NOT NULL CHECK (length(date_of_birth) = 10),
    registered_date TEXT NOT NULL CHECK (length(registered_date) = 10),
    version         INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    deleted_at      TEXT
);
CREATE UNIQUE INDEX patients_email_live ON patients (lower(email)) WHERE deleted_at IS NULL;
CREATE INDEX patients_dob_live ON patients (date_of_birth) WHERE deleted_at IS NULL;

CREATE TABLE patient_versions (
    patient_id      TEXT NOT NULL REFERENCES patients (id),
    version         INTEGER NOT NULL,
    change          TEXT NOT NULL,
    mrn             TEXT NOT NULL,
    name            TEXT NOT NULL,
    email           TEXT NOT NULL,
    address         TEXT NOT NULL,
    date_of_birth   TEXT NOT NULL,
    registered_date TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    changed_at      TEXT NOT NULL,
    changed_by      TEXT NOT NULL,
    role            TEXT NOT NULL,
    request_id      TEXT NOT NULL,
    PRIMARY KEY (patient_id, version)
);

CREATE TABLE idempotency_keys (
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    resource_id  TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE TABLE audit_log (
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
CREATE INDEX audit_log_subject ON audit_log (subject_id, seq);
CREATE INDEX audit_log_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_at ON audit_log (at);

-- +goose Down
DROP TABLE audit_log;
DROP TABLE idempotency_keys;
DROP TABLE patient_versions;
DROP TABLE patients;
