-- +goose Up
-- Issue 17: the privacy role (see the PostgreSQL twin). SQLite cannot change a CHECK
-- constraint in place, so users is rebuilt. Other tables reference users, and foreign keys
-- are on (and cannot be switched off inside goose's transaction): defer_foreign_keys lets
-- the children be orphaned between the DROP and the re-INSERT, and is checked at commit.
PRAGMA defer_foreign_keys = ON;
CREATE TABLE users_copy AS SELECT * FROM users;
DROP TABLE users;
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'clinician', 'billing', 'analyst', 'privacy')),
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    token_version INTEGER NOT NULL DEFAULT 0,
    must_change_password BOOLEAN NOT NULL DEFAULT FALSE
);
INSERT INTO users (id, email, role, disabled, password_hash, created_at, updated_at, token_version, must_change_password)
    SELECT id, email, role, disabled, password_hash, created_at, updated_at, token_version, must_change_password FROM users_copy;
DROP TABLE users_copy;
CREATE UNIQUE INDEX users_email ON users (lower(email));

-- +goose Down
DELETE FROM users WHERE role = 'privacy';
