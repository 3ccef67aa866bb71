package retry

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pms/pms/pkg/platform/breaker"
	"github.com/pms/pms/pkg/platform/errs"
)

func TestRetry(t *testing.T) {
	var calls atomic.Int64
	answer := func(fail func(n int64) error) func(context.Context, any) (any, error) {
		calls.Store(0)
		return func(ctx context.Context, _ any) (any, error) {
			n := calls.Add(1)
			if err := fail(n); err != nil {
				return nil, err
			}
			return n, nil
		}
	}
	mw := Middleware(Options{Attempts: 3, Timeout: 5 * time.Second})
	ctx := context.Background()

	// A transient failure is retried, and the call succeeds.
	resp, err := mw(answer(func(n int64) error {
		if n < 3 {
			return errs.New(errs.Unavailable, "down")
		}
		return nil
	}))(ctx, nil)
	if err != nil || resp != int64(3) {
		t.Fatalf("resp %v, err %v", resp, err)
	}
	// At most Attempts calls, and the last error comes back as the contract error it was.
	_, err = mw(answer(func(int64) error { return errs.New(errs.Unavailable, "still down") }))(ctx, nil)
	if e := errs.As(err); e.Kind != errs.Unavailable || e.Message != "still down" || calls.Load() != 3 {
		t.Fatalf("err %v after %d calls", err, calls.Load())
	}
	// An answer is not retried.
	_, err = mw(answer(func(int64) error { return errs.New(errs.NotFound, "no") }))(ctx, nil)
	if errs.KindOf(err) != errs.NotFound || calls.Load() != 1 {
		t.Fatalf("err %v after %d calls", err, calls.Load())
	}
	// Nor is an open breaker.
	b := breaker.New(breaker.Options{Failures: 1, OpenFor: time.Hour})
	_, _ = b.Middleware()(answer(func(int64) error { return errs.New(errs.Unavailable, "down") }))(ctx, nil)
	inner := answer(func(int64) error { return nil })
	_, err = mw(b.Middleware()(inner))(ctx, nil)
	if !breaker.IsOpen(err) || calls.Load() != 0 {
		t.Fatalf("err %v after %d calls", err, calls.Load())
	}
	// The deadline covers every attempt; passing it is a timeout.
	release := make(chan struct{})
	defer close(release)
	short := Middleware(Options{Attempts: 3, Timeout: 20 * time.Millisecond})
	_, err = short(func(ctx context.Context, _ any) (any, error) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-release:
			return nil, nil
		}
	})(ctx, nil)
	if errs.KindOf(err) != errs.Timeout {
		t.Fatalf("deadline: %v (%s)", err, errs.KindOf(err))
	}
}

// TestCallerGoneIsNotRetried: a caller that cancels gets Canceled back at once, after one
// attempt; it is neither retried nor turned into a timeout (issue 13).
func TestCallerGoneIsNotRetried(t *testing.T) {
	var calls atomic.Int64
	mw := Middleware(Options{Attempts: 3, Timeout: 5 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	_, err := mw(func(ctx context.Context, _ any) (any, error) {
		calls.Add(1)
		cancel()
		<-ctx.Done()
		return nil, ctx.Err()
	})(ctx, nil)
	if errs.KindOf(err) != errs.Canceled || calls.Load() != 1 {
		t.Fatalf("cancelled call: %v (%s) after %d attempts; want canceled after 1", err, errs.KindOf(err), calls.Load())
	}
}

// TestDeadlineWaitsForTheAttempt: a call that times out is answered only once the attempt in
// flight has ended, so a breaker inside has already counted the timeout: after Failures
// timed-out calls the next one finds the breaker open. (lb.Retry alone answers at the
// deadline while the attempt still runs; the gateway's next call then found the breaker
// closed, TestUpstreamThatNeverAnswers in CI.)
func TestDeadlineWaitsForTheAttempt(t *testing.T) {
	var ended atomic.Int64
	slow := func(ctx context.Context, _ any) (any, error) {
		<-ctx.Done()
		// The attempt ends a moment after its deadline, as a gRPC call unwinding does (the
		// sleep widens that window; nothing waits on it).
		time.Sleep(5 * time.Millisecond)
		ended.Add(1)
		return nil, errs.New(errs.Timeout, "deadline")
	}
	b := breaker.New(breaker.Options{Failures: 3, OpenFor: time.Hour})
	call := Middleware(Options{Attempts: 1, Timeout: 10 * time.Millisecond})(b.Middleware()(slow))
	for i := 1; i <= 3; i++ {
		if _, err := call(context.Background(), nil); errs.KindOf(err) != errs.Timeout {
			t.Fatalf("call %d: %v, want timeout", i, err)
		}
		if n := ended.Load(); n != int64(i) {
			t.Fatalf("call %d answered while its attempt was still running (%d attempts ended)", i, n)
		}
	}
	if b.State() != "open" {
		t.Fatalf("breaker %s after 3 timed-out calls, want open", b.State())
	}
}
