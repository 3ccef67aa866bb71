-- +goose Up
-- Sessions and known devices (issue 16 items 4 and 5); see the PostgreSQL twin. Instants
-- are fixed-width UTC text (pkg/platform/db.Time); ids are text UUIDs.
CREATE TABLE sessions (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users (id),
    created_at     TEXT NOT NULL,
    last_used_at   TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    client_address TEXT NOT NULL,
    user_agent     TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE devices (
    token_hash   TEXT PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    user_id      TEXT NOT NULL REFERENCES users (id),
    created_at   TEXT NOT NULL,
    last_used_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);
CREATE INDEX devices_user ON devices (user_id);
CREATE INDEX devices_expires ON devices (expires_at);

-- +goose Down
DROP TABLE devices;
DROP TABLE sessions;
