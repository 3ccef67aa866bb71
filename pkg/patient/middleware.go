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
	changes *prometheus.CounterVec
	reads   *prometheus.CounterVec
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

func result(err error) string {
	if err == nil {
		return "ok"
	}
	return string(errs.KindOf(err))
}

func (s *instrumented) Create(ctx context.Context, req CreateRequest) (Patient, error) {
	p, err := s.Service.Create(ctx, req)
	s.m.changes.WithLabelValues(ChangeCreated, result(err)).Inc()
	return p, err
}

func (s *instrumented) Update(ctx context.Context, req UpdateRequest) (Patient, error) {
	p, err := s.Service.Update(ctx, req)
	s.m.changes.WithLabelValues(ChangeUpdated, result(err)).Inc()
	return p, err
}

func (s *instrumented) Delete(ctx context.Context, req DeleteRequest) error {
	err := s.Service.Delete(ctx, req)
	s.m.changes.WithLabelValues(ChangeDeleted, result(err)).Inc()
	return err
}

func (s *instrumented) Get(ctx context.Context, id string) (Patient, error) {
	p, err := s.Service.Get(ctx, id)
	s.m.reads.WithLabelValues("record", result(err)).Inc()
	return p, err
}

func (s *instrumented) List(ctx context.Context, q ListQuery) (Page, error) {
	p, err := s.Service.List(ctx, q)
	s.m.reads.WithLabelValues("search", result(err)).Inc()
	return p, err
}

func (s *instrumented) History(ctx context.Context, id string) ([]Version, error) {
	v, err := s.Service.History(ctx, id)
	s.m.reads.WithLabelValues("history", result(err)).Inc()
	return v, err
}
