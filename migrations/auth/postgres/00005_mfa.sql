-- +goose Up
-- Issue 16: passwords that must be changed, and TOTP second factors.
--
-- must_change_password: the generated bootstrap admin's password works once, to change it;
-- a login with it is answered password_change_required and a set-password token of purpose
-- 'change' (short-lived), which POST /password/set uses like any other.
ALTER TABLE users ADD COLUMN must_change_password BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE set_password_tokens DROP CONSTRAINT set_password_tokens_purpose_check;
ALTER TABLE set_password_tokens ADD CONSTRAINT set_password_tokens_purpose_check
    CHECK (purpose IN ('invite', 'reset', 'change'));

-- One TOTP factor per user (RFC 6238: SHA-1, 6 digits, 30 s). The secret is sealed with
-- AES-256-GCM under the key in --auth-mfa-key-file (base64 of nonce || ciphertext), never
-- in clear. A factor is pending until its first code confirms it (confirmed_at). last_step
-- is the last time step a code was accepted for: codes of that step and earlier are refused,
-- so a code works once.
CREATE TABLE mfa_totp (
    user_id       UUID PRIMARY KEY REFERENCES users (id),
    secret_sealed TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    confirmed_at  TIMESTAMPTZ,
    last_step     BIGINT NOT NULL DEFAULT 0
);

-- Ten one-time recovery codes per confirmed factor, stored as SHA-256 (hex) only.
CREATE TABLE mfa_recovery_codes (
    code_hash  TEXT PRIMARY KEY,
    user_id    UUID NOT NULL REFERENCES users (id),
    created_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);
CREATE INDEX mfa_recovery_codes_user ON mfa_recovery_codes (user_id);

-- Login challenges: a right password with a second factor due. 256 random bits shown once,
-- stored as SHA-256 (hex), bound to the user, short-lived and single use. Purpose 'mfa'
-- completes a login with a code; 'enrol' lets a user whose role requires MFA enrol and
-- confirm a factor (its first confirmation ends it).
CREATE TABLE login_challenges (
    challenge_hash TEXT PRIMARY KEY,
    user_id        UUID NOT NULL REFERENCES users (id),
    purpose        TEXT NOT NULL CHECK (purpose IN ('mfa', 'enrol')),
    created_at     TIMESTAMPTZ NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL,
    used_at        TIMESTAMPTZ
);
CREATE INDEX login_challenges_user ON login_challenges (user_id);
CREATE INDEX login_challenges_expires ON login_challenges (expires_at);

-- +goose Down
DROP TABLE login_challenges;
DROP TABLE mfa_recovery_codes;
DROP TABLE mfa_totp;
DELETE FROM set_password_tokens WHERE purpose = 'change';
ALTER TABLE set_password_tokens DROP CONSTRAINT set_password_tokens_purpose_check;
ALTER TABLE set_password_tokens ADD CONSTRAINT set_password_tokens_purpose_check
    CHECK (purpose IN ('invite', 'reset'));
ALTER TABLE users DROP COLUMN must_change_password;
