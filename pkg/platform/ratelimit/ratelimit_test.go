package ratelimit

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pms/pms/pkg/platform/errs"
)

func TestMiddlewareRefusesPastBurst(t *testing.T) {
	calls := 0
	e := Middleware(Config{Rate: 0.5, Burst: 2})(func(context.Context, any) (any, error) { calls++; return "ok", nil })
	for i := range 2 {
		if _, err := e(context.Background(), nil); err != nil {
			t.Fatalf("call %d within burst: %v", i, err)
		}
	}
	_, err := e(context.Background(), nil)
	var ee *errs.Error
	if !errors.As(err, &ee) || ee.Kind != errs.RateLimited || ee.RetryAfter != 2*time.Second {
		t.Fatalf("past burst: %#v, want rate_limited with Retry-After 2s", err)
	}
	if calls != 2 {
		t.Fatalf("limited call reached the endpoint (%d calls)", calls)
	}
	// Disabled limits pass everything.
	open := Middleware(Config{Rate: -1})(func(context.Context, any) (any, error) { return nil, nil })
	for range 1000 {
		if _, err := open(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
	}
}
