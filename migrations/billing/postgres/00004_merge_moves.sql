-- +goose Up
-- Patient merges (issue 19 item 3): billing's consumer of the patient topic moves a merged
-- duplicate's invoices to the survivor's account on PATIENT_MERGED and records each move
-- here, so PATIENT_UNMERGED moves exactly those back (returned_at). event_id is the merge
-- event's; the pair is the key, so a replayed event cannot record a move twice.
CREATE TABLE merge_moves (
    event_id        TEXT NOT NULL,
    invoice_id      UUID NOT NULL REFERENCES invoices (id),
    from_patient    UUID NOT NULL,
    from_account    UUID NOT NULL,
    to_patient      UUID NOT NULL,
    to_account      UUID NOT NULL,
    moved_at        TIMESTAMPTZ NOT NULL,
    returned_at     TIMESTAMPTZ,
    return_event_id TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (event_id, invoice_id)
);
CREATE INDEX merge_moves_from ON merge_moves (from_patient, moved_at);

-- +goose Down
DROP TABLE merge_moves;
