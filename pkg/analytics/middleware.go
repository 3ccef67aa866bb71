package analytics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics exports the figures to Prometheus, read from the database at scrape time (so they
// are the figures /summary shows, rebuilds included), plus the end-to-end latency of the
// fold. Labels are topics, kinds and currencies, never ids.
type Metrics struct {
	latency *prometheus.HistogramVec
	source  func(ctx context.Context) (Summary, error)

	patients, live, invoices, invoiced, paid, access, events, last, lag, up *prometheus.Desc
}

// NewMetrics registers the analytics metrics on reg; source reads the figures (the service's
// GetSummary without a range).
func NewMetrics(reg prometheus.Registerer, source func(ctx context.Context) (Summary, error)) *Metrics {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("pms_analytics_"+name, help, labels, nil)
	}
	m := &Metrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "pms", Subsystem: "analytics", Name: "fold_latency_seconds",
			Help:    "End-to-end latency from an event's occurred_at to its fold being committed, by topic.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"topic"}),
		source:   source,
		patients: d("patients_total", "Patient events folded, by change (registered, updated, deleted).", "change"),
		live:     d("patients_live", "Patients registered and not deleted."),
		invoices: d("invoices_total", "Invoice events folded, by event (issued, paid, voided).", "event"),
		invoiced: d("amount_invoiced", "Subtotals of issued invoices minus those voided, in minor units, by currency.", "currency"),
		paid:     d("amount_paid_total", "Payments recorded, in minor units, by currency.", "currency"),
		access:   d("access_total", "Audit entries folded, by kind (reads, changes, denied).", "kind"),
		events:   d("events_total", "Distinct events folded, by topic.", "topic"),
		last:     d("last_event_timestamp_seconds", "occurred_at of the latest event folded (Unix seconds)."),
		lag:      d("lag", "Consumer lag summed over every partition of the folded topics (messages)."),
		up:       d("figures_up", "1 when the figures could be read from the database at this scrape."),
	}
	reg.MustRegister(m.latency, m)
	return m
}

// Folded observes the latency of a newly folded event (Options.Folded).
func (m *Metrics) Folded(ev Event, at time.Time) {
	if ev.OccurredAt.IsZero() {
		return
	}
	m.latency.WithLabelValues(ev.Topic).Observe(max(at.Sub(ev.OccurredAt).Seconds(), 0))
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.patients, m.live, m.invoices, m.invoiced, m.paid, m.access, m.events, m.last, m.lag, m.up} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one read of the figures per scrape.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := m.source(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(m.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(m.up, prometheus.GaugeValue, 1)
	c := func(d *prometheus.Desc, t prometheus.ValueType, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, t, float64(v), labels...)
	}
	c(m.patients, prometheus.CounterValue, s.Patients.Registered, "registered")
	c(m.patients, prometheus.CounterValue, s.Patients.Updated, "updated")
	c(m.patients, prometheus.CounterValue, s.Patients.Deleted, "deleted")
	c(m.live, prometheus.GaugeValue, s.Patients.Live)
	c(m.invoices, prometheus.CounterValue, s.Invoices.Issued, "issued")
	c(m.invoices, prometheus.CounterValue, s.Invoices.Paid, "paid")
	c(m.invoices, prometheus.CounterValue, s.Invoices.Voided, "voided")
	for _, a := range s.Amounts {
		c(m.invoiced, prometheus.GaugeValue, a.Invoiced, a.Currency)
		c(m.paid, prometheus.CounterValue, a.Paid, a.Currency)
	}
	c(m.access, prometheus.CounterValue, s.Access.Reads, "reads")
	c(m.access, prometheus.CounterValue, s.Access.Changes, "changes")
	c(m.access, prometheus.CounterValue, s.Access.Denied, "denied")
	c(m.events, prometheus.CounterValue, s.Events.Patient, TopicPatient)
	c(m.events, prometheus.CounterValue, s.Events.Billing, TopicBilling)
	c(m.events, prometheus.CounterValue, s.Events.Audit, TopicAudit)
	if s.LastEventAt != nil {
		ch <- prometheus.MustNewConstMetric(m.last, prometheus.GaugeValue, float64(s.LastEventAt.UnixNano())/1e9)
	}
	c(m.lag, prometheus.GaugeValue, s.Lag)
}
