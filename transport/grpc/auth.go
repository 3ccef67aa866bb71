package grpctransport

import (
	"context"

	kitgrpc "github.com/go-kit/kit/transport/grpc"
	"github.com/pms/pms/pkg/auth"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/typed"
	authv1 "github.com/pms/pms/proto/pms/auth/v1"
	billingv1 "github.com/pms/pms/proto/pms/billing/v1"
	"google.golang.org/grpc"
)

// RegisterAuthServer serves the auth endpoint set as pms.auth.v1.AuthService on s (a server
// from NewServer, which supplies request ids, client addresses, tokens, health, reflection
// and panic recovery).
func RegisterAuthServer(s *grpc.Server, set auth.Set) {
	authv1.RegisterAuthServiceServer(s, newAuthServer(set))
}

func newAuthServer(set auth.Set) *authServer {
	return &authServer{
		login:          kitgrpc.NewServer(set.LoginEndpoint, total(authLoginFromPB), total(authPairToPB)),
		validate:       kitgrpc.NewServer(set.ValidateEndpoint, total(authValidateFromPB), total(authValidationToPB)),
		refresh:        kitgrpc.NewServer(set.RefreshEndpoint, total(authRefreshFromPB), total(authPairToPB)),
		logout:         kitgrpc.NewServer(set.LogoutEndpoint, total(authLogoutFromPB), total(authLoggedOutToPB)),
		jwks:           kitgrpc.NewServer(set.JWKSEndpoint, total(authJWKSRequestFromPB), total(authJWKSToPB)),
		createUser:     kitgrpc.NewServer(set.CreateUserEndpoint, total(authCreateUserFromPB), total(authCreatedUserToPB)),
		listUsers:      kitgrpc.NewServer(set.ListUsersEndpoint, total(authListUsersFromPB), total(authUsersToPB)),
		getUser:        kitgrpc.NewServer(set.GetUserEndpoint, total(authGetUserFromPB), total(authUserToPB)),
		updateUser:     kitgrpc.NewServer(set.UpdateUserEndpoint, total(authUpdateUserFromPB), total(authUserToPB)),
		audit:          kitgrpc.NewServer(set.AuditEndpoint, typed.Reject(convert(authAuditQueryFromPB)), total(authAuditEntriesToPB)),
		setPassword:    kitgrpc.NewServer(set.SetPasswordEndpoint, total(authSetPasswordFromPB), total(authPasswordSetToPB)),
		changePassword: kitgrpc.NewServer(set.ChangePasswordEndpoint, total(authChangePasswordFromPB), total(authPasswordChangedToPB)),
		resetPassword:  kitgrpc.NewServer(set.ResetPasswordEndpoint, total(authResetPasswordFromPB), total(authResetToPB)),
		verify: kitgrpc.NewServer(set.VerifyAuditEndpoint, total(func(r *billingv1.VerifyAuditRequest) auth.VerifyAuditRequest {
			return auth.VerifyAuditRequest{AgainstTopic: r.GetAgainstTopic()}
		}), total(auditVerdictToPB)),
		mfa:             newAuthMFAServer(set),
		sessionHandlers: newSessionHandlers(set),
	}
}

// authServer binds one go-kit handler to each method of AuthService.
type authServer struct {
	authv1.UnimplementedAuthServiceServer
	sessionHandlers
	login, validate, refresh, logout, jwks, createUser, listUsers, getUser, updateUser, audit, setPassword, changePassword, resetPassword kitgrpc.Handler
	mfa                                                                                                                                   authMFAServer
	verify                                                                                                                                kitgrpc.Handler
}

// VerifyAudit implements authv1.AuthServiceServer.
func (s *authServer) VerifyAudit(ctx context.Context, r *billingv1.VerifyAuditRequest) (*billingv1.AuditVerdict, error) {
	return serve[*billingv1.AuditVerdict](ctx, s.verify, r)
}

