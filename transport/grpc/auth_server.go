package grpctransport

import (
	"context"

	kitgrpc "github.com/go-kit/kit/transport/grpc"
	"google.golang.org/grpc"

	"github.com/pms/pms/pkg/auth"
	"github.com/pms/pms/pkg/platform/typed"
	authv1 "github.com/pms/pms/proto/pms/auth/v1"
)

// RegisterAuthServer serves the auth endpoint set as pms.auth.v1.AuthService on s (a server
// from NewServer, which supplies request ids, client addresses, tokens, health, reflection
// and panic recovery).
func RegisterAuthServer(s *grpc.Server, set auth.Set) {
	authv1.RegisterAuthServiceServer(s, newAuthServer(set))
}

func newAuthServer(set auth.Set) *authServer {
	return &authServer{
		login:      kitgrpc.NewServer(set.LoginEndpoint, total(authLoginFromPB), total(authPairToPB)),
		validate:   kitgrpc.NewServer(set.ValidateEndpoint, total(authValidateFromPB), total(authValidationToPB)),
		refresh:    kitgrpc.NewServer(set.RefreshEndpoint, total(authRefreshFromPB), total(authPairToPB)),
		logout:     kitgrpc.NewServer(set.LogoutEndpoint, total(authLogoutFromPB), total(authLoggedOutToPB)),
		jwks:       kitgrpc.NewServer(set.JWKSEndpoint, total(authJWKSRequestFromPB), total(authJWKSToPB)),
		createUser: kitgrpc.NewServer(set.CreateUserEndpoint, total(authCreateUserFromPB), total(authUserToPB)),
		listUsers:  kitgrpc.NewServer(set.ListUsersEndpoint, total(authListUsersFromPB), total(authUsersToPB)),
		getUser:    kitgrpc.NewServer(set.GetUserEndpoint, total(authGetUserFromPB), total(authUserToPB)),
		updateUser: kitgrpc.NewServer(set.UpdateUserEndpoint, total(authUpdateUserFromPB), total(authUserToPB)),
		audit:      kitgrpc.NewServer(set.AuditEndpoint, typed.Reject(convert(authAuditQueryFromPB)), total(authAuditEntriesToPB)),
	}
}

// authServer binds one go-kit handler to each method of AuthService.
type authServer struct {
	authv1.UnimplementedAuthServiceServer
	login, validate, refresh, logout, jwks, createUser, listUsers, getUser, updateUser, audit kitgrpc.Handler
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
func (s *authServer) CreateUser(ctx context.Context, r *authv1.CreateUserRequest) (*authv1.User, error) {
	return serve[*authv1.User](ctx, s.createUser, r)
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
