// Package admit is admission control for the calls a process makes to one upstream: at most
// Limit of them in flight; a call beyond that waits in line for at most MaxWait and is then
// shed with unavailable and a Retry-After, never sent. Overload is answered at once with a
// refusal the client may retry, rather than queued until the calls time out: timeouts are
// upstream failures to a circuit breaker, and a breaker opened by load refuses everyone for
// its whole open period (issue 20 item 5). A shed call never reaches the upstream, so no
// breaker or retry behind the limiter sees it.
package admit

import (
	"context"
	"time"

	"github.com/go-kit/kit/endpoint"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Options.
const (
	DefaultLimit   = 128
	DefaultMaxWait = 500 * time.Millisecond
	// RetryAfter is what a shed call tells its client to wait.
	RetryAfter = time.Second
)

// Options configure a Limiter.
type Options struct {
	// Name names the upstream in errors and metric labels ("patient").
	Name string
	// Limit is how many calls may be in flight at once; 0 means DefaultLimit, a negative
	// value turns admission control off.
	Limit int
	// MaxWait is the longest a call waits in line for a place; 0 means DefaultMaxWait. A call
	// whose own deadline comes sooner waits only until then.
	MaxWait time.Duration
	// Metrics, when set, are updated (NewMetrics).
	Metrics *Metrics
}

// Limiter admits calls to one upstream; share it between every endpoint of the upstream.
type Limiter struct {
	name    string
	slots   chan struct{}
	maxWait time.Duration
	m       *Metrics
}

// New returns a Limiter, or nil when o turns admission control off (Middleware of a nil
// Limiter passes every call through).
func New(o Options) *Limiter {
	if o.Limit < 0 {
		return nil
	}
	if o.Limit == 0 {
		o.Limit = DefaultLimit
	}
	if o.MaxWait <= 0 {
		o.MaxWait = DefaultMaxWait
	}
	return &Limiter{name: o.Name, slots: make(chan struct{}, o.Limit), maxWait: o.MaxWait, m: o.Metrics}
}

// Middleware admits each call before it goes on: at once while fewer than Limit are in
// flight, else after waiting in line, or not at all (unavailable with Retry-After) when no
// place frees up within MaxWait or before the call's deadline. A caller that gives up while
// waiting gets its own context's error.
func (l *Limiter) Middleware() endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		if l == nil {
			return next
		}
		return func(ctx context.Context, req any) (any, error) {
			if err := l.acquire(ctx); err != nil {
				return nil, err
			}
			defer l.release()
			return next(ctx, req)
		}
	}
}

// acquire takes a place, waiting in line when none is free.
func (l *Limiter) acquire(ctx context.Context) error {
	select {
	case l.slots <- struct{}{}:
		l.m.admitted(l.name, 1)
		return nil
	default:
	}
	wait := l.maxWait
	if d, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(d))
	}
	if wait <= 0 {
		return l.shed()
	}
	l.m.waiting(l.name, 1)
	defer l.m.waiting(l.name, -1)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case l.slots <- struct{}{}:
		l.m.admitted(l.name, 1)
		return nil
	case <-t.C:
		return l.shed()
	case <-ctx.Done():
		return errs.FromContext(ctx.Err(), "")
	}
}

func (l *Limiter) release() {
	<-l.slots
	l.m.admitted(l.name, -1)
}

// shed is the refusal of a call that found no place in time.
func (l *Limiter) shed() error {
	l.m.shedInc(l.name)
	e := errs.New(errs.Unavailable, "the "+l.name+" service is busy: try again shortly")
	e.RetryAfter = RetryAfter
	return e
}

// Metrics are the limiters' gauges and counter, by upstream.
type Metrics struct {
	inFlight, queued *prometheus.GaugeVec
	shed             *prometheus.CounterVec
}

// NewMetrics registers the limiters' metrics as pms_<service>_admission_* on reg.
func NewMetrics(reg prometheus.Registerer, service string) *Metrics {
	m := &Metrics{
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pms_" + service + "_admission_in_flight",
			Help: "Calls to the upstream admitted and not finished."}, []string{"upstream"}),
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pms_" + service + "_admission_waiting",
			Help: "Calls to the upstream waiting in line for a place."}, []string{"upstream"}),
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pms_" + service + "_admission_shed_total",
			Help: "Calls to the upstream refused (503, Retry-After) because no place freed up in time."}, []string{"upstream"}),
	}
	if reg != nil {
		reg.MustRegister(m.inFlight, m.queued, m.shed)
	}
	return m
}

// InFlight is the upstream's series of calls admitted and not finished (for tests and
// dashboards that read one series).
func (m *Metrics) InFlight(upstream string) prometheus.Collector {
	return m.inFlight.WithLabelValues(upstream)
}

// Waiting is the upstream's series of calls waiting in line.
func (m *Metrics) Waiting(upstream string) prometheus.Collector {
	return m.queued.WithLabelValues(upstream)
}

// Shed is the upstream's series of calls shed.
func (m *Metrics) Shed(upstream string) prometheus.Collector { return m.shed.WithLabelValues(upstream) }

func (m *Metrics) admitted(upstream string, d float64) {
	if m != nil {
		m.inFlight.WithLabelValues(upstream).Add(d)
	}
}

func (m *Metrics) waiting(upstream string, d float64) {
	if m != nil {
		m.queued.WithLabelValues(upstream).Add(d)
	}
}

func (m *Metrics) shedInc(upstream string) {
	if m != nil {
		m.shed.WithLabelValues(upstream).Inc()
	}
}