// Login implements authv1.AuthServiceServer.
func (s *authServer) Login(ctx context.Context, r *authv1.LoginRequest) (*authv1.TokenPair, error) {
	return serve[*authv1.TokenPair](ctx, s.login, r)
}

// Validate implements authv1.AuthServiceServer.
func (s *authServer) Validate(ctx context.Context, r *authv1.ValidateRequest) (*authv1.Validation, error) {
	return serve[*authv1.Validation](ctx, s.validate, r)
}

// Refresh implements authv1.AuthServiceServer.
func (s *authServer) Refresh(ctx context.Context, r *authv1.RefreshRequest) (*authv1.TokenPair, error) {
	return serve[*authv1.TokenPair](ctx, s.refresh, r)
}

// Logout implements authv1.AuthServiceServer.
func (s *authServer) Logout(ctx context.Context, r *authv1.LogoutRequest) (*authv1.LogoutResponse, error) {
	return serve[*authv1.LogoutResponse](ctx, s.logout, r)
}

// GetJwks implements authv1.AuthServiceServer.
func (s *authServer) GetJwks(ctx context.Context, r *authv1.GetJwksRequest) (*authv1.Jwks, error) {
	return serve[*authv1.Jwks](ctx, s.jwks, r)
}

// CreateUser implements authv1.AuthServiceServer.
func (s *authServer) CreateUser(ctx context.Context, r *authv1.CreateUserRequest) (*authv1.CreatedUser, error) {
	return serve[*authv1.CreatedUser](ctx, s.createUser, r)
}

// SetPassword implements authv1.AuthServiceServer.
func (s *authServer) SetPassword(ctx context.Context, r *authv1.SetPasswordRequest) (*authv1.SetPasswordResponse, error) {
	return serve[*authv1.SetPasswordResponse](ctx, s.setPassword, r)
}

// ChangePassword implements authv1.AuthServiceServer.
func (s *authServer) ChangePassword(ctx context.Context, r *authv1.ChangePasswordRequest) (*authv1.ChangePasswordResponse, error) {
	return serve[*authv1.ChangePasswordResponse](ctx, s.changePassword, r)
}

// ResetPassword implements authv1.AuthServiceServer.
func (s *authServer) ResetPassword(ctx context.Context, r *authv1.ResetPasswordRequest) (*authv1.ResetPasswordResponse, error) {
	return serve[*authv1.ResetPasswordResponse](ctx, s.resetPassword, r)
}

// ListUsers implements authv1.AuthServiceServer.
func (s *authServer) ListUsers(ctx context.Context, r *authv1.ListUsersRequest) (*authv1.ListUsersResponse, error) {
	return serve[*authv1.ListUsersResponse](ctx, s.listUsers, r)
}

// GetUser implements authv1.AuthServiceServer.
func (s *authServer) GetUser(ctx context.Context, r *authv1.GetUserRequest) (*authv1.User, error) {
	return serve[*authv1.User](ctx, s.getUser, r)
}

// UpdateUser implements authv1.AuthServiceServer.
func (s *authServer) UpdateUser(ctx context.Context, r *authv1.UpdateUserRequest) (*authv1.User, error) {
	return serve[*authv1.User](ctx, s.updateUser, r)
}

// ListAudit implements authv1.AuthServiceServer.
func (s *authServer) ListAudit(ctx context.Context, r *authv1.ListAuditRequest) (*authv1.ListAuditResponse, error) {
	return serve[*authv1.ListAuditResponse](ctx, s.audit, r)
}

