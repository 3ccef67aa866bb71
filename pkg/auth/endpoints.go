package auth

import (
	"context"

	"github.com/go-kit/kit/endpoint"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/op"
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
	// MethodVerifyAudit walks the audit chain (GET /users/audit/verify), admin only.
	MethodVerifyAudit = "VerifyAudit"
	// MethodSetPassword sets a password with a one-time set-password token (an invite's).
	MethodSetPassword = "SetPassword"
	// MethodChangePassword changes the caller's own password.
	MethodChangePassword = "ChangePassword"
	// MethodResetPassword (admin) issues a user a reset's set-password token.
	MethodResetPassword = "ResetPassword"
	// MFA (mfa.go): the caller's own factor, and logins that need a second step.
	MethodEnrolTOTP        = "EnrolTotp"
	MethodConfirmTOTP      = "ConfirmTotp"
	MethodDisableTOTP      = "DisableTotp"
	MethodLoginMFA         = "LoginMfa"
	MethodLoginEnrolTOTP   = "LoginEnrolTotp"
	MethodLoginConfirmTOTP = "LoginConfirmTotp"
	// MethodListSessions lists the caller's own sessions.
	MethodListSessions = "ListSessions"
	// MethodDeleteSession ends one of the caller's own sessions.
	MethodDeleteSession = "DeleteSession"
	// MethodLogoutAll ends every session and access token of the caller.
	MethodLogoutAll = "LogoutAll"
)

// RateCredentials is the rate class of the public operations that take a credential and
// change state with it: logging in and setting a password with a token.
const RateCredentials = "credentials"

// Ops is the auth service's operation table: logging in, refreshing, logging out, setting a
// password with a one-time token and reading the public keys need no token; validate needs any valid one; users and their audit log are
// for admins (admin is implied everywhere). Refused validations are not audited: they concern
// no account, and every garbage token would otherwise grow the hash-chained log (they are
// counted in the request metrics instead).
var Ops = op.Table{
	{Name: MethodLogin, Roles: []string{authz.Public}, Write: true, Rate: RateCredentials},
	{Name: MethodValidate, Roles: []string{authz.Authenticated}},
	{Name: MethodRefresh, Roles: []string{authz.Public}, Write: true},
	{Name: MethodLogout, Roles: []string{authz.Public}, Write: true},
	{Name: MethodJWKS, Roles: []string{authz.Public}},
	{Name: MethodCreateUser, Roles: []string{authz.RoleAdmin}, Write: true, Action: ActionUserCreate},
	{Name: MethodListUsers, Roles: []string{authz.RoleAdmin}, Action: ActionUserRead},
	{Name: MethodGetUser, Roles: []string{authz.RoleAdmin}, Action: ActionUserRead},
	{Name: MethodUpdateUser, Roles: []string{authz.RoleAdmin}, Write: true, Action: ActionUserUpdate},
	{Name: MethodAudit, Roles: []string{authz.RoleAdmin, authz.RolePrivacy}, Action: ActionAuditRead},
	{Name: MethodVerifyAudit, Roles: []string{authz.RoleAdmin}, Action: ActionVerifyAudit},
	{Name: MethodSetPassword, Roles: []string{authz.Public}, Write: true, Rate: RateCredentials},
	{Name: MethodChangePassword, Roles: []string{authz.Authenticated}, Write: true, Rate: RateCredentials},
	{Name: MethodResetPassword, Roles: []string{authz.RoleAdmin}, Write: true, Action: ActionPasswordReset},
	// Any role manages its own factor; the challenge is the credential of the login steps.
	{Name: MethodEnrolTOTP, Roles: []string{authz.Authenticated}, Write: true, Rate: RateCredentials},
	{Name: MethodConfirmTOTP, Roles: []string{authz.Authenticated}, Write: true, Rate: RateCredentials},
	{Name: MethodDisableTOTP, Roles: []string{authz.Authenticated}, Write: true, Rate: RateCredentials},
	{Name: MethodLoginMFA, Roles: []string{authz.Public}, Write: true, Rate: RateCredentials},
	{Name: MethodLoginEnrolTOTP, Roles: []string{authz.Public}, Write: true, Rate: RateCredentials},
	{Name: MethodLoginConfirmTOTP, Roles: []string{authz.Public}, Write: true, Rate: RateCredentials},
	// Every role manages its own sessions (a user's only: the service refuses others).
	{Name: MethodListSessions, Roles: []string{authz.Authenticated}},
	{Name: MethodDeleteSession, Roles: []string{authz.Authenticated}, Write: true},
	{Name: MethodLogoutAll, Roles: []string{authz.Authenticated}, Write: true},
}

// Methods and Roles are derived from Ops.
var (
	Methods = Ops.Names()
	Roles   = Ops.Roles()
)

