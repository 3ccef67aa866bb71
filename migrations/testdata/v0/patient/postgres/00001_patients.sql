-- +goose Up
CREATE TABLE patients (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id              UUID PRIMARY KEY,
    mrn             TEXT UNIQUE,
    name            TEXT NOT NULL,
    email           TEXT NOT NULL,
    address         TEXT NOT NULL,
    date_of_birth   TEXT NOT NULL CHECK (date_of_birth ~ '^\d{4}-\d{2}-\d{2}$'),
    registered_date TEXT NOT NULL CHECK (registered_date ~ '^\d{4}-\d{2}-\d{2}$'),
    version         BIGINT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    deleted_at      TIMESTAMPTZ
);
-- Email is unique among live patients only: a deleted record frees it.
CREATE UNIQUE INDEX patients_email_live ON patients (lower(email)) WHERE deleted_at IS NULL;
CREATE INDEX patients_dob_live ON patients (date_of_birth) WHERE deleted_at IS NULL;

CREATE TABLE patient_versions (
    patient_id      UUID NOT NULL REFERENCES patients (id),
    version         BIGINT NOT NULL,
    change          TEXT NOT NULL,
    mrn             TEXT NOT NULL,
    name            TEXT NOT NULL,
    email           TEXT NOT NULL,
    address         TEXT NOT NULL,
    date_of_birth   TEXT NOT NULL,
    registered_date TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    changed_at      TIMESTAMPTZ NOT NULL,
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
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE TABLE audit_log (
    seq            BIGINT PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    at             TIMESTAMPTZ NOT NULL,
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
