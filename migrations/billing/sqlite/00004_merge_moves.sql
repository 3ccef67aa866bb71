-- +goose Up
-- Patient merges (issue 19 item 3): as the PostgreSQL migration of the same number.
CREATE TABLE merge_moves (
    event_id        TEXT NOT NULL,
    invoice_id      TEXT NOT NULL REFERENCES invoices (id),
    from_patient    TEXT NOT NULL,
    from_account    TEXT NOT NULL,
    to_patient      TEXT NOT NULL,
    to_account      TEXT NOT NULL,
    moved_at        TEXT NOT NULL,
    returned_at     TEXT,
    return_event_id TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (event_id, invoice_id)
);
CREATE INDEX merge_moves_from ON merge_moves (from_patient, moved_at);

-- +goose Down
DROP TABLE merge_moves;
