-- +goose Up
CREATE TABLE users (
    id            UUID PRIMARY KEY,
    email         TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'clinician', 'billing', 'analyst')),
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    password_hash TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
-- Email is unique case-insensitively; logins look it up the same way.
CREATE UNIQUE INDEX users_email ON users (lower(email));

-- Refresh tokens are stored only as the SHA-256 of the token. Every token of one login
-- shares a family; presenting a used token revokes the whole family.
CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    family_id   UUID NOT NULL,
    user_id     UUID NOT NULL REFERENCES users (id),
    issued_at   TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);

-- Failed-login throttling, one row per account ("account:<email>") and per client address
-- ("address:<ip>"): attempts not yet proven good in the current window, and the lock-out.
CREATE TABLE login_throttle (
    key           TEXT PRIMARY KEY,
    failures      INTEGER NOT NULL,
    window_start  TIMESTAMPTZ NOT NULL,
    locked_until  TIMESTAMPTZ,
    level         INTEGER NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX login_throttle_updated ON login_throttle (updated_at);

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
DROP TABLE login_throttle;
DROP TABLE refresh_tokens;
DROP TABLE users;
