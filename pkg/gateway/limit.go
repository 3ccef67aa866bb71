package gateway

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/go-kit/kit/endpoint"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
	"github.com/pms/pms/pkg/platform/ratelimit"
	"golang.org/x/time/rate"
)

// clientLimiter is a token bucket per client: the verified token's subject, else the client
// address (public routes, such as login). The table is bounded: when it is full, buckets
// idle long enough to have refilled are dropped (they would allow a full burst anyway),
// and if none is, the table starts again empty, which costs at most one extra burst per
// client, never a refusal.
type clientLimiter struct {
	c       ratelimit.Config
	max     int
	retry   time.Duration
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

func newClientLimiter(c ratelimit.Config, max int) *clientLimiter {
	if c.Burst < 1 {
		c.Burst = int(math.Max(1, c.Rate))
	}
	retry := time.Second
	if c.Rate > 0 && c.Rate < 1 {
		retry = time.Duration(math.Ceil(1/c.Rate)) * time.Second
	}
	return &clientLimiter{c: c, max: max, retry: retry, buckets: map[string]*bucket{}}
}

// allow takes a token from key's bucket.
func (l *clientLimiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.max {
			l.evict(now)
		}
		b = &bucket{lim: rate.NewLimiter(rate.Limit(l.c.Rate), l.c.Burst)}
		l.buckets[key] = b
	}
	b.last = now
	return b.lim.AllowN(now, 1)
}

// evict drops the buckets that have been idle long enough to be full again.
func (l *clientLimiter) evict(now time.Time) {
	full := time.Duration(float64(l.c.Burst)/l.c.Rate*float64(time.Second)) + time.Second
	for k, b := range l.buckets {
		if now.Sub(b.last) > full {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) >= l.max {
		clear(l.buckets)
	}
}

// middleware refuses a client past its bucket with rate_limited (429, Retry-After).
func (l *clientLimiter) middleware() endpoint.Middleware {
	if l.c.Rate <= 0 {
		return func(next endpoint.Endpoint) endpoint.Endpoint { return next }
	}
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, req any) (any, error) {
			key := "addr:" + observe.ClientAddr(ctx)
			if p, ok := authz.FromContext(ctx); ok && p.Subject != "" {
				key = "sub:" + p.Subject
			}
			if !l.allow(key, time.Now()) {
				return nil, &errs.Error{Kind: errs.RateLimited, Message: "too many requests", RetryAfter: l.retry}
			}
			return next(ctx, req)
		}
	}
}
