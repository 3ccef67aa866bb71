package main

import (
	"context"
	"net"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/breaker"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/retry"
	grpctransport "github.com/pms/pms/transport/grpc"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
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

// dialBilling connects to billing's gRPC address (lazily: billing may start later or be
// down) and returns the patient service's view of it, with the policy above, and a function
// closing the connection. The breaker's state is exported on reg as
// pms_patient_billing_breaker_state (0 closed, 1 half-open, 2 open).
func dialBilling(addr string, logger log.Logger, reg prometheus.Registerer) (patient.Billing, func(context.Context) error, error) {
	conn, err := grpc.NewClient(dialTarget(addr), append(grpctransport.ClientDialOptions(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// Find billing again within seconds of its return, not grpc-go's two minutes.
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{
			BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second,
		}, MinConnectTimeout: billingCallTimeout}))...)
	if err != nil {
		return nil, nil, err
	}
	state := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "pms", Subsystem: "patient", Name: "billing_breaker_state",
		Help: "State of the circuit breaker in front of billing: 0 closed, 1 half-open, 2 open.",
	})
	reg.MustRegister(state)
	br := breaker.New(breaker.Options{Name: "billing", OpenFor: billingOpenFor, OnStateChange: func(_, from, to string) {
		state.Set(map[string]float64{"closed": 0, "half-open": 1, "open": 2}[to])
		_ = level.Warn(logger).Log("msg", "billing circuit breaker changed state", "from", from, "to", to)
	}})
	set := grpctransport.NewBillingClient(conn).Wrap(
		retry.Middleware(retry.Options{Attempts: billingAttempts, Timeout: billingCallTimeout}),
		br.Middleware(),
	)
	return billingAdapter{set: set}, func(context.Context) error { return conn.Close() }, nil
}

// dialTarget turns a listen address into one to dial: a missing or unspecified host
// (":9001", "[::]:9001", what a listener reports) means this machine.
func dialTarget(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

// billingAdapter gives the patient service the small Billing interface it declares, over
// billing's client endpoint set, translating between the two services' types.
type billingAdapter struct{ set billing.Service }

// CreateAccount implements patient.Billing.
func (b billingAdapter) CreateAccount(ctx context.Context, patientID, name, email string) (patient.BillingAccount, error) {
	a, err := b.set.CreateAccount(ctx, billing.CreateAccountRequest{PatientID: patientID, Name: name, Email: email})
	return toPatientAccount(a), err
}

// AccountFor implements patient.Billing.
func (b billingAdapter) AccountFor(ctx context.Context, patientID string) (patient.BillingAccount, error) {
	accounts, err := b.set.ListAccounts(ctx, billing.AccountQuery{PatientID: patientID})
	if err != nil {
		return patient.BillingAccount{}, err
	}
	if len(accounts) == 0 {
		return patient.BillingAccount{}, errs.New(errs.NotFound, "the patient has no billing account")
	}
	return toPatientAccount(accounts[0]), nil
}

// InvoicesFor implements patient.Billing, walking billing's pages (at most maxInvoicePages).
func (b billingAdapter) InvoicesFor(ctx context.Context, patientID string) ([]patient.Invoice, error) {
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
