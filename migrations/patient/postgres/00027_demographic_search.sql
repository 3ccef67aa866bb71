-- +goose NO TRANSACTION
-- +goose Up
-- Search by the demographics of issue 19 (FHIR family, given, phone; birthdate ranges reuse
-- patients_dob_live of 00001): family is a case-insensitive prefix (a text_pattern_ops
-- b-tree), given a case-insensitive prefix of any given name (the JSON array's text, served by
-- trigrams as 00023's substrings), phone exact on its digits and leading + (an index on the
-- same expression pkg/patient/search_filters.go compares), gender exact (few values: an index
-- would not narrow it; it is applied with the other filters).
-- Built CONCURRENTLY, as 00023's: a plain build holds writes while it reads the table.
-- +goose StatementBegin
DO $$
BEGIN
    PERFORM pg_advisory_xact_lock(7320020);
    CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;
END
$$;
-- +goose StatementEnd
DROP INDEX CONCURRENTLY IF EXISTS patients_family_prefix;
CREATE INDEX CONCURRENTLY patients_family_prefix ON patients (lower(family) text_pattern_ops) WHERE deleted_at IS NULL;
DROP INDEX CONCURRENTLY IF EXISTS patients_given_trgm;
CREATE INDEX CONCURRENTLY patients_given_trgm ON patients USING gin (lower(given) public.gin_trgm_ops) WITH (fastupdate = off) WHERE deleted_at IS NULL;
DROP INDEX CONCURRENTLY IF EXISTS patients_phone_key;
CREATE INDEX CONCURRENTLY patients_phone_key ON patients ((replace(replace(replace(replace(replace(phone, ' ', ''), '-', ''), '.', ''), '(', ''), ')', ''))) WHERE deleted_at IS NULL;

-- +goose Down
DROP INDEX CONCURRENTLY patients_phone_key;
DROP INDEX CONCURRENTLY patients_given_trgm;
DROP INDEX CONCURRENTLY patients_family_prefix;
