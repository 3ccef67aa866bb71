package grpctransport

import (
	"google.golang.org/grpc"

	"github.com/pms/pms/pkg/auth"
	authv1 "github.com/pms/pms/proto/pms/auth/v1"
)

// NewAuthClient returns the auth endpoint set over conn, so a caller (the gateway, a test,
// another service) holds an auth.Service without knowing gRPC is under it. Each call
// forwards the context's request id, client address and bearer token as metadata, and its
// error comes back as the *errs.Error the server raised (FromStatus). Deadlines are the
// caller's: give ctx one.
func NewAuthClient(conn *grpc.ClientConn) auth.Set {
	c := clientFactory{conn: conn, service: authv1.AuthService_ServiceDesc.ServiceName}
	return auth.Set{
		LoginEndpoint:      c.endpoint(auth.MethodLogin, total(authLoginToPB), total(authPairFromPB), &authv1.TokenPair{}),
		ValidateEndpoint:   c.endpoint(auth.MethodValidate, total(authValidateToPB), total(authValidationFromPB), &authv1.Validation{}),
		RefreshEndpoint:    c.endpoint(auth.MethodRefresh, total(authRefreshToPB), total(authPairFromPB), &authv1.TokenPair{}),
		LogoutEndpoint:     c.endpoint(auth.MethodLogout, total(authLogoutToPB), total(authLoggedOutFromPB), &authv1.LogoutResponse{}),
		JWKSEndpoint:       c.endpoint(auth.MethodJWKS, total(authJWKSRequestToPB), total(authJWKSFromPB), &authv1.Jwks{}),
		CreateUserEndpoint: c.endpoint(auth.MethodCreateUser, total(authCreateUserToPB), total(authUserFromPB), &authv1.User{}),
		ListUsersEndpoint:  c.endpoint(auth.MethodListUsers, total(authListUsersToPB), total(authUsersFromPB), &authv1.ListUsersResponse{}),
		GetUserEndpoint:    c.endpoint(auth.MethodGetUser, total(authGetUserToPB), total(authUserFromPB), &authv1.User{}),
		UpdateUserEndpoint: c.endpoint(auth.MethodUpdateUser, total(authUpdateUserToPB), total(authUserFromPB), &authv1.User{}),
		AuditEndpoint:      c.endpoint(auth.MethodAudit, total(authAuditQueryToPB), total(authAuditEntriesFromPB), &authv1.ListAuditResponse{}),
	}
}
