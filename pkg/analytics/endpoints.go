package analytics

import (
	"context"

	"github.com/go-kit/kit/endpoint"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/op"
	"github.com/pms/pms/pkg/platform/stack"
	"github.com/pms/pms/pkg/platform/typed"
)

// The endpoint methods: the keys of metrics, logs, rate limits and the role table, and the
// names of the gRPC methods.
const (
	MethodGetSummary = "GetSummary"
	// MethodVerifyAudit walks the audit chain (GET /audit/verify), admin only.
	MethodVerifyAudit = "VerifyAudit"
)

// Ops is analytics' operation table (API.md): analysts read analytics; admin is implied.
var Ops = op.Table{
	{Name: MethodGetSummary, Roles: []string{authz.RoleAnalyst}, Action: ActionReadSummary},
	{Name: MethodVerifyAudit, Roles: []string{authz.RoleAdmin}, Action: ActionVerifyAudit},
}

// Methods and Roles are derived from Ops.
var (
	Methods = Ops.Names()
	Roles   = Ops.Roles()
)

// Set is the analytics endpoint set. Servers build it with NewEndpoints; clients from
// transport client endpoints; Set itself implements Service.
type Set struct {
	GetSummaryEndpoint  endpoint.Endpoint `op:"GetSummary"`
	VerifyAuditEndpoint endpoint.Endpoint `op:"VerifyAudit"`
}

// VerifyAuditRequest asks for the audit chain's verdict. AgainstTopic is accepted like every
// service's and changes nothing here: analytics publishes no chain, so its chain is its own
// evidence (as `pms audit verify --against-topic` treats it).
type VerifyAuditRequest struct{ AgainstTopic bool }

// EndpointOptions configure the server-side endpoint middleware (pkg/platform/stack).
type EndpointOptions = stack.Options

// NewEndpoints wraps s in the endpoint set with, outermost first: metrics, logging,
// authentication, and the per-endpoint rate limit.
func NewEndpoints(s Service, o EndpointOptions) Set {
	return stack.Bind(o, Ops, Set{
		GetSummaryEndpoint: typed.Endpoint(s.GetSummary),
		VerifyAuditEndpoint: typed.Endpoint(func(ctx context.Context, r VerifyAuditRequest) (audit.Report, error) {
			return s.VerifyAudit(audit.WithAgainstTopic(ctx, r.AgainstTopic))
		}),
	})
}

// Map returns the set with f around every endpoint it has (op.Map): clients put one policy
// (deadline, retry, circuit breaker) in front of a whole upstream with it.
func (s Set) Map(f op.Func) Set { return op.Map(s, f) }

// Wrap returns the set with mws around every endpoint (the first listed outermost).
func (s Set) Wrap(mws ...endpoint.Middleware) Set { return s.Map(op.Chain(mws...)) }

// GetSummary implements Service over the endpoint set.
func (s Set) GetSummary(ctx context.Context, q SummaryQuery) (Summary, error) {
	return typed.Call[Summary](ctx, s.GetSummaryEndpoint, q)
}

// VerifyAudit implements Service over the endpoint set.
func (s Set) VerifyAudit(ctx context.Context) (audit.Report, error) {
	return typed.Call[audit.Report](ctx, s.VerifyAuditEndpoint, VerifyAuditRequest{AgainstTopic: audit.AgainstTopic(ctx)})
}

// FoldEndpoint is the endpoint the event consumer serves: it folds one Event as the service
// itself ("svc:analytics"), outside the guarded set (no user asked for it).
func FoldEndpoint(f Folder) endpoint.Endpoint {
	return typed.Endpoint(func(ctx context.Context, ev Event) (struct{}, error) {
		return struct{}{}, f.Fold(authz.Service(ctx, "analytics"), ev)
	})
}

// FoldBatchEndpoint is FoldEndpoint for a batch: it folds a []Event in one transaction as
// the service itself (BatchFolder).
func FoldBatchEndpoint(f BatchFolder) endpoint.Endpoint {
	return typed.Endpoint(func(ctx context.Context, evs []Event) (struct{}, error) {
		return struct{}{}, f.FoldBatch(authz.Service(ctx, "analytics"), evs)
	})
}
