-- +goose Up
-- Issue 20 item 2: a single-record access (a read, above all) is its own disclosure. Its
-- chained audit_log entry already names the record (subject_id) and is indexed by it
-- (audit_log_subject), so the two facts the disclosure row added are kept in the entry's row
-- instead: disclosed_via is how the request arrived (http, grpc, kafka, internal), set only on
-- an entry that disclosed exactly its subject; disclosed_emergency marks break-glass use.
-- The access log reads these rows beside audit_disclosures (entries before this migration,
-- entries that disclosed other records, entries chained late from audit_pending) and
-- audit_disclosure_pages (searches); an entry is in exactly one of the three. Not hashed:
-- like a disclosure row, the annotation is not part of the chain. Both columns are nullable
-- and have no default, so adding them rewrites nothing.
ALTER TABLE audit_log ADD COLUMN disclosed_via TEXT;
ALTER TABLE audit_log ADD COLUMN disclosed_emergency BOOLEAN;

-- +goose Down
ALTER TABLE audit_log DROP COLUMN disclosed_emergency;
ALTER TABLE audit_log DROP COLUMN disclosed_via;