// NewAuthClient returns the auth endpoint set over conn, so a caller (the gateway, a test,
// another service) holds an auth.Service without knowing gRPC is under it. Each call
// forwards the context's request id, client address and bearer token as metadata, and its
// error comes back as the *errs.Error the server raised (FromStatus). Deadlines are the
// caller's: give ctx one.
func NewAuthClient(conn *grpc.ClientConn) auth.Set {
	c := clientFactory{conn: conn, service: authv1.AuthService_ServiceDesc.ServiceName}
	set := auth.Set{
		LoginEndpoint:      c.endpoint(auth.MethodLogin, total(authLoginToPB), total(authPairFromPB), &authv1.TokenPair{}),
		ValidateEndpoint:   c.endpoint(auth.MethodValidate, total(authValidateToPB), total(authValidationFromPB), &authv1.Validation{}),
		RefreshEndpoint:    c.endpoint(auth.MethodRefresh, total(authRefreshToPB), total(authPairFromPB), &authv1.TokenPair{}),
		LogoutEndpoint:     c.endpoint(auth.MethodLogout, total(authLogoutToPB), total(authLoggedOutFromPB), &authv1.LogoutResponse{}),
		JWKSEndpoint:       c.endpoint(auth.MethodJWKS, total(authJWKSRequestToPB), total(authJWKSFromPB), &authv1.Jwks{}),
		CreateUserEndpoint: c.endpoint(auth.MethodCreateUser, total(authCreateUserToPB), total(authCreatedUserFromPB), &authv1.CreatedUser{}),
		ListUsersEndpoint:  c.endpoint(auth.MethodListUsers, total(authListUsersToPB), total(authUsersFromPB), &authv1.ListUsersResponse{}),
		GetUserEndpoint:    c.endpoint(auth.MethodGetUser, total(authGetUserToPB), total(authUserFromPB), &authv1.User{}),
		UpdateUserEndpoint: c.endpoint(auth.MethodUpdateUser, total(authUpdateUserToPB), total(authUserFromPB), &authv1.User{}),
		AuditEndpoint:      c.endpoint(auth.MethodAudit, total(authAuditQueryToPB), total(authAuditEntriesFromPB), &authv1.ListAuditResponse{}),
		VerifyAuditEndpoint: c.endpoint(auth.MethodVerifyAudit, total(func(r auth.VerifyAuditRequest) *billingv1.VerifyAuditRequest {
			return &billingv1.VerifyAuditRequest{AgainstTopic: r.AgainstTopic}
		}), total(auditVerdictFromPB), &billingv1.AuditVerdict{}),
		SetPasswordEndpoint:    c.endpoint(auth.MethodSetPassword, total(authSetPasswordToPB), total(authPasswordSetFromPB), &authv1.SetPasswordResponse{}),
		ResetPasswordEndpoint:  c.endpoint(auth.MethodResetPassword, total(authResetPasswordToPB), total(authResetFromPB), &authv1.ResetPasswordResponse{}),
		ChangePasswordEndpoint: c.endpoint(auth.MethodChangePassword, total(authChangePasswordToPB), total(authPasswordChangedFromPB), &authv1.ChangePasswordResponse{}),
		ListSessionsEndpoint:   c.endpoint(auth.MethodListSessions, total(authListSessionsToPB), total(authSessionsFromPB), &authv1.ListSessionsResponse{}),
		DeleteSessionEndpoint:  c.endpoint(auth.MethodDeleteSession, total(authDeleteSessionToPB), total(authSessionDeletedFromPB), &authv1.DeleteSessionResponse{}),
		LogoutAllEndpoint:      c.endpoint(auth.MethodLogoutAll, total(authLogoutAllToPB), total(authLoggedOutAllFromPB), &authv1.LogoutAllResponse{}),
	}
	authMFAClient(c, &set)
	return set
}

// The conversions between the auth domain and its messages, one pair per type, shared by
// the server binding and the client. Messages are read through their getters, so an absent
// message reads as the zero value and never panics.

func authLoginToPB(r auth.LoginRequest) *authv1.LoginRequest {
	return &authv1.LoginRequest{Email: r.Email, Password: r.Password, DeviceToken: r.DeviceToken}
}

