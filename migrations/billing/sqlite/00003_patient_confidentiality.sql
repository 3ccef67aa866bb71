-- +goose Up
-- The confidentiality of each patient as the patient topic last said it (issue 17): billing's
-- reads refuse a restricted patient's accounts and invoices. version is the patient record's
-- version of the event that said it, so a late, older event cannot lift a newer restriction.
-- Its own table rather than columns on accounts: an event may arrive for a patient whose
-- account is not open yet, and the restriction must hold when the account follows.
CREATE TABLE patient_confidentiality (
    patient_id TEXT PRIMARY KEY,
    restricted INTEGER NOT NULL CHECK (restricted IN (0, 1)),
    version    INTEGER NOT NULL,
    changed_at TEXT NOT NULL
);

-- +goose Down
DROP TABLE patient_confidentiality;
