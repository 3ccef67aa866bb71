// Package breaker is a circuit breaker for calls to another service, as a go-kit endpoint
// middleware over sony/gobreaker (DESIGN.md: ten lines of ours rather than kit/circuitbreaker,
// which drags in hystrix). After a run of failures it opens and fails calls at once with
// unavailable, so a dead upstream costs callers nothing but a log line; after a while it lets
// a trial call through, and one success closes it again.
package breaker

import (
	"context"
	"errors"
	"time"

	"github.com/go-kit/kit/endpoint"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/sony/gobreaker/v2"
)

// Options configure a Breaker. The zero value works.
type Options struct {
	// Name names the upstream in messages and state changes ("billing").
	Name string
	// Failures is how many consecutive failures open the breaker; default 5.
	Failures uint32
	// OpenFor is how long it stays open before a trial call may pass; default 10s.
	OpenFor time.Duration
	// IsFailure says which errors count against the upstream; default: unavailable and
	// timeout. An answer such as not_found or invalid_argument is the upstream working.
	IsFailure func(error) bool
	// OnStateChange, when set, learns every change ("closed", "open", "half-open"), for logs
	// and metrics.
	OnStateChange func(name, from, to string)
}

// Breaker is one circuit breaker; share it between every endpoint of one upstream, since
// they fail together.
type Breaker struct {
	cb   *gobreaker.CircuitBreaker[any]
	name string
}

// New returns a closed breaker.
func New(o Options) *Breaker {
	if o.Failures == 0 {
		o.Failures = 5
	}
	if o.OpenFor <= 0 {
		o.OpenFor = 10 * time.Second
	}
	if o.IsFailure == nil {
		o.IsFailure = Transient
	}
	st := gobreaker.Settings{
		Name:         o.Name,
		Timeout:      o.OpenFor,
		ReadyToTrip:  func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= o.Failures },
		IsSuccessful: func(err error) bool { return err == nil || !o.IsFailure(err) },
	}
	if o.OnStateChange != nil {
		st.OnStateChange = func(name string, from, to gobreaker.State) { o.OnStateChange(name, from.String(), to.String()) }
	}
	return &Breaker{cb: gobreaker.NewCircuitBreaker[any](st), name: o.Name}
}

// Transient reports whether err says the upstream is down or too slow, rather than that it
// answered no.
func Transient(err error) bool {
	k := errs.KindOf(err)
	return k == errs.Unavailable || k == errs.Timeout
}

// Middleware runs each call through the breaker; while it is open a call fails at once with
// unavailable (whose cause is gobreaker.ErrOpenState).
func (b *Breaker) Middleware() endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, req any) (any, error) {
			resp, err := b.cb.Execute(func() (any, error) { return next(ctx, req) })
			if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
				return nil, errs.Wrap(errs.Unavailable, "the "+b.name+" service is unavailable", err)
			}
			return resp, err
		}
	}
}

// State returns "closed", "open" or "half-open".
func (b *Breaker) State() string { return b.cb.State().String() }

// IsOpen reports whether err is a call refused by an open breaker.
func IsOpen(err error) bool {
	return errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests)
}
