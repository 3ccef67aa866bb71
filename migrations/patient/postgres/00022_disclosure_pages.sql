-- +goose Up
-- Issue 17's budget: a search page's disclosures as one row (the page's patient ids in result
-- order, an array) with a GIN index, instead of one b-tree entry per record: a 500-row page
-- costs one row and one GIN insertion (fastupdate batches those), about a third of 500 rows.
-- GET /patients/{id}/access-log reads these (position = the id's place in the array) and
-- audit_disclosures (single-record accesses, and search rows written before this migration).
CREATE TABLE audit_disclosure_pages (
    entry_seq   BIGINT PRIMARY KEY,
    entry_id    UUID NOT NULL,
    transport   TEXT NOT NULL,
    emergency   BOOLEAN NOT NULL DEFAULT FALSE,
    patient_ids UUID[] NOT NULL
);
CREATE INDEX audit_disclosure_pages_patients ON audit_disclosure_pages USING gin (patient_ids);

-- +goose Down
DROP TABLE audit_disclosure_pages;
