-- +goose Up
-- Revocations (issue 16): every event that ends access tokens before their expiry, in the
-- order verifiers must apply them (see the PostgreSQL twin). SQLite has one writer at a
-- time, so AUTOINCREMENT's order is commit order. Instants are fixed-width UTC text.
ALTER TABLE users ADD COLUMN token_version INTEGER NOT NULL DEFAULT 0;

CREATE TABLE revocations (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           TEXT NOT NULL CHECK (kind IN ('user', 'session')),
    user_id        TEXT NOT NULL,
    session_id     TEXT,
    min_version    INTEGER NOT NULL DEFAULT 0,
    except_session TEXT,
    reason         TEXT NOT NULL,
    created_at     TEXT NOT NULL
);
CREATE INDEX revocations_created ON revocations (created_at);

-- +goose Down
DROP TABLE revocations;
ALTER TABLE users DROP COLUMN token_version;
