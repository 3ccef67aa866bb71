-- +goose Up
-- A search page's disclosures as one row (see the PostgreSQL twin). SQLite has no arrays:
-- patient_ids is a JSON array of ids in result order, read with json_each; the embedded
-- default serves a small practice, whose pages a scan reads quickly.
CREATE TABLE audit_disclosure_pages (
    entry_seq   INTEGER PRIMARY KEY,
    entry_id    TEXT NOT NULL,
    transport   TEXT NOT NULL,
    emergency   BOOLEAN NOT NULL DEFAULT 0,
    patient_ids TEXT NOT NULL
);

-- +goose Down
DROP TABLE audit_disclosure_pages;
