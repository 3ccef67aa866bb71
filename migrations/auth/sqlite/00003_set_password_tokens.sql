-- +goose Up
-- One-time set-password tokens (issue 15: invited users; issue 16's admin reset reuses the
-- table with purpose 'reset'). A token is 32 random bytes shown once to whoever asked for it
-- and stored only as its SHA-256 (hex): single use (used_at), expiring (expires_at).
-- An invited user has no password yet: password_hash is '' until a token sets it, and such
-- an account cannot log in. Instants are fixed-width UTC text (pkg/platform/db.Time).
CREATE TABLE set_password_tokens (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id),
    purpose     TEXT NOT NULL CHECK (purpose IN ('invite', 'reset')),
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT
);
CREATE INDEX set_password_tokens_user ON set_password_tokens (user_id);
CREATE INDEX set_password_tokens_expires ON set_password_tokens (expires_at);

-- +goose Down
DROP TABLE set_password_tokens;
