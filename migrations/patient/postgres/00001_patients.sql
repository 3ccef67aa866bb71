-- +goose Up
-- The audit log (pkg/platform/audit) and the outbox tables (pkg/platform/outbox) are their
-- packages' own migration sets; version 00002 (the outbox, until issue 14) is retired.
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


-- +goose Down
DROP TABLE idempotency_keys;
DROP TABLE patient_versions;
DROP TABLE patients;
