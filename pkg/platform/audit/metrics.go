package audit

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the writer's Prometheus series, pms_<service>_audit_*: how big batches are
// (the payoff of group commit), how long they take, what was written and what failed.
type metrics struct {
	batchSize prometheus.Histogram
	duration  prometheus.Histogram
	written   prometheus.Counter
	failures  prometheus.Counter
}

// newMetrics makes the writer's series and registers them on reg when it is not nil. A series
// already registered (a second writer on the same registry) is shared rather than a panic.
func newMetrics(reg prometheus.Registerer, service string) *metrics {
	m := &metrics{
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "pms", Subsystem: service, Name: "audit_batch_size",
			Help:    "Entries committed per audit transaction (group commit).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12), // 1 .. 2048
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "pms", Subsystem: service, Name: "audit_batch_duration_seconds",
			Help:    "Time to write and commit one audit batch, failed ones included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "pms", Subsystem: service, Name: "audit_entries_written_total",
			Help: "Audit entries committed.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "pms", Subsystem: service, Name: "audit_batch_failures_total",
			Help: "Audit batches rolled back; their requests were answered with an error.",
		}),
	}
	if reg != nil {
		m.batchSize = register(reg, m.batchSize)
		m.duration = register(reg, m.duration)
		m.written = register(reg, m.written)
		m.failures = register(reg, m.failures)
	}
	return m
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}
