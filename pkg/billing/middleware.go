package billing

import (
	"context"

	"github.com/pms/pms/pkg/platform/errs"
	"github.com/prometheus/client_golang/prometheus"
)

// Middleware decorates a Service; endpoint middleware (pkg/platform/observe) already logs
// and times every call, so service middleware counts business events.
type Middleware func(Service) Service

// Metrics are the billing service's business counters. Labels are operation names and
// result kinds, never ids or amounts.
type Metrics struct {
	changes *prometheus.CounterVec
	reads   *prometheus.CounterVec
}

// NewMetrics registers the business counters on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pms", Subsystem: "billing", Name: "changes_total",
			Help: "Accounts created and invoices created, issued, paid and voided, by action and result.",
		}, []string{"action", "result"}),
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pms", Subsystem: "billing", Name: "reads_total",
			Help: "Audited reads of billing data, by kind and result.",
		}, []string{"kind", "result"}),
	}
	reg.MustRegister(m.changes, m.reads)
	return m
}

// Instrumenting returns middleware that counts changes and reads by their result kind.
func (m *Metrics) Instrumenting() Middleware {
	return func(next Service) Service { return &instrumented{Service: next, m: m} }
}

type instrumented struct {
	Service
	m *Metrics
}

func (s *instrumented) change(action string, err error) {
	s.m.changes.WithLabelValues(action, errs.Label(err)).Inc()
}
func (s *instrumented) read(kind string, err error) {
	s.m.reads.WithLabelValues(kind, errs.Label(err)).Inc()
}

func (s *instrumented) CreateAccount(ctx context.Context, req CreateAccountRequest) (Account, error) {
	a, err := s.Service.CreateAccount(ctx, req)
	s.change(ActionCreateAccount, err)
	return a, err
}

func (s *instrumented) GetAccount(ctx context.Context, id string) (Account, error) {
	a, err := s.Service.GetAccount(ctx, id)
	s.read("account", err)
	return a, err
}

func (s *instrumented) ListAccounts(ctx context.Context, q AccountQuery) ([]Account, error) {
	a, err := s.Service.ListAccounts(ctx, q)
	s.read("accounts", err)
	return a, err
}

func (s *instrumented) CreateInvoice(ctx context.Context, req CreateInvoiceRequest) (Invoice, error) {
	inv, err := s.Service.CreateInvoice(ctx, req)
	s.change(ActionCreateInvoice, err)
	return inv, err
}

func (s *instrumented) GetInvoice(ctx context.Context, id string) (Invoice, error) {
	inv, err := s.Service.GetInvoice(ctx, id)
	s.read("invoice", err)
	return inv, err
}

func (s *instrumented) ListInvoices(ctx context.Context, q InvoiceQuery) (InvoicePage, error) {
	p, err := s.Service.ListInvoices(ctx, q)
	s.read("invoices", err)
	return p, err
}

func (s *instrumented) IssueInvoice(ctx context.Context, id string) (Invoice, error) {
	inv, err := s.Service.IssueInvoice(ctx, id)
	s.change(ActionIssueInvoice, err)
	return inv, err
}

func (s *instrumented) RecordPayment(ctx context.Context, req PaymentRequest) (Invoice, error) {
	inv, err := s.Service.RecordPayment(ctx, req)
	s.change(ActionRecordPayment, err)
	return inv, err
}

func (s *instrumented) VoidInvoice(ctx context.Context, id string) (Invoice, error) {
	inv, err := s.Service.VoidInvoice(ctx, id)
	s.change(ActionVoidInvoice, err)
	return inv, err
}
