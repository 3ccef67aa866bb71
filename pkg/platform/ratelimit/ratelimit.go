// Package ratelimit limits each endpoint on its own (go-kit ratelimit over x/time/rate), so
// one hot endpoint cannot starve the others; past the limit a call fails fast with
// rate_limited (HTTP 429 with Retry-After, gRPC ResourceExhausted).
package ratelimit

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/go-kit/kit/endpoint"
	kitrl "github.com/go-kit/kit/ratelimit"
	"github.com/pms/pms/pkg/platform/errs"
	"golang.org/x/time/rate"
)

// Config is a token bucket: Rate calls per second on average, Burst at once. A Rate of 0 or
// less disables limiting.
type Config struct {
	Rate  float64
	Burst int
}

// Default is generous: limits protect the database from runaway clients, not normal load.
var Default = Config{Rate: 2000, Burst: 4000}

// Middleware returns a limiter for one endpoint.
func Middleware(c Config) endpoint.Middleware {
	if c.Rate <= 0 {
		return func(next endpoint.Endpoint) endpoint.Endpoint { return next }
	}
	burst := c.Burst
	if burst < 1 {
		burst = int(math.Max(1, c.Rate))
	}
	lim := rate.NewLimiter(rate.Limit(c.Rate), burst)
	retry := time.Duration(math.Ceil(1/c.Rate)) * time.Second
	if retry < time.Second {
		retry = time.Second
	}
	limited := kitrl.NewErroringLimiter(lim)
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		e := limited(next)
		return func(ctx context.Context, req any) (any, error) {
			resp, err := e(ctx, req)
			if errors.Is(err, kitrl.ErrLimited) {
				return nil, &errs.Error{Kind: errs.RateLimited, Message: "too many requests", RetryAfter: retry}
			}
			return resp, err
		}
	}
}
