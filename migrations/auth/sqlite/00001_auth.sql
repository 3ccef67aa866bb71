-- +goose Up
-- The audit log (pkg/platform/audit) and the outbox tables (pkg/platform/outbox) are their
-- packages' own migration sets; version 00002 (the outbox, until issue 14) is retired.
-- Instants are fixed-width UTC text (see pkg/platform/db.Time); ids are text UUIDs;
-- booleans are 0/1.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'clinician', 'billing', 'analyst')),
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE UNIQUE INDEX users_email ON users (lower(email));

CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    family_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users (id),
    issued_at   TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT,
    revoked_at  TEXT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);

CREATE TABLE login_throttle (
    key           TEXT PRIMARY KEY,
    failures      INTEGER NOT NULL,
    window_start  TEXT NOT NULL,
    locked_until  TEXT,
    level         INTEGER NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX login_throttle_updated ON login_throttle (updated_at);


-- +goose Down
DROP TABLE login_throttle;
DROP TABLE refresh_tokens;
DROP TABLE users;
