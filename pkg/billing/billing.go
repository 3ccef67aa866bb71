// Package billing is the billing domain: one account per patient, invoices in integer minor
// units of an ISO 4217 currency with a draft → open → paid (or void) life, payments, the
// sqlx store, the go-kit endpoint set and service middleware. It knows nothing of HTTP, gRPC
// or Kafka, and nothing of the patient service: a patient is only an id here.
package billing

import (
	"time"

	"github.com/pms/pms/pkg/platform/errs"
)

// Account is a patient's billing account; there is exactly one per patient.
type Account struct {
	ID        string    `json:"id"`
	PatientID string    `json:"patientId"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"createdAt"`
}

// AccountActive is the status of every account today; closing accounts is not a feature yet.
const AccountActive = "active"

// CreateAccountRequest opens the billing account of a patient. Name and Email are what the
// earlier implementation's BillingRequest carried; they are accepted for compatibility and
// not stored, because billing keeps no patient contact data (the patient service owns it).
// EventID is set by billing's consumer of the patient topic: the PatientEvent being applied,
// recorded as processed in the transaction that opens the account, so a redelivered event
// changes nothing. No transport carries it from outside.
type CreateAccountRequest struct {
	PatientID string
	Name      string
	Email     string
	EventID   string
}

// AccountQuery finds accounts; PatientID is required (an account is found through its
// patient, and there is one per patient).
type AccountQuery struct {
	PatientID string
}

// Status is the state of an invoice.
type Status string

// The invoice states: draft → open → paid, and draft|open → void.
const (
	StatusDraft Status = "draft"
	StatusOpen  Status = "open"
	StatusPaid  Status = "paid"
	StatusVoid  Status = "void"
)

// Statuses lists every state, for validation and for tests that walk them all.
var Statuses = []Status{StatusDraft, StatusOpen, StatusPaid, StatusVoid}

// Line is one line of an invoice; Amount is Quantity × UnitAmount in minor units.
type Line struct {
	Description string `json:"description"`
	Quantity    int64  `json:"quantity"`
	UnitAmount  int64  `json:"unitAmount"`
	Amount      int64  `json:"amount"`
}

// Payment is money received against an invoice, in the invoice's currency.
type Payment struct {
	ID     string    `json:"id"`
	Amount int64     `json:"amount"`
	Method string    `json:"method"`
	At     time.Time `json:"at"`
}

// Invoice is an invoice as the contract shows it. Amounts are minor units of Currency;
// AmountDue is Subtotal − AmountPaid, and 0 once the invoice is void.
type Invoice struct {
	ID         string    `json:"id"`
	PatientID  string    `json:"patientId"`
	AccountID  string    `json:"accountId"`
	Currency   string    `json:"currency"`
	Status     Status    `json:"status"`
	DueDate    string    `json:"dueDate"`
	Lines      []Line    `json:"lines"`
	Subtotal   int64     `json:"subtotal"`
	AmountPaid int64     `json:"amountPaid"`
	AmountDue  int64     `json:"amountDue"`
	Payments   []Payment `json:"payments"`
	Version    int64     `json:"version"`
	CreatedAt  time.Time `json:"createdAt"`
	UpdatedAt  time.Time `json:"updatedAt"`
}

// LineInput is a line as a caller writes it. Currency is optional; when given it must be the
// invoice's currency, so a line priced in another currency is refused rather than mixed in.
type LineInput struct {
	Description string `json:"description"`
	Quantity    int64  `json:"quantity"`
	UnitAmount  int64  `json:"unitAmount"`
	Currency    string `json:"currency,omitempty"`
}

// CreateInvoiceRequest drafts an invoice for the patient's account. An IdempotencyKey makes a
// retried create return the first response instead of a second invoice.
type CreateInvoiceRequest struct {
	PatientID      string      `json:"patientId"`
	Currency       string      `json:"currency"`
	DueDate        string      `json:"dueDate"`
	Lines          []LineInput `json:"lines"`
	IdempotencyKey string      `json:"-"`
}

// PaymentRequest records a payment against invoice InvoiceID. Currency is optional; when
// given it must be the invoice's. IdempotencyKey as in CreateInvoiceRequest.
type PaymentRequest struct {
	InvoiceID      string `json:"-"`
	Amount         int64  `json:"amount"`
	Method         string `json:"method"`
	Currency       string `json:"currency,omitempty"`
	IdempotencyKey string `json:"-"`
}

// The payment methods accepted.
const (
	MethodCard         = "card"
	MethodCash         = "cash"
	MethodBankTransfer = "bank_transfer"
	MethodInsurance    = "insurance"
)

// PaymentMethods lists the accepted payment methods.
var PaymentMethods = []string{MethodCard, MethodCash, MethodBankTransfer, MethodInsurance}

// InvoiceQuery filters and pages invoices. Zero fields do not filter; Limit 0 means
// DefaultLimit. PageToken is the opaque token of the previous page.
type InvoiceQuery struct {
	PatientID string
	Status    string
	Limit     int
	PageToken string
}

// InvoicePage is one page of invoices, oldest first, and the token of the next page ("" on
// the last).
type InvoicePage struct {
	Invoices      []Invoice
	NextPageToken string
}

// Limits from the contract and this service's decisions (docs/billing.md).
const (
	DefaultLimit      = 50
	MaxLimit          = 500
	MaxLines          = 100
	MaxQuantity       = 10_000
	MaxUnitAmount     = 1_000_000_000_000
	MaxDescriptionLen = 200
	MaxIdempotencyKey = 200
)

// The actions the audit log records.
const (
	ActionCreateAccount  = "create_account"
	ActionReadAccount    = "read_account"
	ActionSearchAccounts = "search_accounts"
	ActionCreateInvoice  = "create_invoice"
	ActionReadInvoice    = "read_invoice"
	ActionSearchInvoices = "search_invoices"
	ActionIssueInvoice   = "issue_invoice"
	ActionRecordPayment  = "record_payment"
	ActionVoidInvoice    = "void_invoice"
	// ActionAuditRead: a read of the audit log, audited too (issue 17).
	ActionAuditRead = "audit_read"
)

// Domain errors. Transports map their kinds to statuses; errors.Is matches by kind, so these
// hold on the client side of any transport too.
var (
	ErrAccountNotFound     = errs.New(errs.NotFound, "billing account not found")
	ErrNoAccount           = errs.New(errs.NotFound, "the patient has no billing account")
	ErrInvoiceNotFound     = errs.New(errs.NotFound, "invoice not found")
	ErrIdempotencyConflict = errs.New(errs.Conflict, "the Idempotency-Key was used with a different request")
)
