// Package retry bounds a call to another service: one deadline for the whole call and a few
// retries of transient failures inside it, as a go-kit endpoint middleware. Only idempotent
// calls may be wrapped: a retried call may have reached the upstream the first time.
//
// DESIGN.md chose go-kit's sd/lb.Retry for this. It is no longer used, for a reason found in
// CI (issue 20's note): lb.Retry runs each attempt in its own goroutine and answers the
// moment the deadline passes, while the attempt is still unwinding. A circuit breaker inside
// the attempt then counts the timeout only after the caller has its answer, so the caller's
// next call could still find the breaker closed (TestUpstreamThatNeverAnswers, one run in
// many), and each timed-out call left a goroutine behind it. Here the attempts run on the
// caller's goroutine under the call's deadline, which every wrapped endpoint (a gRPC client)
// honours, so a call is answered only once its last attempt has ended.
package retry

import (
	"context"
	"errors"
	"time"

	"github.com/go-kit/kit/endpoint"
	"github.com/pms/pms/pkg/platform/breaker"
	"github.com/pms/pms/pkg/platform/errs"
)

// Options configure the middleware. The zero value works.
type Options struct {
	// Attempts is the most calls made, the first included; default 3. 1 makes the middleware
	// a deadline only.
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
// back as it was (a contract error), unless the call's deadline passed or its caller went
// away: then it is a timeout or canceled.
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
		return func(ctx context.Context, req any) (any, error) {
			ctx, cancel := context.WithTimeout(ctx, o.Timeout)
			defer cancel()
			var err error
			for n := 1; ; n++ {
				var resp any
				if resp, err = next(ctx, req); err == nil {
					return resp, nil
				}
				if ctx.Err() != nil || n >= o.Attempts || !o.Retryable(err) {
					break
				}
			}
			if cerr := ctx.Err(); cerr != nil {
				if k := errs.KindOf(err); k != errs.Timeout && k != errs.Canceled {
					// The attempt failed because the deadline passed (or the caller left) while
					// it ran, whatever it reported: say which.
					ce := errs.As(errs.FromContext(cerr, "the call timed out"))
					err = errs.Wrap(ce.Kind, ce.Message, err)
				}
			}
			if _, ok := errors.AsType[*errs.Error](err); !ok {
				if cerr := errs.FromContext(err, "the call timed out"); cerr != nil {
					err = cerr // a deadline is Timeout; a caller gone is Canceled, never retried
				}
			}
			return nil, err
		}
	}
}
