// Package retry bounds a call to another service: one deadline for the whole call and a few
// retries of transient failures inside it, as a go-kit endpoint middleware over go-kit's
// sd/lb.Retry (DESIGN.md). Only idempotent calls may be wrapped: a retried call may have
// reached the upstream the first time.
package retry

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/kit/sd"
	"github.com/go-kit/kit/sd/lb"
	"github.com/pms/pms/pkg/platform/breaker"
	"github.com/pms/pms/pkg/platform/errs"
)

// Options configure the middleware. The zero value works.
type Options struct {
	// Attempts is the most calls made, the first included; default 3.
	Attempts int
	// Timeout is the deadline of the whole call, every attempt included; default 2s.
	Timeout time.Duration
	// Retryable says which errors are worth another attempt; default: unavailable, unless
	// an open circuit breaker said so (it would only say it again).
	Retryable func(error) bool
}

// Transient is the default Retryable.
func Transient(err error) bool {
	return errs.KindOf(err) == errs.Unavailable && !breaker.IsOpen(err)
}

// Middleware returns the deadline-and-retry middleware. The error of the last attempt comes
// back as it was (a contract error), and a deadline that passed as timeout.
func Middleware(o Options) endpoint.Middleware {
	if o.Attempts < 1 {
		o.Attempts = 3
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Retryable == nil {
		o.Retryable = Transient
	}
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		// lb.Retry answers as soon as the deadline passes, while the attempt in flight is
		// still running; each attempt is counted in the call's WaitGroup so the answer waits
		// for it. Otherwise the caller could learn of a timeout before the breaker inside
		// had counted it, and the next call would still find the breaker closed.
		attempt := func(ctx context.Context, req any) (any, error) {
			if wg, ok := ctx.Value(inFlightKey{}).(*sync.WaitGroup); ok {
				wg.Add(1)
				defer wg.Done()
			}
			return next(ctx, req)
		}
		retrying := lb.RetryWithCallback(o.Timeout, lb.NewRoundRobin(sd.FixedEndpointer{attempt}),
			func(n int, err error) (bool, error) { return n < o.Attempts && o.Retryable(err), nil })
		return func(ctx context.Context, req any) (any, error) {
			var inFlight sync.WaitGroup
			resp, err := retrying(context.WithValue(ctx, inFlightKey{}, &inFlight), req)
			inFlight.Wait() // the attempts see the deadline too, so they end with it
			var re lb.RetryError
			if errors.As(err, &re) {
				err = re.Final
			}
			if _, ok := errors.AsType[*errs.Error](err); !ok {
				if cerr := errs.FromContext(err, "the call timed out"); cerr != nil {
					err = cerr // a deadline is Timeout; a caller gone is Canceled, never retried
				}
			}
			return resp, err
		}
	}
}

// inFlightKey carries a call's WaitGroup of attempts through lb.Retry's context.
type inFlightKey struct{}
