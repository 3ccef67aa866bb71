-- +goose Up
-- One account per patient: the unique patient_id is what makes CreateBillingAccount idempotent.
CREATE TABLE accounts (
    id         UUID PRIMARY KEY,
    patient_id UUID NOT NULL UNIQUE,
    status     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- Amounts are integer minor units of the invoice's currency.
CREATE TABLE invoices (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id          UUID PRIMARY KEY,
    patient_id  UUID NOT NULL,
    account_id  UUID NOT NULL REFERENCES accounts (id),
    currency    TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    status      TEXT NOT NULL CHECK (status IN ('draft', 'open', 'paid', 'void')),
    due_date    TEXT NOT NULL CHECK (due_date ~ '^\d{4}-\d{2}-\d{2}$'),
    subtotal    BIGINT NOT NULL CHECK (subtotal >= 0),
    amount_paid BIGINT NOT NULL CHECK (amount_paid >= 0 AND amount_paid <= subtotal),
    version     BIGINT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX invoices_patient ON invoices (patient_id, seq);
CREATE INDEX invoices_status ON invoices (status, seq);

CREATE TABLE invoice_lines (
    invoice_id  UUID NOT NULL REFERENCES invoices (id),
    line_no     INTEGER NOT NULL,
    description TEXT NOT NULL,
    quantity    BIGINT NOT NULL CHECK (quantity BETWEEN 1 AND 10000),
    unit_amount BIGINT NOT NULL CHECK (unit_amount >= 0),
    amount      BIGINT NOT NULL CHECK (amount = quantity * unit_amount),
    PRIMARY KEY (invoice_id, line_no)
);

-- The lines of an invoice that is no longer a draft cannot change, whatever writes them.
-- +goose StatementBegin
CREATE FUNCTION invoice_lines_draft_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT status FROM invoices WHERE id = COALESCE(NEW.invoice_id, OLD.invoice_id)) IS DISTINCT FROM 'draft' THEN
        RAISE EXCEPTION 'the lines of an invoice that is not a draft cannot change' USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER invoice_lines_draft_only BEFORE INSERT OR UPDATE OR DELETE ON invoice_lines
    FOR EACH ROW EXECUTE FUNCTION invoice_lines_draft_only();

CREATE TABLE payments (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id         UUID PRIMARY KEY,
    invoice_id UUID NOT NULL REFERENCES invoices (id),
    amount     BIGINT NOT NULL CHECK (amount > 0),
    method     TEXT NOT NULL CHECK (method IN ('card', 'cash', 'bank_transfer', 'insurance')),
    at         TIMESTAMPTZ NOT NULL,
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
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE TABLE audit_log (
    seq            BIGINT PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    at             TIMESTAMPTZ NOT NULL,
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
DROP TABLE invoice_lines;
DROP FUNCTION invoice_lines_draft_only();
DROP TABLE invoices;
DROP TABLE accounts;
