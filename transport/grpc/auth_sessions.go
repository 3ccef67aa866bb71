package grpctransport

import (
	"context"

	kitgrpc "github.com/go-kit/kit/transport/grpc"

	"github.com/pms/pms/pkg/auth"
	authv1 "github.com/pms/pms/proto/pms/auth/v1"
)

// sessionHandlers binds the session operations of AuthService (ListSessions, DeleteSession,
// LogoutAll); authServer embeds it and serves them (below).
type sessionHandlers struct {
	listSessions, deleteSession, logoutAll kitgrpc.Handler
}

func newSessionHandlers(set auth.Set) sessionHandlers {
	return sessionHandlers{
		listSessions:  kitgrpc.NewServer(set.ListSessionsEndpoint, total(authListSessionsFromPB), total(authSessionsToPB)),
		deleteSession: kitgrpc.NewServer(set.DeleteSessionEndpoint, total(authDeleteSessionFromPB), total(authSessionDeletedToPB)),
		logoutAll:     kitgrpc.NewServer(set.LogoutAllEndpoint, total(authLogoutAllFromPB), total(authLoggedOutAllToPB)),
	}
}

// ListSessions implements authv1.AuthServiceServer.
func (s *authServer) ListSessions(ctx context.Context, r *authv1.ListSessionsRequest) (*authv1.ListSessionsResponse, error) {
	return serve[*authv1.ListSessionsResponse](ctx, s.listSessions, r)
}

// DeleteSession implements authv1.AuthServiceServer.
func (s *authServer) DeleteSession(ctx context.Context, r *authv1.DeleteSessionRequest) (*authv1.DeleteSessionResponse, error) {
	return serve[*authv1.DeleteSessionResponse](ctx, s.deleteSession, r)
}

// LogoutAll implements authv1.AuthServiceServer.
func (s *authServer) LogoutAll(ctx context.Context, r *authv1.LogoutAllRequest) (*authv1.LogoutAllResponse, error) {
	return serve[*authv1.LogoutAllResponse](ctx, s.logoutAll, r)
}

func authListSessionsToPB(auth.ListSessionsRequest) *authv1.ListSessionsRequest {
	return &authv1.ListSessionsRequest{}
}

func authListSessionsFromPB(*authv1.ListSessionsRequest) auth.ListSessionsRequest {
	return auth.ListSessionsRequest{}
}

func authSessionsToPB(r auth.SessionsResponse) *authv1.ListSessionsResponse {
	return &authv1.ListSessionsResponse{Sessions: mapSlice(r.Sessions, func(s auth.Session) *authv1.Session {
		return &authv1.Session{Id: s.ID, CreatedAt: toTimestamp(s.CreatedAt), LastUsedAt: toTimestamp(s.LastUsedAt),
			ClientAddress: s.ClientAddress, UserAgent: s.UserAgent, Current: s.Current}
	})}
}

func authSessionsFromPB(r *authv1.ListSessionsResponse) auth.SessionsResponse {
	return auth.SessionsResponse{Sessions: mapSlice(r.GetSessions(), func(s *authv1.Session) auth.Session {
		return auth.Session{ID: s.GetId(), CreatedAt: fromTimestamp(s.GetCreatedAt()), LastUsedAt: fromTimestamp(s.GetLastUsedAt()),
			ClientAddress: s.GetClientAddress(), UserAgent: s.GetUserAgent(), Current: s.GetCurrent()}
	})}
}

func authDeleteSessionToPB(r auth.DeleteSessionRequest) *authv1.DeleteSessionRequest {
	return &authv1.DeleteSessionRequest{Id: r.ID}
}

func authDeleteSessionFromPB(r *authv1.DeleteSessionRequest) auth.DeleteSessionRequest {
	return auth.DeleteSessionRequest{ID: r.GetId()}
}

func authSessionDeletedToPB(auth.DeleteSessionResponse) *authv1.DeleteSessionResponse {
	return &authv1.DeleteSessionResponse{}
}

func authSessionDeletedFromPB(*authv1.DeleteSessionResponse) auth.DeleteSessionResponse {
	return auth.DeleteSessionResponse{}
}

func authLogoutAllToPB(auth.LogoutAllRequest) *authv1.LogoutAllRequest {
	return &authv1.LogoutAllRequest{}
}

func authLogoutAllFromPB(*authv1.LogoutAllRequest) auth.LogoutAllRequest {
	return auth.LogoutAllRequest{}
}

func authLoggedOutAllToPB(auth.LogoutAllResponse) *authv1.LogoutAllResponse {
	return &authv1.LogoutAllResponse{}
}

func authLoggedOutAllFromPB(*authv1.LogoutAllResponse) auth.LogoutAllResponse {
	return auth.LogoutAllResponse{}
}
