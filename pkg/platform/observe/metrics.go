package observe

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/prometheus/client_golang/prometheus"
)

// RequestMetrics is the per-service request histogram
// pms_<service>_request_duration_seconds{method,transport,code}; code is the contract's error
// word, or "ok". Labels never carry ids, query strings or patient data.
type RequestMetrics struct {
	duration *prometheus.HistogramVec
}

// NewRequestMetrics registers the histogram for service on reg.
func NewRequestMetrics(reg prometheus.Registerer, service string) *RequestMetrics {
	m := &RequestMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "pms",
			Subsystem: service,
			Name:      "request_duration_seconds",
			Help:      "Time spent serving a request, by endpoint method, transport and result code.",
			Buckets:   []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"method", "transport", "code"}),
	}
	reg.MustRegister(m.duration)
	return m
}

// Middleware records the duration and outcome of every call of the endpoint named method.
func (m *RequestMetrics) Middleware(method string) endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, req any) (resp any, err error) {
			start := time.Now()
			defer func() {
				m.duration.WithLabelValues(method, Transport(ctx), errs.Label(err)).Observe(time.Since(start).Seconds())
			}()
			return next(ctx, req)
		}
	}
}

// LoggingMiddleware logs one line per call of the endpoint named method: ids, transport,
// duration and the error kind. It never logs requests or responses, which hold patient data.
func LoggingMiddleware(logger log.Logger, method string) endpoint.Middleware {
	// quiet is set once logger has dropped one of these debug lines (ErrFiltered): the level
	// is fixed for the life of the process, so the next ones are not built at all — building
	// one cost about 3 µs a call even when the filter then threw it away.
	var quiet atomic.Bool
	debug := func(kv []any) {
		if level.Debug(logger).Log(kv...) == ErrFiltered {
			quiet.Store(true)
		}
	}
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, req any) (resp any, err error) {
			start := time.Now()
			defer func() {
				var (
					e                   *errs.Error
					callerGone, serious bool
				)
				if err != nil {
					e = errs.As(err)
					// The caller went away (closed connection, own deadline): not a fault of
					// ours, and a load test ending would otherwise flood the error log.
					callerGone = ctx.Err() != nil || e.Kind == errs.Canceled
					serious = !callerGone && (e.Kind == errs.Internal || e.Kind == errs.Unavailable)
				}
				if !serious && quiet.Load() {
					return
				}
				kv := []any{"method", method, "transport", Transport(ctx), "request_id", RequestID(ctx),
					"took", time.Since(start)}
				if e != nil {
					kv = append(kv, "error", string(e.Kind))
					if callerGone {
						debug(append(kv, "cause", "caller gone"))
						return
					}
					if serious {
						kv = append(kv, "cause", causeOf(e))
						_ = level.Error(logger).Log(kv...)
						return
					}
				}
				debug(kv)
			}()
			return next(ctx, req)
		}
	}
}

// causeOf returns the log-safe text of an internal error's cause. Causes come from drivers and
// our own code, never from echoing request bodies.
func causeOf(e *errs.Error) string {
	if e.Err != nil {
		return e.Err.Error()
	}
	return e.Message
}
