package httptransport

import (
	"context"
	"net/http"

	"github.com/go-kit/kit/endpoint"
	"github.com/gorilla/mux"

	"github.com/pms/pms/pkg/auth"
)

// handleSessions adds the session routes of the auth API: GET /sessions (the caller's live
// sessions), DELETE /sessions/{id} (end one, 204) and DELETE /sessions (logout everywhere:
// every session and access token of the caller, 204).
func handleSessions(r *mux.Router, o Options, set auth.Set) {
	Handle(r, o, http.MethodGet, "/sessions", set.ListSessionsEndpoint, decodeListSessions, encodeSessions)
	Handle(r, o, http.MethodDelete, "/sessions", set.LogoutAllEndpoint, decodeLogoutAll, encodeNoContent[auth.LogoutAllResponse])
	Handle(r, o, http.MethodDelete, "/sessions/{id}", set.DeleteSessionEndpoint, decodeDeleteSession, encodeNoContent[auth.DeleteSessionResponse])
}

func decodeListSessions(_ context.Context, r *http.Request) (auth.ListSessionsRequest, error) {
	return auth.ListSessionsRequest{}, noQuery(r)
}

// decodeLogoutAll reads DELETE /sessions (no query; a body, if any, is not read).
func decodeLogoutAll(_ context.Context, r *http.Request) (auth.LogoutAllRequest, error) {
	return auth.LogoutAllRequest{}, noQuery(r)
}

// decodeDeleteSession reads DELETE /sessions/{id} (no query; a body, if any, is not read).
func decodeDeleteSession(_ context.Context, r *http.Request) (auth.DeleteSessionRequest, error) {
	id, err := idOnly(r)
	return auth.DeleteSessionRequest{ID: id}, err
}

func encodeSessions(_ context.Context, _ http.Header, r auth.SessionsResponse) (int, any) {
	return http.StatusOK, nonNil(r.Sessions)
}

// sessionClientEndpoints are the HTTP client endpoints of the session routes.
type sessionClientEndpoints struct {
	list, delete, logoutAll endpoint.Endpoint
}

func newSessionClient(c *client) sessionClientEndpoints {
	return sessionClientEndpoints{
		list: clientEndpoint(c, func(auth.ListSessionsRequest) (call, error) {
			return call{method: http.MethodGet, path: "/sessions"}, nil
		}, func(resp *http.Response) (auth.SessionsResponse, error) {
			l, err := decodeJSONResponse[[]auth.Session](resp)
			return auth.SessionsResponse{Sessions: l}, err
		}),
		delete: clientEndpoint(c, func(r auth.DeleteSessionRequest) (call, error) {
			return resourceCall(http.MethodDelete, "/sessions", r.ID, "")
		}, func(*http.Response) (auth.DeleteSessionResponse, error) { return auth.DeleteSessionResponse{}, nil }),
		logoutAll: clientEndpoint(c, func(auth.LogoutAllRequest) (call, error) {
			return call{method: http.MethodDelete, path: "/sessions"}, nil
		}, func(*http.Response) (auth.LogoutAllResponse, error) { return auth.LogoutAllResponse{}, nil }),
	}
}