func authLoginFromPB(r *authv1.LoginRequest) auth.LoginRequest {
	return auth.LoginRequest{Email: r.GetEmail(), Password: r.GetPassword(), DeviceToken: r.GetDeviceToken()}
}

func authPairToPB(p auth.TokenPair) *authv1.TokenPair {
	return &authv1.TokenPair{Token: p.Token, TokenType: p.TokenType, ExpiresIn: p.ExpiresIn, RefreshToken: p.RefreshToken, DeviceToken: p.DeviceToken}
}

func authPairFromPB(p *authv1.TokenPair) auth.TokenPair {
	return auth.TokenPair{Token: p.GetToken(), TokenType: p.GetTokenType(), ExpiresIn: p.GetExpiresIn(), RefreshToken: p.GetRefreshToken(),
		DeviceToken: p.GetDeviceToken()}
}

func authValidateToPB(auth.ValidateRequest) *authv1.ValidateRequest { return &authv1.ValidateRequest{} }

func authValidateFromPB(*authv1.ValidateRequest) auth.ValidateRequest { return auth.ValidateRequest{} }

func authValidationToPB(v auth.Validation) *authv1.Validation {
	return &authv1.Validation{Sub: v.Sub, Email: v.Email, Role: v.Role, Exp: v.Exp}
}

func authValidationFromPB(v *authv1.Validation) auth.Validation {
	return auth.Validation{Sub: v.GetSub(), Email: v.GetEmail(), Role: v.GetRole(), Exp: v.GetExp()}
}

func authRefreshToPB(r auth.RefreshRequest) *authv1.RefreshRequest {
	return &authv1.RefreshRequest{RefreshToken: r.RefreshToken}
}

func authRefreshFromPB(r *authv1.RefreshRequest) auth.RefreshRequest {
	return auth.RefreshRequest{RefreshToken: r.GetRefreshToken()}
}

func authLogoutToPB(r auth.LogoutRequest) *authv1.LogoutRequest {
	return &authv1.LogoutRequest{RefreshToken: r.RefreshToken}
}

func authLogoutFromPB(r *authv1.LogoutRequest) auth.LogoutRequest {
	return auth.LogoutRequest{RefreshToken: r.GetRefreshToken()}
}

func authLoggedOutToPB(auth.LogoutResponse) *authv1.LogoutResponse { return &authv1.LogoutResponse{} }

func authLoggedOutFromPB(*authv1.LogoutResponse) auth.LogoutResponse { return auth.LogoutResponse{} }

func authJWKSRequestToPB(auth.JWKSRequest) *authv1.GetJwksRequest { return &authv1.GetJwksRequest{} }

func authJWKSRequestFromPB(*authv1.GetJwksRequest) auth.JWKSRequest { return auth.JWKSRequest{} }

func authJWKSToPB(s authz.JWKS) *authv1.Jwks {
	return &authv1.Jwks{Keys: mapSlice(s.Keys, func(k authz.JWK) *authv1.Jwk {
		return &authv1.Jwk{Kty: k.Kty, Crv: k.Crv, X: k.X, Kid: k.Kid, Alg: k.Alg, Use: k.Use}
	})}
}

func authJWKSFromPB(s *authv1.Jwks) authz.JWKS {
	return authz.JWKS{Keys: mapSlice(s.GetKeys(), func(k *authv1.Jwk) authz.JWK {
		return authz.JWK{Kty: k.GetKty(), Crv: k.GetCrv(), X: k.GetX(), Kid: k.GetKid(), Alg: k.GetAlg(), Use: k.GetUse()}
	})}
}

func authUserToPB(u auth.User) *authv1.User {
	return &authv1.User{Id: u.ID, Email: u.Email, Role: u.Role, Disabled: u.Disabled,
		CreatedAt: toTimestamp(u.CreatedAt), UpdatedAt: toTimestamp(u.UpdatedAt)}
}

