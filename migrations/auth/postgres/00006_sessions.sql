-- +goose Up
-- Sessions (issue 16 item 5): one row per login (a refresh token family: id = family_id,
-- which access tokens carry as "sid"), so a user can list and end its sessions. last_used_at
-- moves at every refresh (access tokens are verified without asking the auth service, so a
-- refresh is the last use the service sees); client_address and user_agent are as of the
-- last use (the user agent capped and printable only). Whether a session is live is read from
-- its refresh tokens, which stay the one source of truth for revocation.
CREATE TABLE sessions (
    id             UUID PRIMARY KEY,
    user_id        UUID NOT NULL REFERENCES users (id),
    created_at     TIMESTAMPTZ NOT NULL,
    last_used_at   TIMESTAMPTZ NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL,
    client_address TEXT NOT NULL,
    user_agent     TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- Known devices (issue 16 item 4): a device that logged in successfully gets a device token
-- (256 random bits, shown to it once per login, stored only as its SHA-256), bound to the
-- user. Failed logins that present a known device token of the account count against that
-- device only, so strangers' failures against the account never lock a known device out.
CREATE TABLE devices (
    token_hash   TEXT PRIMARY KEY,
    id           UUID NOT NULL UNIQUE,
    user_id      UUID NOT NULL REFERENCES users (id),
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX devices_user ON devices (user_id);
CREATE INDEX devices_expires ON devices (expires_at);

-- +goose Down
DROP TABLE devices;
DROP TABLE sessions;
