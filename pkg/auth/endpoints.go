package auth

import (
	"context"

	"github.com/go-kit/kit/endpoint"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/observe"
	"github.com/pms/pms/pkg/platform/stack"
	"github.com/pms/pms/pkg/platform/typed"
)

// Endpoint method names: the keys of metrics, logs, rate limits and the role table, and the
// names of the gRPC methods of pms.auth.v1.AuthService.
const (
	MethodLogin      = "Login"
	MethodValidate   = "Validate"
	MethodRefresh    = "Refresh"
	MethodLogout     = "Logout"
	MethodJWKS       = "GetJwks"
	MethodCreateUser = "CreateUser"
	MethodListUsers  = "ListUsers"
	MethodGetUser    = "GetUser"
	MethodUpdateUser = "UpdateUser"
	MethodAudit      = "ListAudit"
)

// Methods lists every endpoint method, in route order.
var Methods = []string{MethodLogin, MethodValidate, MethodRefresh, MethodLogout, MethodJWKS,
	MethodCreateUser, MethodListUsers, MethodGetUser, MethodUpdateUser, MethodAudit}

// Endpoint requests and responses that are not domain types of their own.
type (
	ValidateRequest  struct{}
	JWKSRequest      struct{}
	ListUsersRequest struct{}
	GetUserRequest   struct{ ID string }
	LogoutResponse   struct{}
	UsersResponse    struct{ Users []User }
	AuditResponse    struct{ Entries []AuditEntry }
)

// Roles is the auth service's role table: logging in, refreshing, logging out and reading
// the public keys need no token; validate needs any valid one; users and their audit log
// are for admins (admin is implied everywhere).
var Roles = authz.RoleTable{
	MethodLogin:      {authz.Public},
	MethodRefresh:    {authz.Public},
	MethodLogout:     {authz.Public},
	MethodJWKS:       {authz.Public},
	MethodValidate:   {authz.Authenticated},
	MethodCreateUser: {authz.RoleAdmin},
	MethodListUsers:  {authz.RoleAdmin},
	MethodGetUser:    {authz.RoleAdmin},
	MethodUpdateUser: {authz.RoleAdmin},
	MethodAudit:      {authz.RoleAdmin},
}

// Set is the auth endpoint set: one go-kit endpoint per operation. Servers build it from a
// Service with NewEndpoints; clients build it from transport client endpoints, and Set
// itself implements Service, so a caller never knows which wire is under it.
type Set struct {
	LoginEndpoint      endpoint.Endpoint
	ValidateEndpoint   endpoint.Endpoint
	RefreshEndpoint    endpoint.Endpoint
	LogoutEndpoint     endpoint.Endpoint
	JWKSEndpoint       endpoint.Endpoint
	CreateUserEndpoint endpoint.Endpoint
	ListUsersEndpoint  endpoint.Endpoint
	GetUserEndpoint    endpoint.Endpoint
	UpdateUserEndpoint endpoint.Endpoint
	AuditEndpoint      endpoint.Endpoint
}

// EndpointOptions configure the server-side endpoint middleware (pkg/platform/stack).
type EndpointOptions = stack.Options

// NewEndpoints wraps s in the endpoint set with, outermost first: metrics, logging,
// authentication and roles (o.Guard), and the per-endpoint rate limit. (Login throttling
// per account and address is the service's own, since it needs the outcome.)
func NewEndpoints(s Service, o EndpointOptions) Set {
	wrap := o.Wrap
	return Set{
		LoginEndpoint: wrap(MethodLogin, typed.Endpoint(s.Login)),
		ValidateEndpoint: wrap(MethodValidate, typed.Endpoint(func(ctx context.Context, _ ValidateRequest) (Validation, error) {
			return s.Validate(ctx)
		})),
		RefreshEndpoint: wrap(MethodRefresh, typed.Endpoint(s.Refresh)),
		LogoutEndpoint: wrap(MethodLogout, typed.Endpoint(func(ctx context.Context, r LogoutRequest) (LogoutResponse, error) {
			return LogoutResponse{}, s.Logout(ctx, r)
		})),
		JWKSEndpoint: wrap(MethodJWKS, typed.Endpoint(func(ctx context.Context, _ JWKSRequest) (authz.JWKS, error) {
			return s.JWKS(ctx)
		})),
		CreateUserEndpoint: wrap(MethodCreateUser, typed.Endpoint(s.CreateUser)),
		ListUsersEndpoint: wrap(MethodListUsers, typed.Endpoint(func(ctx context.Context, _ ListUsersRequest) (UsersResponse, error) {
			u, err := s.ListUsers(ctx)
			return UsersResponse{Users: u}, err
		})),
		GetUserEndpoint: wrap(MethodGetUser, typed.Endpoint(func(ctx context.Context, r GetUserRequest) (User, error) {
			return s.GetUser(ctx, r.ID)
		})),
		UpdateUserEndpoint: wrap(MethodUpdateUser, typed.Endpoint(s.UpdateUser)),
		AuditEndpoint: wrap(MethodAudit, typed.Endpoint(func(ctx context.Context, q AuditQuery) (AuditResponse, error) {
			e, err := s.Audit(ctx, q)
			return AuditResponse{Entries: e}, err
		})),
	}
}