func authUserFromPB(u *authv1.User) auth.User {
	return auth.User{ID: u.GetId(), Email: u.GetEmail(), Role: u.GetRole(), Disabled: u.GetDisabled(),
		CreatedAt: fromTimestamp(u.GetCreatedAt()), UpdatedAt: fromTimestamp(u.GetUpdatedAt())}
}

func authCreatedUserToPB(c auth.CreatedUser) *authv1.CreatedUser {
	out := &authv1.CreatedUser{Id: c.ID, Email: c.Email, Role: c.Role, Disabled: c.Disabled,
		CreatedAt: toTimestamp(c.CreatedAt), UpdatedAt: toTimestamp(c.UpdatedAt), InviteToken: c.InviteToken}
	if c.InviteExpiresAt != nil {
		out.InviteExpiresAt = toTimestamp(*c.InviteExpiresAt)
	}
	return out
}

func authCreatedUserFromPB(c *authv1.CreatedUser) auth.CreatedUser {
	out := auth.CreatedUser{User: auth.User{ID: c.GetId(), Email: c.GetEmail(), Role: c.GetRole(), Disabled: c.GetDisabled(),
		CreatedAt: fromTimestamp(c.GetCreatedAt()), UpdatedAt: fromTimestamp(c.GetUpdatedAt())}, InviteToken: c.GetInviteToken()}
	if c.GetInviteExpiresAt() != nil {
		at := fromTimestamp(c.GetInviteExpiresAt())
		out.InviteExpiresAt = &at
	}
	return out
}

func authSetPasswordToPB(r auth.SetPasswordRequest) *authv1.SetPasswordRequest {
	return &authv1.SetPasswordRequest{Token: r.Token, NewPassword: r.NewPassword}
}

func authSetPasswordFromPB(r *authv1.SetPasswordRequest) auth.SetPasswordRequest {
	return auth.SetPasswordRequest{Token: r.GetToken(), NewPassword: r.GetNewPassword()}
}

func authPasswordSetToPB(auth.SetPasswordResponse) *authv1.SetPasswordResponse {
	return &authv1.SetPasswordResponse{}
}

func authPasswordSetFromPB(*authv1.SetPasswordResponse) auth.SetPasswordResponse {
	return auth.SetPasswordResponse{}
}

func authCreateUserToPB(r auth.CreateUserRequest) *authv1.CreateUserRequest {
	return &authv1.CreateUserRequest{Email: r.Email, Password: r.Password, Role: r.Role}
}

func authCreateUserFromPB(r *authv1.CreateUserRequest) auth.CreateUserRequest {
	return auth.CreateUserRequest{Email: r.GetEmail(), Password: r.GetPassword(), Role: r.GetRole()}
}

func authListUsersToPB(auth.ListUsersRequest) *authv1.ListUsersRequest {
	return &authv1.ListUsersRequest{}
}

func authListUsersFromPB(*authv1.ListUsersRequest) auth.ListUsersRequest {
	return auth.ListUsersRequest{}
}

func authUsersToPB(r auth.UsersResponse) *authv1.ListUsersResponse {
	return &authv1.ListUsersResponse{Users: mapSlice(r.Users, authUserToPB)}
}

func authUsersFromPB(r *authv1.ListUsersResponse) auth.UsersResponse {
	return auth.UsersResponse{Users: mapSlice(r.GetUsers(), authUserFromPB)}
}

func authGetUserToPB(r auth.GetUserRequest) *authv1.GetUserRequest {
	return &authv1.GetUserRequest{Id: r.ID}
}

func authGetUserFromPB(r *authv1.GetUserRequest) auth.GetUserRequest {
	return auth.GetUserRequest{ID: r.GetId()}
}

func authUpdateUserToPB(r auth.UpdateUserRequest) *authv1.UpdateUserRequest {
	return &authv1.UpdateUserRequest{Id: r.ID, Role: clone(r.Role), Disabled: clone(r.Disabled)}
}

