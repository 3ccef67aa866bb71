package patient

import (
	"context"
	"time"

	"github.com/pms/pms/pkg/platform/errs"
)

// Billing is what the patient service needs of the billing service, in its own small types
// (pkg/patient never imports pkg/billing): cmd hands it an adapter over billing's gRPC client.
// Errors are contract errors (*errs.Error): not_found when billing has no such thing,
// unavailable or timeout when billing cannot be reached.
type Billing interface {
	// CreateAccount opens the patient's billing account, or returns the one it has.
	CreateAccount(ctx context.Context, patientID, name, email string) (BillingAccount, error)
	// AccountFor returns the patient's billing account, or not_found.
	AccountFor(ctx context.Context, patientID string) (BillingAccount, error)
	// InvoicesFor returns every invoice of the patient, oldest first.
	InvoicesFor(ctx context.Context, patientID string) ([]Invoice, error)
}

// BillingAccount is a patient's billing account, as billing shows it.
type BillingAccount struct {
	ID        string    `json:"id"`
	PatientID string    `json:"patientId"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"createdAt"`
}

// Invoice is an invoice of the patient, as billing shows it: amounts in minor units of
// Currency (ISO 4217).
type Invoice struct {
	ID         string           `json:"id"`
	PatientID  string           `json:"patientId"`
	AccountID  string           `json:"accountId"`
	Currency   string           `json:"currency"`
	Status     string           `json:"status"`
	DueDate    string           `json:"dueDate"`
	Lines      []InvoiceLine    `json:"lines"`
	Subtotal   int64            `json:"subtotal"`
	AmountPaid int64            `json:"amountPaid"`
	AmountDue  int64            `json:"amountDue"`
	Payments   []InvoicePayment `json:"payments"`
	Version    int64            `json:"version"`
	CreatedAt  time.Time        `json:"createdAt"`
	UpdatedAt  time.Time        `json:"updatedAt"`
}

// InvoiceLine is one line of an invoice.
type InvoiceLine struct {
	Description string `json:"description"`
	Quantity    int64  `json:"quantity"`
	UnitAmount  int64  `json:"unitAmount"`
	Amount      int64  `json:"amount"`
}

// InvoicePayment is a payment received against an invoice.
type InvoicePayment struct {
	ID     string    `json:"id"`
	Amount int64     `json:"amount"`
	Method string    `json:"method"`
	At     time.Time `json:"at"`
}

// ErrBillingUnavailable answers billing reads when no billing client is configured.
var ErrBillingUnavailable = errs.New(errs.Unavailable, "billing is not available")

// DefaultBillingTimeout bounds opening the account of a patient registered (billing_open.go).
const DefaultBillingTimeout = 5 * time.Second

func (s *service) BillingAccount(ctx context.Context, id string) (BillingAccount, error) {
	ctx = withEmergencyMark(ctx) // a use under a break-glass grant marks it (checkAccess)
	pid, err := ParseID(id)
	var a BillingAccount
	if err == nil {
		err = s.billingRead(ctx, pid, func(b Billing) (err error) {
			a, err = b.AccountFor(ctx, pid)
			return err
		})
	}
	return readResult(s, ctx, ActionBillingAccount, pid, a, err)
}

func (s *service) Invoices(ctx context.Context, id string) ([]Invoice, error) {
	ctx = withEmergencyMark(ctx) // a use under a break-glass grant marks it (checkAccess)
	pid, err := ParseID(id)
	var out []Invoice
	if err == nil {
		err = s.billingRead(ctx, pid, func(b Billing) (err error) {
			out, err = b.InvoicesFor(ctx, pid)
			return err
		})
	}
	if err == nil && out == nil {
		out = []Invoice{}
	}
	return readResult(s, ctx, ActionInvoices, pid, out, err)
}

// billingRead checks that patient pid is live here (unknown is 404, deleted 410, whatever
// billing holds) and then reads from billing, whose errors pass through with their kind.
func (s *service) billingRead(ctx context.Context, pid string, read func(Billing) error) error {
	p, err := s.store.get(ctx, pid)
	if err == nil {
		err = s.checkAccess(ctx, p) // break-glass
	}
	if err != nil {
		return err
	}
	if s.billing == nil {
		return ErrBillingUnavailable
	}
	s.accounts.wait(ctx, pid) // the account a registration just asked for (billing_open.go)
	if err := read(s.billing); err != nil {
		return errs.As(err) // a non-contract error from an adapter is internal, never passed on raw
	}
	return nil
}
