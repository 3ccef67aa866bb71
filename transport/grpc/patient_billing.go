package grpctransport

import (
	"context"
	"crypto/tls"
	"time"

	"github.com/go-kit/log"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/breaker"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/retry"
	"github.com/prometheus/client_golang/prometheus"
)

// The patient service's policy for calls to billing: each call (every attempt included) has
// billingCallTimeout; an unavailable answer is tried again up to billingAttempts in all; five
// failures in a row open the breaker for billingOpenFor, during which calls fail at once.
const (
	billingCallTimeout = 2 * time.Second
	billingAttempts    = 3
	billingOpenFor     = 5 * time.Second
	// maxInvoicePages bounds InvoicesFor: 20 pages of 500 invoices.
	maxInvoicePages = 20
)

// DialPatientBilling connects to billing's gRPC address (Dial: lazily, billing may start
// later or be down) and returns the patient service's view of it — the small patient.Billing
// interface the patient service declares, over billing's client endpoint set with the policy
// above — and a function closing the connection. The breaker's state is exported on reg as
// pms_patient_billing_breaker_state (0 closed, 1 half-open, 2 open).
func DialPatientBilling(addr string, tlsCfg *tls.Config, logger log.Logger, reg prometheus.Registerer) (patient.Billing, func(context.Context) error, error) {
	conn, err := Dial(addr, tlsCfg)
	if err != nil {
		return nil, nil, err
	}
	state := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "pms", Subsystem: "patient", Name: "billing_breaker_state",
		Help: "State of the circuit breaker in front of billing: 0 closed, 1 half-open, 2 open.",
	})
	reg.MustRegister(state)
	br := breaker.New(breaker.Options{Name: "billing", OpenFor: billingOpenFor, State: state, Logger: logger})
	set := NewBillingClient(conn).Wrap(
		retry.Middleware(retry.Options{Attempts: billingAttempts, Timeout: billingCallTimeout}),
		br.Middleware(),
	)
	return patientBilling{set: set}, func(context.Context) error { return conn.Close() }, nil
}

// patientBilling gives the patient service the Billing interface it declares over billing's
// endpoint set, translating between the two services' types and walking billing's pages.
type patientBilling struct{ set billing.Service }

// CreateAccount implements patient.Billing.
func (b patientBilling) CreateAccount(ctx context.Context, patientID, name, email string) (patient.BillingAccount, error) {
	a, err := b.set.CreateAccount(ctx, billing.CreateAccountRequest{PatientID: patientID, Name: name, Email: email})
	return toPatientAccount(a), err
}

// AccountFor implements patient.Billing. The patient service has checked the user's access
// to the patient (a restricted record's grant) before it asks, so the call says so
// (claimCheckedBy) and billing serves a restricted patient's account to it.
func (b patientBilling) AccountFor(ctx context.Context, patientID string) (patient.BillingAccount, error) {
	ctx = claimCheckedBy(ctx, "patient")
	accounts, err := b.set.ListAccounts(ctx, billing.AccountQuery{PatientID: patientID})
	if err != nil {
		return patient.BillingAccount{}, err
	}
	if len(accounts) == 0 {
		return patient.BillingAccount{}, errs.New(errs.NotFound, "the patient has no billing account")
	}
	return toPatientAccount(accounts[0]), nil
}

// InvoicesFor implements patient.Billing, walking billing's pages (at most maxInvoicePages),
// after the patient service's access check, as AccountFor.
func (b patientBilling) InvoicesFor(ctx context.Context, patientID string) ([]patient.Invoice, error) {
	ctx = claimCheckedBy(ctx, "patient")
	out := []patient.Invoice{}
	q := billing.InvoiceQuery{PatientID: patientID, Limit: billing.MaxLimit}
	for range maxInvoicePages {
		page, err := b.set.ListInvoices(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, inv := range page.Invoices {
			out = append(out, toPatientInvoice(inv))
		}
		if page.NextPageToken == "" {
			break
		}
		q.PageToken = page.NextPageToken
	}
	return out, nil
}

func toPatientAccount(a billing.Account) patient.BillingAccount {
	return patient.BillingAccount{ID: a.ID, PatientID: a.PatientID, Status: a.Status, CreatedAt: a.CreatedAt}
}

func toPatientInvoice(inv billing.Invoice) patient.Invoice {
	out := patient.Invoice{
		ID: inv.ID, PatientID: inv.PatientID, AccountID: inv.AccountID, Currency: inv.Currency, Status: string(inv.Status),
		DueDate: inv.DueDate, Subtotal: inv.Subtotal, AmountPaid: inv.AmountPaid, AmountDue: inv.AmountDue,
		Version: inv.Version, CreatedAt: inv.CreatedAt, UpdatedAt: inv.UpdatedAt,
		Lines: make([]patient.InvoiceLine, len(inv.Lines)), Payments: make([]patient.InvoicePayment, len(inv.Payments)),
	}
	for i, l := range inv.Lines {
		out.Lines[i] = patient.InvoiceLine{Description: l.Description, Quantity: l.Quantity, UnitAmount: l.UnitAmount, Amount: l.Amount}
	}
	for i, p := range inv.Payments {
		out.Payments[i] = patient.InvoicePayment{ID: p.ID, Amount: p.Amount, Method: p.Method, At: p.At}
	}
	return out
}