func authUpdateUserFromPB(r *authv1.UpdateUserRequest) auth.UpdateUserRequest {
	return auth.UpdateUserRequest{ID: r.GetId(), Role: clone(r.Role), Disabled: clone(r.Disabled)}
}

func authAuditQueryToPB(q auth.AuditQuery) *authv1.ListAuditRequest {
	return &authv1.ListAuditRequest{UserId: q.UserID, Actor: q.Actor, From: toTimestamp(q.From), To: toTimestamp(q.To), Limit: int32Of(q.Limit)}
}

// authAuditQueryFromPB refuses an out-of-range Timestamp with the contract's field names.
func authAuditQueryFromPB(r *authv1.ListAuditRequest) (auth.AuditQuery, error) {
	var f errs.Fields
	q := auth.AuditQuery{
		UserID: r.GetUserId(),
		Actor:  r.GetActor(),
		From:   timestampField(&f, "from", r.GetFrom()),
		To:     timestampField(&f, "to", r.GetTo()),
		Limit:  int(r.GetLimit()),
	}
	return q, f.Err()
}

func authAuditEntriesToPB(r auth.AuditResponse) *authv1.ListAuditResponse {
	return &authv1.ListAuditResponse{Entries: mapSlice(r.Entries, func(e auth.AuditEntry) *authv1.AuditEntry {
		return &authv1.AuditEntry{Id: e.ID, At: toTimestamp(e.At), Actor: e.Actor, Role: e.Role, Action: e.Action,
			UserId: e.UserID, Outcome: e.Outcome, RequestId: e.RequestID, ClientAddress: e.ClientAddress}
	})}
}

func authAuditEntriesFromPB(r *authv1.ListAuditResponse) auth.AuditResponse {
	return auth.AuditResponse{Entries: mapSlice(r.GetEntries(), func(e *authv1.AuditEntry) auth.AuditEntry {
		return auth.AuditEntry{ID: e.GetId(), At: fromTimestamp(e.GetAt()), Actor: e.GetActor(), Role: e.GetRole(),
			Action: e.GetAction(), UserID: e.GetUserId(), Outcome: e.GetOutcome(), RequestID: e.GetRequestId(),
			ClientAddress: e.GetClientAddress()}
	})}
}

func authChangePasswordToPB(r auth.ChangePasswordRequest) *authv1.ChangePasswordRequest {
	return &authv1.ChangePasswordRequest{CurrentPassword: r.CurrentPassword, NewPassword: r.NewPassword}
}

func authChangePasswordFromPB(r *authv1.ChangePasswordRequest) auth.ChangePasswordRequest {
	return auth.ChangePasswordRequest{CurrentPassword: r.GetCurrentPassword(), NewPassword: r.GetNewPassword()}
}

func authPasswordChangedToPB(auth.ChangePasswordResponse) *authv1.ChangePasswordResponse {
	return &authv1.ChangePasswordResponse{}
}

func authPasswordChangedFromPB(*authv1.ChangePasswordResponse) auth.ChangePasswordResponse {
	return auth.ChangePasswordResponse{}
}

func authResetPasswordToPB(r auth.ResetPasswordRequest) *authv1.ResetPasswordRequest {
	return &authv1.ResetPasswordRequest{Id: r.ID}
}

func authResetPasswordFromPB(r *authv1.ResetPasswordRequest) auth.ResetPasswordRequest {
	return auth.ResetPasswordRequest{ID: r.GetId()}
}

func authResetToPB(r auth.ResetPassword) *authv1.ResetPasswordResponse {
	return &authv1.ResetPasswordResponse{ResetToken: r.ResetToken, ResetExpiresAt: toTimestamp(r.ResetExpiresAt)}
}

func authResetFromPB(r *authv1.ResetPasswordResponse) auth.ResetPassword {
	return auth.ResetPassword{ResetToken: r.GetResetToken(), ResetExpiresAt: fromTimestamp(r.GetResetExpiresAt())}
}