// DeniedAuditor returns the guard's hook that writes refused calls on users and the audit
// log to the audit log with outcome "denied", naming the user the request was about when it
// named a well-formed one. Refused validations are not audited: they concern no account,
// and every garbage token would otherwise grow the hash-chained log (they are counted in the
// request metrics instead).
func DeniedAuditor(log AuditLog) authz.DeniedFunc {
	actions := map[string]string{
		MethodCreateUser: ActionUserCreate, MethodUpdateUser: ActionUserUpdate, MethodListUsers: ActionUserRead,
		MethodGetUser: ActionUserRead, MethodAudit: ActionAuditRead,
	}
	return func(ctx context.Context, method string, req any, err error) {
		action, ok := actions[method]
		if !ok {
			return
		}
		var id string
		switch r := req.(type) {
		case GetUserRequest:
			id = r.ID
		case UpdateUserRequest:
			id = r.ID
		}
		if canonical, perr := parseID(id); perr == nil {
			id = canonical
		} else {
			id = ""
		}
		actor, role := authz.Actor(ctx)
		_ = log.Append(ctx, audit.Entry{Actor: actor, Role: role, Action: action, SubjectID: id,
			Outcome: audit.OutcomeDenied, RequestID: observe.RequestID(ctx), ClientAddress: observe.ClientAddr(ctx)})
	}
}

// Login implements Service over the endpoint set.
func (s Set) Login(ctx context.Context, req LoginRequest) (TokenPair, error) {
	return typed.Call[TokenPair](ctx, s.LoginEndpoint, req)
}

// Validate implements Service over the endpoint set; the token travels in ctx.
func (s Set) Validate(ctx context.Context) (Validation, error) {
	return typed.Call[Validation](ctx, s.ValidateEndpoint, ValidateRequest{})
}

// Refresh implements Service over the endpoint set.
func (s Set) Refresh(ctx context.Context, req RefreshRequest) (TokenPair, error) {
	return typed.Call[TokenPair](ctx, s.RefreshEndpoint, req)
}

// Logout implements Service over the endpoint set.
func (s Set) Logout(ctx context.Context, req LogoutRequest) error {
	_, err := typed.Call[LogoutResponse](ctx, s.LogoutEndpoint, req)
	return err
}

// JWKS implements Service over the endpoint set.
func (s Set) JWKS(ctx context.Context) (authz.JWKS, error) {
	return typed.Call[authz.JWKS](ctx, s.JWKSEndpoint, JWKSRequest{})
}

// CreateUser implements Service over the endpoint set.
func (s Set) CreateUser(ctx context.Context, req CreateUserRequest) (User, error) {
	return typed.Call[User](ctx, s.CreateUserEndpoint, req)
}

// ListUsers implements Service over the endpoint set.
func (s Set) ListUsers(ctx context.Context) ([]User, error) {
	r, err := typed.Call[UsersResponse](ctx, s.ListUsersEndpoint, ListUsersRequest{})
	return r.Users, err
}

// GetUser implements Service over the endpoint set.
func (s Set) GetUser(ctx context.Context, id string) (User, error) {
	return typed.Call[User](ctx, s.GetUserEndpoint, GetUserRequest{ID: id})
}

// UpdateUser implements Service over the endpoint set.
func (s Set) UpdateUser(ctx context.Context, req UpdateUserRequest) (User, error) {
	return typed.Call[User](ctx, s.UpdateUserEndpoint, req)
}

// Audit implements Service over the endpoint set.
func (s Set) Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	r, err := typed.Call[AuditResponse](ctx, s.AuditEndpoint, q)
	return r.Entries, err
}
