package patient

import (
	"context"

	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/log"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/observe"
	"github.com/pms/pms/pkg/platform/ratelimit"
	"github.com/pms/pms/pkg/platform/typed"
)

// Endpoint method names: the keys of metrics, logs, rate limits and (later) the role table.
const (
	MethodCreate  = "CreatePatient"
	MethodGet     = "GetPatient"
	MethodList    = "ListPatients"
	MethodUpdate  = "UpdatePatient"
	MethodDelete  = "DeletePatient"
	MethodHistory = "GetPatientHistory"
	MethodAudit   = "ListAudit"
)

// Methods lists every endpoint method, in route order.
var Methods = []string{MethodCreate, MethodGet, MethodList, MethodUpdate, MethodDelete, MethodHistory, MethodAudit}

// GetRequest, HistoryRequest: the endpoint requests that are just an id.
type (
	GetRequest     struct{ ID string }
	HistoryRequest struct{ ID string }
)

// HistoryResponse and AuditResponse wrap slices so every endpoint response is a struct.
type (
	HistoryResponse struct{ Versions []Version }
	AuditResponse   struct{ Entries []AuditEntry }
	DeleteResponse  struct{}
)

// Set is the patient endpoint set: one go-kit endpoint per operation. Servers build it from
// a Service with NewEndpoints; clients build it from transport client endpoints, and Set
// itself implements Service, so a caller never knows which wire is under it.
type Set struct {
	CreateEndpoint  endpoint.Endpoint
	GetEndpoint     endpoint.Endpoint
	ListEndpoint    endpoint.Endpoint
	UpdateEndpoint  endpoint.Endpoint
	DeleteEndpoint  endpoint.Endpoint
	HistoryEndpoint endpoint.Endpoint
	AuditEndpoint   endpoint.Endpoint
}

// Roles is the patient service's role table (API.md, "Authentication and roles"): clinicians
// read and write patients, billing staff read them, analysts do not see them; the audit log
// is admin only (admin may call everything and is implied).
var Roles = authz.RoleTable{
	MethodCreate:  {authz.RoleClinician},
	MethodGet:     {authz.RoleClinician, authz.RoleBilling},
	MethodList:    {authz.RoleClinician, authz.RoleBilling},
	MethodUpdate:  {authz.RoleClinician},
	MethodDelete:  {authz.RoleClinician},
	MethodHistory: {authz.RoleClinician, authz.RoleBilling},
	MethodAudit:   {authz.RoleAdmin},
}

// EndpointOptions configure the server-side endpoint middleware.
type EndpointOptions struct {
	// Guard authenticates and authorises every call (required; see authz.NewGuard with Roles
	// and DeniedAuditor).
	Guard   *authz.Guard
	Logger  log.Logger
	Metrics *observe.RequestMetrics
	// Limits per method; methods not listed get ratelimit.Default.
	Limits map[string]ratelimit.Config
	// DefaultLimit overrides ratelimit.Default when its Rate is not zero.
	DefaultLimit ratelimit.Config
}

// NewEndpoints wraps s in the endpoint set with, outermost first: metrics, logging,
// authentication and roles (o.Guard), and the per-endpoint rate limit.
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
	return Set{
		CreateEndpoint: wrap(MethodCreate, typed.Endpoint(s.Create)),
		GetEndpoint: wrap(MethodGet, typed.Endpoint(func(ctx context.Context, r GetRequest) (Patient, error) {
			return s.Get(ctx, r.ID)
		})),
		ListEndpoint:   wrap(MethodList, typed.Endpoint(s.List)),
		UpdateEndpoint: wrap(MethodUpdate, typed.Endpoint(s.Update)),
		DeleteEndpoint: wrap(MethodDelete, typed.Endpoint(func(ctx context.Context, r DeleteRequest) (DeleteResponse, error) {
			return DeleteResponse{}, s.Delete(ctx, r)
		})),
		HistoryEndpoint: wrap(MethodHistory, typed.Endpoint(func(ctx context.Context, r HistoryRequest) (HistoryResponse, error) {
			v, err := s.History(ctx, r.ID)
			return HistoryResponse{Versions: v}, err
		})),
		AuditEndpoint: wrap(MethodAudit, typed.Endpoint(func(ctx context.Context, q AuditQuery) (AuditResponse, error) {
			e, err := s.Audit(ctx, q)
			return AuditResponse{Entries: e}, err
		})),
	}
}

// DeniedAuditor returns the guard's hook that writes a refused call to the audit log with
// outcome "denied": API.md wants every access to patient data audited, allowed or denied.
// It records the patient id when the request named one.
func DeniedAuditor(log AuditLog) authz.DeniedFunc {
	actions := map[string]string{
		MethodCreate: ActionCreate, MethodGet: ActionRead, MethodList: ActionSearch, MethodUpdate: ActionUpdate,
		MethodDelete: ActionDelete, MethodHistory: ActionHistory, MethodAudit: "audit",
	}
	return func(ctx context.Context, method string, req any, err error) {
		var id string
		switch r := req.(type) {
		case GetRequest:
			id = r.ID
		case HistoryRequest:
			id = r.ID
		case UpdateRequest:
			id = r.ID
		case DeleteRequest:
			id = r.ID
		}
		if canonical, perr := ParseID(id); perr == nil {
			id = canonical
		} else {
			id = ""
		}
		actor, role := authz.Actor(ctx)
		_ = log.Append(ctx, audit.Entry{Actor: actor, Role: role, Action: actions[method], SubjectID: id,
			Outcome: audit.OutcomeDenied, RequestID: observe.RequestID(ctx), ClientAddress: observe.ClientAddr(ctx)})
	}
}

// Create implements Service over the endpoint set.
func (s Set) Create(ctx context.Context, req CreateRequest) (Patient, error) {
	return typed.Call[Patient](ctx, s.CreateEndpoint, req)
}

// Get implements Service over the endpoint set.
func (s Set) Get(ctx context.Context, id string) (Patient, error) {
	return typed.Call[Patient](ctx, s.GetEndpoint, GetRequest{ID: id})
}

// List implements Service over the endpoint set.
func (s Set) List(ctx context.Context, q ListQuery) (Page, error) {
	return typed.Call[Page](ctx, s.ListEndpoint, q)
}

// Update implements Service over the endpoint set.
func (s Set) Update(ctx context.Context, req UpdateRequest) (Patient, error) {
	return typed.Call[Patient](ctx, s.UpdateEndpoint, req)
}

// Delete implements Service over the endpoint set.
func (s Set) Delete(ctx context.Context, req DeleteRequest) error {
	_, err := typed.Call[DeleteResponse](ctx, s.DeleteEndpoint, req)
	return err
}

// History implements Service over the endpoint set.
func (s Set) History(ctx context.Context, id string) ([]Version, error) {
	r, err := typed.Call[HistoryResponse](ctx, s.HistoryEndpoint, HistoryRequest{ID: id})
	return r.Versions, err
}

// Audit implements Service over the endpoint set.
func (s Set) Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	r, err := typed.Call[AuditResponse](ctx, s.AuditEndpoint, q)
	return r.Entries, err
}
