package breaker

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pms/pms/pkg/platform/errs"
)

func TestBreaker(t *testing.T) {
	var mu sync.Mutex
	var changes []string
	b := New(Options{Name: "billing", Failures: 3, OpenFor: 20 * time.Millisecond, OnStateChange: func(_, from, to string) {
		mu.Lock()
		changes = append(changes, from+">"+to)
		mu.Unlock()
	}})
	var calls atomic.Int64
	var fail atomic.Value
	fail.Store(errs.New(errs.Unavailable, "down"))
	e := b.Middleware()(func(context.Context, any) (any, error) {
		calls.Add(1)
		if err, _ := fail.Load().(*errs.Error); err != nil {
			return nil, err
		}
		return "ok", nil
	})
	ctx := context.Background()

	// Answers that are the upstream working never open it.
	fail.Store(errs.New(errs.NotFound, "no such thing"))
	for range 10 {
		if _, err := e(ctx, nil); errs.KindOf(err) != errs.NotFound {
			t.Fatalf("err = %v", err)
		}
	}
	if b.State() != "closed" {
		t.Fatalf("state %s after not_found answers", b.State())
	}

	fail.Store(errs.New(errs.Unavailable, "down"))
	for range 3 {
		if _, err := e(ctx, nil); errs.KindOf(err) != errs.Unavailable || IsOpen(err) {
			t.Fatalf("err = %v", err)
		}
	}
	if b.State() != "open" {
		t.Fatalf("state %s after 3 failures", b.State())
	}
	before := calls.Load()
	_, err := e(ctx, nil)
	if errs.KindOf(err) != errs.Unavailable || !IsOpen(err) || calls.Load() != before {
		t.Fatalf("open breaker: %v, %d calls through", err, calls.Load()-before)
	}

	// Once the upstream is back, a trial call after OpenFor closes it.
	fail.Store((*errs.Error)(nil))
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := e(ctx, nil)
		if err == nil && resp == "ok" {
			break
		}
		if !IsOpen(err) || time.Now().After(deadline) {
			t.Fatalf("breaker did not close: %v", err)
		}
		time.Sleep(time.Millisecond) // polling with a deadline, not synchronising
	}
	if b.State() != "closed" {
		t.Fatalf("state %s after a success", b.State())
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"closed>open", "open>half-open", "half-open>closed"}
	if len(changes) != 3 || changes[0] != want[0] || changes[1] != want[1] || changes[2] != want[2] {
		t.Fatalf("state changes %v, want %v", changes, want)
	}
}

func TestTransient(t *testing.T) {
	for k, want := range map[errs.Kind]bool{errs.Unavailable: true, errs.Timeout: true, errs.Internal: false, errs.NotFound: false, errs.RateLimited: false} {
		if Transient(errs.New(k, "x")) != want {
			t.Errorf("Transient(%s) = %v", k, !want)
		}
	}
	if !Transient(context.DeadlineExceeded) || Transient(errors.New("x")) {
		t.Error("plain errors")
	}
}

// TestCallerGoneNeverOpens: calls whose callers hang up (the context cancelled while the
// upstream works, whatever error that surfaces as) never open the breaker, while the
// upstream's own deadline does (issue 13).
func TestCallerGoneNeverOpens(t *testing.T) {
	b := New(Options{Name: "patient", Failures: 3, OpenFor: time.Hour})
	e := b.Middleware()(func(ctx context.Context, _ any) (any, error) {
		<-ctx.Done()
		// What a client library may report for a call cut short: its own kind or a lost
		// connection. Either way the caller left first.
		return nil, errs.Wrap(errs.Unavailable, "connection closed", ctx.Err())
	})
	for i := range 50 {
		ctx, cancel := context.WithCancel(context.Background())
		go cancel()
		if _, err := e(ctx, nil); errs.KindOf(err) != errs.Canceled {
			t.Fatalf("call %d: err = %v (%s); want canceled", i, err, errs.KindOf(err))
		}
	}
	if b.State() != "closed" {
		t.Fatalf("state %s after 50 callers hung up; want closed", b.State())
	}
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		_, err := e(ctx, nil)
		cancel()
		if errs.KindOf(err) == errs.Canceled {
			t.Fatalf("deadline call %d: %v; a deadline is not a cancellation", i, err)
		}
	}
	if b.State() != "open" {
		t.Fatalf("state %s after 3 deadlines; want open (its own deadline is the upstream failing)", b.State())
	}
}

// TestHalfOpenAdmitsOthersWhenHealthy: when the breaker is half-open and the upstream is
// healthy again, the calls that arrive while the trial call is in flight wait for it and then
// succeed, instead of answering 503 "too many requests"; when the trial fails they fail at
// once as the open breaker does.
func TestHalfOpenAdmitsOthersWhenHealthy(t *testing.T) {
	for _, healthy := range []bool{true, false} {
		b := New(Options{Name: "patient", Failures: 1, OpenFor: 20 * time.Millisecond})
		var down atomic.Bool
		down.Store(true)
		trial := make(chan struct{})   // closed when the trial call has started
		release := make(chan struct{}) // closed to let the trial call answer
		var trials atomic.Int64
		e := b.Middleware()(func(ctx context.Context, req any) (any, error) {
			if req == "trial" && trials.Add(1) == 1 {
				close(trial)
				<-release
			}
			if down.Load() {
				return nil, errs.New(errs.Unavailable, "down")
			}
			return "ok", nil
		})
		ctx := context.Background()
		if _, err := e(ctx, nil); errs.KindOf(err) != errs.Unavailable {
			t.Fatalf("first failure: %v", err)
		}
		if b.State() != "open" {
			t.Fatalf("state %s; want open", b.State())
		}
		down.Store(!healthy)
		deadline := time.Now().Add(10 * time.Second)
		for b.State() != "half-open" { // State moves open → half-open once OpenFor passed
			if time.Now().After(deadline) {
				t.Fatal("breaker never became half-open")
			}
			time.Sleep(time.Millisecond) // polling with a deadline
		}
		trialErr := make(chan error, 1)
		go func() { _, err := e(ctx, "trial"); trialErr <- err }()
		<-trial
		const others = 20
		errc := make(chan error, others)
		for range others {
			go func() { _, err := e(ctx, nil); errc <- err }()
		}
		close(release)
		if err := <-trialErr; (err == nil) != healthy {
			t.Fatalf("healthy=%v: trial call = %v", healthy, err)
		}
		for range others {
			err := <-errc
			if healthy && err != nil {
				t.Fatalf("a call during a successful trial failed: %v; want it to wait and succeed", err)
			}
			if !healthy && errs.KindOf(err) != errs.Unavailable {
				t.Fatalf("a call during a failed trial: %v; want unavailable", err)
			}
		}
	}
}
