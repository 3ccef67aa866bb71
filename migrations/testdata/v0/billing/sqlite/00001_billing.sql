-- +goose Up
-- Instants are fixed-width UTC text (see pkg/platform/db.Time); ids are text UUIDs.
-- One account per patient: the unique patient_id is what makes CreateBillingAccount idempotent.
CREATE TABLE accounts (
    id         TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL UNIQUE,
    status     TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- Amounts are integer minor units of the invoice's currency.
CREATE TABLE invoices (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    patient_id  TEXT NOT NULL,
    account_id  TEXT NOT NULL REFERENCES accounts (id),
    currency    TEXT NOT NULL CHECK (length(currency) = 3 AND currency = upper(currency)),
    status      TEXT NOT NULL CHECK (status IN ('draft', 'open', 'paid', 'void')),
    due_date    TEXT NOT NULL CHECK (length(due_date) = 10),
    subtotal    INTEGER NOT NULL CHECK (subtotal >= 0),
    amount_paid INTEGER NOT NULL CHECK (amount_paid >= 0 AND amount_paid <= subtotal),
    version     INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX invoices_patient ON invoices (patient_id, seq);
CREATE INDEX invoices_status ON invoices (status, seq);

CREATE TABLE invoice_lines (
    invoice_id  TEXT NOT NULL REFERENCES invoices (id),
    line_no     INTEGER NOT NULL,
    description TEXT NOT NULL,
    quantity    INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 10000),
    unit_amount INTEGER NOT NULL CHECK (unit_amount >= 0),
    amount      INTEGER NOT NULL CHECK (amount = quantity * unit_amount),
    PRIMARY KEY (invoice_id, line_no)
);

-- The lines of an invoice that is no longer a draft cannot change, whatever writes them.
-- +goose StatementBegin
CREATE TRIGGER invoice_lines_insert_draft_only BEFORE INSERT ON invoice_lines
WHEN (SELECT status FROM invoices WHERE id = NEW.invoice_id) IS NOT 'draft'
BEGIN
    SELECT RAISE(ABORT, 'the lines of an invoice that is not a draft cannot change');
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER invoice_lines_update_draft_only BEFORE UPDATE ON invoice_lines
WHEN (SELECT status FROM invoices WHERE id = OLD.invoice_id) IS NOT 'draft'
  OR (SELECT status FROM invoices WHERE id = NEW.invoice_id) IS NOT 'draft'
BEGIN
    SELECT RAISE(ABORT, 'the lines of an invoice that is not a draft cannot change');
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER invoice_lines_delete_draft_only BEFORE DELETE ON invoice_lines
WHEN (SELECT status FROM invoices WHERE id = OLD.invoice_id) IS NOT 'draft'
BEGIN
    SELECT RAISE(ABORT, 'the lines of an invoice that is not a draft cannot change');
END;
-- +goose StatementEnd

CREATE TABLE payments (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    invoice_id TEXT NOT NULL REFERENCES invoices (id),
    amount     INTEGER NOT NULL CHECK (amount > 0),
    method     TEXT NOT NULL CHECK (method IN ('card', 'cash', 'bank_transfer', 'insurance')),
    at         TEXT NOT NULL,
    actor      TEXT NOT NULL,
    request_id TEXT NOT NULL
);
CREATE INDEX payments_invoice ON payments (invoice_id, seq);

-- An Idempotency-Key, scoped to the caller, with the hash of its request and the response it
-- got, which a repeat of the same request is answered with.
CREATE TABLE idempotency_keys (
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response     TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE TABLE audit_log (
    seq            INTEGER PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    at             TEXT NOT NULL,
    actor          TEXT NOT NULL,
    role           TEXT NOT NULL,
    action         TEXT NOT NULL,
    subject_id     TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    request_id     TEXT NOT NULL,
    client_address TEXT NOT NULL,
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL
);
CREATE INDEX audit_log_subject ON audit_log (subject_id, seq);
CREATE INDEX audit_log_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_at ON audit_log (at);

-- +goose Down
DROP TABLE audit_log;
DROP TABLE idempotency_keys;
DROP TABLE payments;
DROP TRIGGER invoice_lines_delete_draft_only;
DROP TRIGGER invoice_lines_update_draft_only;
DROP TRIGGER invoice_lines_insert_draft_only;
DROP TABLE invoice_lines;
DROP TABLE invoices;
DROP TABLE accounts;
