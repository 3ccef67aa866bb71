// Package breaker is a circuit breaker for calls to another service, as a go-kit endpoint
// middleware over sony/gobreaker (DESIGN.md: ten lines of ours rather than kit/circuitbreaker,
// which drags in hystrix). After a run of failures it opens and fails calls at once with
// unavailable, so a dead upstream costs callers nothing but a log line; after a while it lets
// a trial call through, and one success closes it again.
//
// A caller that goes away is never the upstream failing: a call whose context was cancelled
// is neither a failure nor a success (gobreaker's exclusion), so clients hanging up cannot
// open the breaker (issue 13). While the trial call of the half-open state is in flight, other
// calls wait for its outcome (within their own deadline) instead of failing at once: when the
// upstream is healthy again they go through, when it is not they fail as the open breaker does.
package breaker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/sony/gobreaker/v2"
)

// Options configure a Breaker. The zero value works.
type Options struct {
	// Name names the upstream in messages and state changes ("billing").
	Name string
	// Failures is how many consecutive failures open the breaker; default DefaultFailures.
	Failures uint32
	// OpenFor is how long it stays open before a trial call may pass; default 10s.
	OpenFor time.Duration
	// IsFailure says which errors count against the upstream; default: unavailable and
	// timeout (the deadline of the call, which the caller of Middleware sets). An answer such
	// as not_found or invalid_argument is the upstream working. A cancelled call is never
	// counted, whatever IsFailure says.
	IsFailure func(error) bool
	// OnStateChange, when set, learns every change ("closed", "open", "half-open"), for logs
	// and metrics.
	OnStateChange func(name, from, to string)
	// State, when set, follows the state: 0 closed, 1 half-open, 2 open (the
	// pms_*_breaker_state gauges and their alerts).
	State interface{ Set(float64) }
	// Logger, when set, gets a warning at every change.
	Logger log.Logger
}

// DefaultFailures is how many consecutive failures open a breaker unless told otherwise.
const DefaultFailures = 5

// stateValues are the State gauge's values.
var stateValues = map[string]float64{"closed": 0, "half-open": 1, "open": 2}

// Breaker is one circuit breaker; share it between every endpoint of one upstream, since
// they fail together.
type Breaker struct {
	cb   *gobreaker.CircuitBreaker[any]
	name string

	mu      sync.Mutex
	changed chan struct{} // closed (and replaced) when a half-open trial may have ended
}

// New returns a closed breaker.
func New(o Options) *Breaker {
	if o.Failures == 0 {
		o.Failures = DefaultFailures
	}
	if o.OpenFor <= 0 {
		o.OpenFor = 10 * time.Second
	}
	if o.IsFailure == nil {
		o.IsFailure = Transient
	}
	b := &Breaker{name: o.Name, changed: make(chan struct{})}
	st := gobreaker.Settings{
		Name:         o.Name,
		Timeout:      o.OpenFor,
		ReadyToTrip:  func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= o.Failures },
		IsSuccessful: func(err error) bool { return err == nil || !o.IsFailure(err) },
		IsExcluded:   Canceled,
		OnStateChange: func(name string, from, to gobreaker.State) {
			if o.State != nil {
				o.State.Set(stateValues[to.String()])
			}
			if o.Logger != nil {
				_ = level.Warn(o.Logger).Log("msg", "circuit breaker changed state", "upstream", name, "from", from.String(), "to", to.String())
			}
			if o.OnStateChange != nil {
				o.OnStateChange(name, from.String(), to.String())
			}
			b.wake()
		},
	}
	b.cb = gobreaker.NewCircuitBreaker[any](st)
	return b
}

// Canceled reports whether err is a call its caller gave up: excluded from the counts.
func Canceled(err error) bool { return errs.KindOf(err) == errs.Canceled }

// Transient reports whether err says the upstream is down or too slow, rather than that it
// answered no.
func Transient(err error) bool {
	k := errs.KindOf(err)
	return k == errs.Unavailable || k == errs.Timeout
}

// Middleware runs each call through the breaker; while it is open a call fails at once with
// unavailable (whose cause is gobreaker.ErrOpenState). While half-open, a call that finds the
// trial in flight waits for its outcome (or its own context's end) and then tries again.
func (b *Breaker) Middleware() endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, req any) (any, error) {
			for {
				changed := b.waitChan() // taken before the call, so no wake-up is missed
				resp, err := b.cb.Execute(func() (any, error) {
					resp, err := next(ctx, req)
					if err != nil && errors.Is(ctx.Err(), context.Canceled) && !Canceled(err) {
						// The caller went away: whatever the call failed with, it says nothing
						// of the upstream.
						err = errs.FromContext(ctx.Err(), "")
					}
					return resp, err
				})
				if b.cb.State() != gobreaker.StateClosed {
					b.wake() // a half-open trial may have ended: let the waiting calls look
				}
				if errors.Is(err, gobreaker.ErrTooManyRequests) {
					select {
					case <-changed:
						continue
					case <-ctx.Done():
						return nil, errs.FromContext(ctx.Err(), "the "+b.name+" service did not recover in time")
					}
				}
				if errors.Is(err, gobreaker.ErrOpenState) {
					return nil, errs.Wrap(errs.Unavailable, "the "+b.name+" service is unavailable", err)
				}
				return resp, err
			}
		}
	}
}

// waitChan returns the channel closed by the next wake.
func (b *Breaker) waitChan() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.changed
}

// wake tells every waiting call to look at the breaker again.
func (b *Breaker) wake() {
	b.mu.Lock()
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

// State returns "closed", "open" or "half-open".
func (b *Breaker) State() string { return b.cb.State().String() }

// IsOpen reports whether err is a call refused by an open breaker.
func IsOpen(err error) bool {
	return errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests)
}
