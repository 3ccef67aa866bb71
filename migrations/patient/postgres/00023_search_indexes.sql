-- +goose NO TRANSACTION
-- +goose Up
-- Search that stays fast (issue 20): a q of 3 characters or more is a substring search served
-- by trigram GIN indexes; a shorter q is a prefix search served by the text_pattern_ops b-trees
-- (trigrams cannot serve it); exact email and date of birth keep their b-trees of 00001.
-- pg_trgm lives in public and the indexes name public.gin_trgm_ops: each service's search_path
-- holds only its own schema, and tests drop their schemas (never public). The advisory lock
-- serialises services or tests migrating the same database at once: two concurrent
-- CREATE EXTENSION IF NOT EXISTS can both miss the other's and one then fails on the catalog's
-- unique index. fastupdate is off: a GIN pending list (filled by every insert until vacuum
-- merges it) is read linearly by every search, which took a rare substring from 0.4 ms to
-- 20 ms after seeding 100k patients; a registration pays the index update instead.
-- The indexes are built CONCURRENTLY, outside a transaction: on a large table a plain build
-- holds writes (registrations, updates) for as long as it reads the table. Each build first
-- drops what an interrupted run may have left (an invalid index of the same name), so the
-- migration can run again; db.Migrate's session lock keeps two starting replicas apart.
-- +goose StatementBegin
DO $$
BEGIN
    PERFORM pg_advisory_xact_lock(7320020);
    CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;
END
$$;
-- +goose StatementEnd
DROP INDEX CONCURRENTLY IF EXISTS patients_name_trgm;
CREATE INDEX CONCURRENTLY patients_name_trgm ON patients USING gin (lower(name) public.gin_trgm_ops) WITH (fastupdate = off) WHERE deleted_at IS NULL;
DROP INDEX CONCURRENTLY IF EXISTS patients_email_trgm;
CREATE INDEX CONCURRENTLY patients_email_trgm ON patients USING gin (lower(email) public.gin_trgm_ops) WITH (fastupdate = off) WHERE deleted_at IS NULL;
DROP INDEX CONCURRENTLY IF EXISTS patients_mrn_trgm;
CREATE INDEX CONCURRENTLY patients_mrn_trgm ON patients USING gin (mrn public.gin_trgm_ops) WITH (fastupdate = off) WHERE deleted_at IS NULL;
DROP INDEX CONCURRENTLY IF EXISTS patients_name_prefix;
CREATE INDEX CONCURRENTLY patients_name_prefix ON patients (lower(name) text_pattern_ops) WHERE deleted_at IS NULL;
DROP INDEX CONCURRENTLY IF EXISTS patients_email_prefix;
CREATE INDEX CONCURRENTLY patients_email_prefix ON patients (lower(email) text_pattern_ops) WHERE deleted_at IS NULL;
DROP INDEX CONCURRENTLY IF EXISTS patients_mrn_prefix;
CREATE INDEX CONCURRENTLY patients_mrn_prefix ON patients (mrn text_pattern_ops) WHERE deleted_at IS NULL;

-- +goose Down
DROP INDEX CONCURRENTLY patients_mrn_prefix;
DROP INDEX CONCURRENTLY patients_email_prefix;
DROP INDEX CONCURRENTLY patients_name_prefix;
DROP INDEX CONCURRENTLY patients_mrn_trgm;
DROP INDEX CONCURRENTLY patients_email_trgm;
DROP INDEX CONCURRENTLY patients_name_trgm;
