// Package stack is the server-side endpoint middleware every service puts around each of its
// endpoints, in one order: request metrics, logging, authentication and roles, the
// per-endpoint rate limit. One definition keeps the services from drifting apart.
package stack

import (
	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/log"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/observe"
	"github.com/pms/pms/pkg/platform/op"
	"github.com/pms/pms/pkg/platform/ratelimit"
	"github.com/pms/pms/pkg/platform/typed"
)

// Options configure the middleware. Guard is required (a service never trusts a caller
// without a valid token; transport tests use authz.AllowAnonymous explicitly).
type Options struct {
	Guard   *authz.Guard
	Logger  log.Logger
	Metrics *observe.RequestMetrics
	// Limits per rate class (op.Op.Rate); operations of no listed class get DefaultLimit, or
	// ratelimit.Default.
	Limits map[string]ratelimit.Config
	// DefaultLimit overrides ratelimit.Default when its Rate is not zero.
	DefaultLimit ratelimit.Config
}

// Bind wraps every endpoint of set (see op.Bind: it must have exactly t's operations) in the
// middleware, each with the rate limit of its operation's class. This is a service's
// NewEndpoints in one line.
func Bind[S any](o Options, t op.Table, set S) S {
	rates := t.Rates()
	return op.Bind(t, set, func(name string, e endpoint.Endpoint) endpoint.Endpoint {
		return o.wrap(name, rates[name], e)
	})
}

// wrap returns e wrapped, outermost first, in metrics, logging, o.Guard and the rate limit
// of class.
func (o Options) wrap(method, class string, e endpoint.Endpoint) endpoint.Endpoint {
	lim := ratelimit.Default
	if o.DefaultLimit.Rate != 0 {
		lim = o.DefaultLimit
	}
	if c, ok := o.Limits[class]; ok && class != "" {
		lim = c
	}
	var mws []endpoint.Middleware
	if o.Metrics != nil {
		mws = append(mws, o.Metrics.Middleware(method))
	}
	if o.Logger != nil {
		mws = append(mws, observe.LoggingMiddleware(o.Logger, method))
	}
	mws = append(mws, o.Guard.Middleware(method), ratelimit.Middleware(lim))
	return typed.Chain(e, mws...)
}
