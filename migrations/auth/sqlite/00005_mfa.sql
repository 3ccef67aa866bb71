-- +goose Up
-- Issue 16: passwords that must be changed, and TOTP second factors (see the PostgreSQL
-- twin for the why). Instants are fixed-width UTC text (pkg/platform/db.Time). SQLite cannot
-- change a CHECK constraint in place, so set_password_tokens is rebuilt to allow 'change'.
ALTER TABLE users ADD COLUMN must_change_password BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE set_password_tokens_new (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id),
    purpose     TEXT NOT NULL CHECK (purpose IN ('invite', 'reset', 'change')),
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT
);
INSERT INTO set_password_tokens_new SELECT token_hash, user_id, purpose, created_at, expires_at, used_at FROM set_password_tokens;
DROP TABLE set_password_tokens;
ALTER TABLE set_password_tokens_new RENAME TO set_password_tokens;
CREATE INDEX set_password_tokens_user ON set_password_tokens (user_id);
CREATE INDEX set_password_tokens_expires ON set_password_tokens (expires_at);

CREATE TABLE mfa_totp (
    user_id       TEXT PRIMARY KEY REFERENCES users (id),
    secret_sealed TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    confirmed_at  TEXT,
    last_step     INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE mfa_recovery_codes (
    code_hash  TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    created_at TEXT NOT NULL,
    used_at    TEXT
);
CREATE INDEX mfa_recovery_codes_user ON mfa_recovery_codes (user_id);

CREATE TABLE login_challenges (
    challenge_hash TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users (id),
    purpose        TEXT NOT NULL CHECK (purpose IN ('mfa', 'enrol')),
    created_at     TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    used_at        TEXT
);
CREATE INDEX login_challenges_user ON login_challenges (user_id);
CREATE INDEX login_challenges_expires ON login_challenges (expires_at);

-- +goose Down
DROP TABLE login_challenges;
DROP TABLE mfa_recovery_codes;
DROP TABLE mfa_totp;
DELETE FROM set_password_tokens WHERE purpose = 'change';
ALTER TABLE users DROP COLUMN must_change_password;
