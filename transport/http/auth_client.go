package httptransport

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/pms/pms/pkg/auth"
	"github.com/pms/pms/pkg/platform/authz"
)

// NewAuthClient returns the auth endpoint set speaking HTTP to the auth API at baseURL
// (e.g. "http://127.0.0.1:4005", or "http://gateway:4004/auth" through the gateway for the
// public operations). The Set implements auth.Service; errors come back as the *errs.Error
// the server sent, so errors.Is(err, auth.ErrBadCredentials) holds.
func NewAuthClient(baseURL string, o ClientOptions) (auth.Set, error) {
	c, err := newClient(baseURL, o)
	if err != nil {
		return auth.Set{}, err
	}
	post := func(path string) func(body any) (call, error) {
		return func(body any) (call, error) {
			return call{method: http.MethodPost, path: path, header: http.Header{}, body: body}, nil
		}
	}
	login, refresh, logout, create := post("/login"), post("/refresh"), post("/logout"), post("/users")
	return auth.Set{
		LoginEndpoint: clientEndpoint(c, func(r auth.LoginRequest) (call, error) { return login(r) },
			decodeJSONResponse[auth.TokenPair]),
		ValidateEndpoint: clientEndpoint(c, func(auth.ValidateRequest) (call, error) {
			return call{method: http.MethodGet, path: "/validate"}, nil
		}, decodeJSONResponse[auth.Validation]),
		RefreshEndpoint: clientEndpoint(c, func(r auth.RefreshRequest) (call, error) { return refresh(r) },
			decodeJSONResponse[auth.TokenPair]),
		LogoutEndpoint: clientEndpoint(c, func(r auth.LogoutRequest) (call, error) { return logout(r) },
			func(*http.Response) (auth.LogoutResponse, error) { return auth.LogoutResponse{}, nil }),
		JWKSEndpoint: clientEndpoint(c, func(auth.JWKSRequest) (call, error) {
			return call{method: http.MethodGet, path: "/.well-known/jwks.json"}, nil
		}, decodeJSONResponse[authz.JWKS]),
		CreateUserEndpoint: clientEndpoint(c, func(r auth.CreateUserRequest) (call, error) { return create(r) },
			decodeJSONResponse[auth.User]),
		ListUsersEndpoint: clientEndpoint(c, func(auth.ListUsersRequest) (call, error) {
			return call{method: http.MethodGet, path: "/users"}, nil
		}, func(resp *http.Response) (auth.UsersResponse, error) {
			u, err := decodeJSONResponse[[]auth.User](resp)
			return auth.UsersResponse{Users: u}, err
		}),
		GetUserEndpoint: clientEndpoint(c, func(r auth.GetUserRequest) (call, error) {
			return resourceCall(http.MethodGet, "/users", r.ID, "")
		}, decodeJSONResponse[auth.User]),
		UpdateUserEndpoint: clientEndpoint(c, func(r auth.UpdateUserRequest) (call, error) {
			cl, err := resourceCall(http.MethodPatch, "/users", r.ID, "")
			cl.body = r
			return cl, err
		}, decodeJSONResponse[auth.User]),
		AuditEndpoint: clientEndpoint(c, encodeAuthAuditCall, func(resp *http.Response) (auth.AuditResponse, error) {
			e, err := decodeJSONResponse[[]auth.AuditEntry](resp)
			return auth.AuditResponse{Entries: e}, err
		}),
	}, nil
}

func encodeAuthAuditCall(q auth.AuditQuery) (call, error) {
	v := url.Values{}
	setParam(v, "userId", q.UserID)
	setParam(v, "actor", q.Actor)
	if !q.From.IsZero() {
		v.Set("from", q.From.UTC().Format(time.RFC3339Nano))
	}
	if !q.To.IsZero() {
		v.Set("to", q.To.UTC().Format(time.RFC3339Nano))
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return call{method: http.MethodGet, path: "/users/audit", query: v}, nil
}
