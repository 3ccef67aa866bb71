package admit_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pms/pms/pkg/platform/polltest"

	"github.com/pms/pms/pkg/platform/admit"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// held is an upstream whose calls last until release is closed (or their context ends).
func held(release <-chan struct{}) func(ctx context.Context, req any) (any, error) {
	return func(ctx context.Context, req any) (any, error) {
		select {
		case <-release:
			return "ok", nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// TestLimiter: Limit calls go through at once; the next waits in line and goes through when
// one finishes; one that finds no place within MaxWait, or whose deadline has passed, is shed
// (unavailable, Retry-After) without reaching the upstream; a caller that gives up while in
// line gets its own cancellation; the metrics follow.
func TestLimiter(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := admit.NewMetrics(reg, "test")
	release := make(chan struct{})
	var calls atomic.Int64
	upstream := held(release)
	counted := func(ctx context.Context, req any) (any, error) { calls.Add(1); return upstream(ctx, req) }
	l := admit.New(admit.Options{Name: "patient", Limit: 2, MaxWait: time.Hour, Metrics: m})
	e := l.Middleware()(counted)

	results := make(chan error, 3)
	for range 2 {
		go func() { _, err := e(context.Background(), nil); results <- err }()
	}
	polltest.Until(t, 10*time.Second, "two calls in flight", func() bool { return testutil.ToFloat64(m.InFlight("patient")) == 2 })

	// The third waits in line...
	go func() { _, err := e(context.Background(), nil); results <- err }()
	polltest.Until(t, 10*time.Second, "a call in line", func() bool { return testutil.ToFloat64(m.Waiting("patient")) == 1 })
	// ...one whose deadline has passed is shed at once...
	past, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if _, err := e(past, nil); errs.KindOf(err) != errs.Unavailable || errs.As(err).RetryAfter != admit.RetryAfter {
		t.Fatalf("call past its deadline with no place: %v, want unavailable with Retry-After", err)
	}
	// ...and one whose caller gives up leaves the line with its own error.
	gone, giveUp := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() { _, err := e(gone, nil); gaveUp <- err }()
	polltest.Until(t, 10*time.Second, "a second call in line", func() bool { return testutil.ToFloat64(m.Waiting("patient")) == 2 })
	giveUp()
	if err := <-gaveUp; errs.KindOf(err) != errs.Canceled {
		t.Fatalf("caller gone while in line: %v, want canceled", err)
	}
	close(release) // the two in flight finish, the one in line goes through
	for range 3 {
		if err := <-results; err != nil {
			t.Fatalf("admitted call: %v", err)
		}
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("the upstream saw %d calls, want 3 (shed and abandoned calls never reach it)", n)
	}
	if got := testutil.ToFloat64(m.Shed("patient")); got != 1 {
		t.Fatalf("shed counter %v, want 1", got)
	}

	// No place within MaxWait: shed.
	block := make(chan struct{})
	defer close(block)
	s := admit.New(admit.Options{Name: "billing", Limit: 1, MaxWait: 20 * time.Millisecond, Metrics: m}).Middleware()(held(block))
	go func() { _, _ = s(context.Background(), nil) }()
	polltest.Until(t, 10*time.Second, "billing's place taken", func() bool { return testutil.ToFloat64(m.InFlight("billing")) == 1 })
	if _, err := s(context.Background(), nil); errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("call that found no place within MaxWait: %v, want unavailable", err)
	}

	// Off: every call passes.
	off := admit.New(admit.Options{Limit: -1}).Middleware()(func(context.Context, any) (any, error) { return "ok", nil })
	if r, err := off(context.Background(), nil); err != nil || r != "ok" {
		t.Fatalf("admission off: %v %v", r, err)
	}
}