// Endpoint requests and responses that are not domain types of their own.
type (
	ValidateRequest  struct{}
	JWKSRequest      struct{}
	ListUsersRequest struct{}
	GetUserRequest   struct{ ID string }
	LogoutResponse   struct{}
	// SetPasswordResponse is SetPassword's empty answer (204 over REST).
	SetPasswordResponse struct{}
	// ChangePasswordResponse is ChangePassword's empty answer (204 over REST).
	ChangePasswordResponse struct{}
	// DisableTOTPResponse is DisableTOTP's empty answer (204 over REST).
	DisableTOTPResponse struct{}
	UsersResponse       struct{ Users []User }
	AuditResponse       struct{ Entries []AuditEntry }
)

// Set is the auth endpoint set: one go-kit endpoint per operation. Servers build it from a
// Service with NewEndpoints; clients build it from transport client endpoints, and Set
// itself implements Service, so a caller never knows which wire is under it.
type Set struct {
	LoginEndpoint            endpoint.Endpoint `op:"Login"`
	ValidateEndpoint         endpoint.Endpoint `op:"Validate"`
	RefreshEndpoint          endpoint.Endpoint `op:"Refresh"`
	LogoutEndpoint           endpoint.Endpoint `op:"Logout"`
	JWKSEndpoint             endpoint.Endpoint `op:"GetJwks"`
	CreateUserEndpoint       endpoint.Endpoint `op:"CreateUser"`
	ListUsersEndpoint        endpoint.Endpoint `op:"ListUsers"`
	GetUserEndpoint          endpoint.Endpoint `op:"GetUser"`
	UpdateUserEndpoint       endpoint.Endpoint `op:"UpdateUser"`
	AuditEndpoint            endpoint.Endpoint `op:"ListAudit"`
	SetPasswordEndpoint      endpoint.Endpoint `op:"SetPassword"`
	ChangePasswordEndpoint   endpoint.Endpoint `op:"ChangePassword"`
	ResetPasswordEndpoint    endpoint.Endpoint `op:"ResetPassword"`
	EnrolTOTPEndpoint        endpoint.Endpoint `op:"EnrolTotp"`
	ConfirmTOTPEndpoint      endpoint.Endpoint `op:"ConfirmTotp"`
	DisableTOTPEndpoint      endpoint.Endpoint `op:"DisableTotp"`
	LoginMFAEndpoint         endpoint.Endpoint `op:"LoginMfa"`
	LoginEnrolTOTPEndpoint   endpoint.Endpoint `op:"LoginEnrolTotp"`
	LoginConfirmTOTPEndpoint endpoint.Endpoint `op:"LoginConfirmTotp"`
	ListSessionsEndpoint     endpoint.Endpoint `op:"ListSessions"`
	DeleteSessionEndpoint    endpoint.Endpoint `op:"DeleteSession"`
	LogoutAllEndpoint        endpoint.Endpoint `op:"LogoutAll"`
	// VerifyAuditEndpoint walks the audit chain.
	VerifyAuditEndpoint endpoint.Endpoint `op:"VerifyAudit"`
}

// EndpointOptions configure the server-side endpoint middleware (pkg/platform/stack).
type EndpointOptions = stack.Options

// NewEndpoints wraps s in the endpoint set with, outermost first: metrics, logging,
// authentication and roles (o.Guard), and the per-endpoint rate limit. (Login throttling
// per account and address is the service's own, since it needs the outcome.)
func NewEndpoints(s Service, o EndpointOptions) Set {
	return stack.Bind(o, Ops, Set{
		LoginEndpoint: typed.Endpoint(s.Login),
		ValidateEndpoint: typed.Endpoint(func(ctx context.Context, _ ValidateRequest) (Validation, error) {
			return s.Validate(ctx)
		}),
		RefreshEndpoint: typed.Endpoint(s.Refresh),
		LogoutEndpoint: typed.Endpoint(func(ctx context.Context, r LogoutRequest) (LogoutResponse, error) {
			return LogoutResponse{}, s.Logout(ctx, r)
		}),
		JWKSEndpoint: typed.Endpoint(func(ctx context.Context, _ JWKSRequest) (authz.JWKS, error) {
			return s.JWKS(ctx)
		}),
		CreateUserEndpoint: typed.Endpoint(s.CreateUser),
		ListUsersEndpoint: typed.Endpoint(func(ctx context.Context, _ ListUsersRequest) (UsersResponse, error) {
			u, err := s.ListUsers(ctx)
			return UsersResponse{Users: u}, err
		}),
		GetUserEndpoint: typed.Endpoint(func(ctx context.Context, r GetUserRequest) (User, error) {
			return s.GetUser(ctx, r.ID)
		}),
		UpdateUserEndpoint: typed.Endpoint(s.UpdateUser),
		VerifyAuditEndpoint: typed.Endpoint(func(ctx context.Context, r VerifyAuditRequest) (audit.Report, error) {
			return s.VerifyAudit(audit.WithAgainstTopic(ctx, r.AgainstTopic))
		}),
		AuditEndpoint: typed.Endpoint(func(ctx context.Context, q AuditQuery) (AuditResponse, error) {
			e, err := s.Audit(ctx, q)
			return AuditResponse{Entries: e}, err
		}),
		SetPasswordEndpoint: typed.Endpoint(func(ctx context.Context, r SetPasswordRequest) (SetPasswordResponse, error) {
			return SetPasswordResponse{}, s.SetPassword(ctx, r)
		}),
		ChangePasswordEndpoint: typed.Endpoint(func(ctx context.Context, r ChangePasswordRequest) (ChangePasswordResponse, error) {
			return ChangePasswordResponse{}, s.ChangePassword(ctx, r)
		}),
		ResetPasswordEndpoint: typed.Endpoint(s.ResetPassword),
		EnrolTOTPEndpoint: typed.Endpoint(func(ctx context.Context, _ EnrolTOTPRequest) (TOTPEnrolment, error) {
			return s.EnrolTOTP(ctx)
		}),
		ConfirmTOTPEndpoint: typed.Endpoint(s.ConfirmTOTP),
		DisableTOTPEndpoint: typed.Endpoint(func(ctx context.Context, r DisableTOTPRequest) (DisableTOTPResponse, error) {
			return DisableTOTPResponse{}, s.DisableTOTP(ctx, r)
		}),
		LoginMFAEndpoint:         typed.Endpoint(s.LoginMFA),
		LoginEnrolTOTPEndpoint:   typed.Endpoint(s.LoginEnrolTOTP),
		LoginConfirmTOTPEndpoint: typed.Endpoint(s.LoginConfirmTOTP),
		ListSessionsEndpoint: typed.Endpoint(func(ctx context.Context, _ ListSessionsRequest) (SessionsResponse, error) {
			l, err := s.ListSessions(ctx)
			return SessionsResponse{Sessions: l}, err
		}),
		DeleteSessionEndpoint: typed.Endpoint(func(ctx context.Context, r DeleteSessionRequest) (DeleteSessionResponse, error) {
			return DeleteSessionResponse{}, s.DeleteSession(ctx, r)
		}),
		LogoutAllEndpoint: typed.Endpoint(func(ctx context.Context, _ LogoutAllRequest) (LogoutAllResponse, error) {
			return LogoutAllResponse{}, s.LogoutAll(ctx)
		}),
	})
}

