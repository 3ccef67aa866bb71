package analytics

import (
	"context"

	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/log"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/observe"
	"github.com/pms/pms/pkg/platform/ratelimit"
	"github.com/pms/pms/pkg/platform/typed"
)

// MethodGetSummary is the one endpoint method: the key of metrics, logs, rate limits and the
// role table, and the name of the gRPC method.
const MethodGetSummary = "GetSummary"

// Methods lists every endpoint method.
var Methods = []string{MethodGetSummary}

// Roles is analytics' role table (API.md): analysts read analytics; admin is implied.
var Roles = authz.RoleTable{
	MethodGetSummary: {authz.RoleAnalyst},
}

// Set is the analytics endpoint set. Servers build it with NewEndpoints; clients from
// transport client endpoints; Set itself implements Service.
type Set struct {
	GetSummaryEndpoint endpoint.Endpoint
}

// EndpointOptions configure the server-side endpoint middleware.
type EndpointOptions struct {
	// Guard authenticates and authorises every call (required).
	Guard   *authz.Guard
	Logger  log.Logger
	Metrics *observe.RequestMetrics
	// Limits per method; methods not listed get ratelimit.Default.
	Limits map[string]ratelimit.Config
	// DefaultLimit overrides ratelimit.Default when its Rate is not zero.
	DefaultLimit ratelimit.Config
}

// NewEndpoints wraps s in the endpoint set with, outermost first: metrics, logging,
// authentication, and the per-endpoint rate limit.
func NewEndpoints(s Service, o EndpointOptions) Set {
	wrap := func(method string, e endpoint.Endpoint) endpoint.Endpoint {
		lim := ratelimit.Default
		if o.DefaultLimit.Rate != 0 {
			lim = o.DefaultLimit
		}
		if c, ok := o.Limits[method]; ok {
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
	return Set{GetSummaryEndpoint: wrap(MethodGetSummary, typed.Endpoint(s.GetSummary))}
}

// Wrap returns the set with mws around every endpoint (the first listed outermost). Clients
// use it to put one policy (deadline, retry, circuit breaker) in front of a whole upstream.
func (s Set) Wrap(mws ...endpoint.Middleware) Set {
	if s.GetSummaryEndpoint == nil {
		return s
	}
	return Set{GetSummaryEndpoint: typed.Chain(s.GetSummaryEndpoint, mws...)}
}

// GetSummary implements Service over the endpoint set.
func (s Set) GetSummary(ctx context.Context, q SummaryQuery) (Summary, error) {
	return typed.Call[Summary](ctx, s.GetSummaryEndpoint, q)
}

// FoldEndpoint is the endpoint the event consumer serves: it folds one Event as the service
// itself ("svc:analytics"), outside the guarded set (no user asked for it).
func FoldEndpoint(f Folder) endpoint.Endpoint {
	return typed.Endpoint(func(ctx context.Context, ev Event) (struct{}, error) {
		return struct{}{}, f.Fold(authz.Service(ctx, "analytics"), ev)
	})
}
