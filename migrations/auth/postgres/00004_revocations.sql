-- +goose Up
-- Revocations (issue 16): every event that ends access tokens before their expiry, in the
-- order verifiers must apply them. seq is assigned under an exclusive transaction lock
-- (pkg/auth Store.revoke), so a watcher reading "seq > last" never skips a row that commits
-- late. kind 'user': the user's access tokens of token version < min_version end (except
-- session except_session, when set: a password change keeps the caller's own session);
-- kind 'session': the access tokens of session (refresh family) session_id end.
-- users.token_version is what the next access token of the user carries (claim "ver").
ALTER TABLE users ADD COLUMN token_version BIGINT NOT NULL DEFAULT 0;

CREATE TABLE revocations (
    seq            BIGSERIAL PRIMARY KEY,
    kind           TEXT NOT NULL CHECK (kind IN ('user', 'session')),
    user_id        UUID NOT NULL,
    session_id     UUID,
    min_version    BIGINT NOT NULL DEFAULT 0,
    except_session UUID,
    reason         TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX revocations_created ON revocations (created_at);

-- +goose Down
DROP TABLE revocations;
ALTER TABLE users DROP COLUMN token_version;