// DeniedAuditor returns the guard's hook that writes refused calls on users and the audit
// log to the audit log with outcome "denied", naming the user the request was about when it
// named a well-formed one. Refused validations are not audited: they concern no account,
// and every garbage token would otherwise grow the hash-chained log (they are counted in the
// request metrics instead).
func DeniedAuditor(log AuditLog) authz.DeniedFunc {
	return audit.Denied(log, Ops.Actions(), func(req any) string {
		var id string
		switch r := req.(type) {
		case GetUserRequest:
			id = r.ID
		case UpdateUserRequest:
			id = r.ID
		case ResetPasswordRequest:
			id = r.ID
		}
		if canonical, err := parseID(id); err == nil {
			return canonical
		}
		return ""
	})
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
func (s Set) CreateUser(ctx context.Context, req CreateUserRequest) (CreatedUser, error) {
	return typed.Call[CreatedUser](ctx, s.CreateUserEndpoint, req)
}

// SetPassword implements Service over the endpoint set.
func (s Set) SetPassword(ctx context.Context, req SetPasswordRequest) error {
	_, err := typed.Call[SetPasswordResponse](ctx, s.SetPasswordEndpoint, req)
	return err
}

// ChangePassword implements Service over the endpoint set.
func (s Set) ChangePassword(ctx context.Context, req ChangePasswordRequest) error {
	_, err := typed.Call[ChangePasswordResponse](ctx, s.ChangePasswordEndpoint, req)
	return err
}

// ResetPassword implements Service over the endpoint set.
func (s Set) ResetPassword(ctx context.Context, req ResetPasswordRequest) (ResetPassword, error) {
	return typed.Call[ResetPassword](ctx, s.ResetPasswordEndpoint, req)
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
// VerifyAudit implements Service over the endpoint set.
func (s Set) VerifyAudit(ctx context.Context) (audit.Report, error) {
	return typed.Call[audit.Report](ctx, s.VerifyAuditEndpoint, VerifyAuditRequest{AgainstTopic: audit.AgainstTopic(ctx)})
}

func (s Set) Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	r, err := typed.Call[AuditResponse](ctx, s.AuditEndpoint, q)
	return r.Entries, err
}

// ListSessions implements Service over the endpoint set.
func (s Set) ListSessions(ctx context.Context) ([]Session, error) {
	r, err := typed.Call[SessionsResponse](ctx, s.ListSessionsEndpoint, ListSessionsRequest{})
	return r.Sessions, err
}

// DeleteSession implements Service over the endpoint set.
func (s Set) DeleteSession(ctx context.Context, req DeleteSessionRequest) error {
	_, err := typed.Call[DeleteSessionResponse](ctx, s.DeleteSessionEndpoint, req)
	return err
}

// LogoutAll implements Service over the endpoint set.
func (s Set) LogoutAll(ctx context.Context) error {
	_, err := typed.Call[LogoutAllResponse](ctx, s.LogoutAllEndpoint, LogoutAllRequest{})
	return err
}

// Map returns the set with f around every endpoint it has (op.Map): clients put one policy
// (deadline, retry, circuit breaker) in front of a whole upstream with it.
func (s Set) Map(f op.Func) Set { return op.Map(s, f) }
