package patient

import (
	"context"

	"github.com/pms/pms/pkg/platform/errs"
	"github.com/prometheus/client_golang/prometheus"
)

// Middleware decorates a Service; endpoint middleware (pkg/platform/observe) already logs
// and times every call, so service middleware counts business events.
type Middleware func(Service) Service

// Metrics are the patient service's business counters.
type Metrics struct {
	changes  *prometheus.CounterVec
	reads    *prometheus.CounterVec
	billings *prometheus.CounterVec
	// breakGlass counts emergency accesses (breakglass_endpoints.go).
	breakGlass *prometheus.CounterVec
}

// NewMetrics registers the business counters on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pms", Subsystem: "patient", Name: "changes_total",
			Help: "Patient records created, updated and deleted, by change and result.",
		}, []string{"change", "result"}),
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pms", Subsystem: "patient", Name: "reads_total",
			Help: "Audited reads of patient data (single records, searches, histories), by kind and result.",
		}, []string{"kind", "result"}),
		billings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pms", Subsystem: "patient", Name: "billing_calls_total",
			Help: "Calls to the billing service (CreateAccount after a registration, AccountFor, InvoicesFor), by call and result; a failed CreateAccount is a patient registered without an account for now.",
		}, []string{"call", "result"}),
	}
	m.breakGlass = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "pms", Subsystem: "patient", Name: "break_glass_total",
		Help: "Break-glass requests (emergency access to a restricted patient record), by result; every ok one is reviewed.",
	}, []string{"result"})
	m.breakGlass.WithLabelValues("ok") // exposed at 0, so the alert's increase sees the first one
	reg.MustRegister(m.changes, m.reads, m.billings, m.breakGlass)
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

func (s *instrumented) Create(ctx context.Context, req CreateRequest) (Patient, error) {
	p, err := s.Service.Create(ctx, req)
	s.m.changes.WithLabelValues(ChangeCreated, errs.Label(err)).Inc()
	return p, err
}

func (s *instrumented) Update(ctx context.Context, req UpdateRequest) (Patient, error) {
	p, err := s.Service.Update(ctx, req)
	s.m.changes.WithLabelValues(ChangeUpdated, errs.Label(err)).Inc()
	return p, err
}

// Erase counts erasures as changes "erased".
func (s *instrumented) Erase(ctx context.Context, req EraseRequest) (Erasure, error) {
	e, err := s.Service.Erase(ctx, req)
	s.m.changes.WithLabelValues(ChangeErased, errs.Label(err)).Inc()
	return e, err
}

func (s *instrumented) Delete(ctx context.Context, req DeleteRequest) error {
	err := s.Service.Delete(ctx, req)
	s.m.changes.WithLabelValues(ChangeDeleted, errs.Label(err)).Inc()
	return err
}

func (s *instrumented) Get(ctx context.Context, id string) (Patient, error) {
	p, err := s.Service.Get(ctx, id)
	s.m.reads.WithLabelValues("record", errs.Label(err)).Inc()
	return p, err
}

func (s *instrumented) List(ctx context.Context, q ListQuery) (Page, error) {
	p, err := s.Service.List(ctx, q)
	s.m.reads.WithLabelValues("search", errs.Label(err)).Inc()
	return p, err
}

func (s *instrumented) History(ctx context.Context, id string) ([]Version, error) {
	v, err := s.Service.History(ctx, id)
	s.m.reads.WithLabelValues("history", errs.Label(err)).Inc()
	return v, err
}

func (s *instrumented) BillingAccount(ctx context.Context, id string) (BillingAccount, error) {
	a, err := s.Service.BillingAccount(ctx, id)
	s.m.reads.WithLabelValues("billing_account", errs.Label(err)).Inc()
	return a, err
}

func (s *instrumented) Invoices(ctx context.Context, id string) ([]Invoice, error) {
	v, err := s.Service.Invoices(ctx, id)
	s.m.reads.WithLabelValues("invoices", errs.Label(err)).Inc()
	return v, err
}

// Billing returns b counting its calls by result in pms_patient_billing_calls_total, so that
// a patient registered while billing was down shows up as a metric, not only as a log line.
func (m *Metrics) Billing(b Billing) Billing {
	if b == nil {
		return nil
	}
	return &countedBilling{next: b, m: m}
}

type countedBilling struct {
	next Billing
	m    *Metrics
}

func (c *countedBilling) CreateAccount(ctx context.Context, patientID, name, email string) (BillingAccount, error) {
	a, err := c.next.CreateAccount(ctx, patientID, name, email)
	c.m.billings.WithLabelValues("CreateAccount", errs.Label(err)).Inc()
	return a, err
}

func (c *countedBilling) AccountFor(ctx context.Context, patientID string) (BillingAccount, error) {
	a, err := c.next.AccountFor(ctx, patientID)
	c.m.billings.WithLabelValues("AccountFor", errs.Label(err)).Inc()
	return a, err
}

func (c *countedBilling) InvoicesFor(ctx context.Context, patientID string) ([]Invoice, error) {
	v, err := c.next.InvoicesFor(ctx, patientID)
	c.m.billings.WithLabelValues("InvoicesFor", errs.Label(err)).Inc()
	return v, err
}
