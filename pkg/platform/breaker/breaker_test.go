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
