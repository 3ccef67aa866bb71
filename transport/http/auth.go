package httptransport

import (
	"context"
	"net/http"
	"net/url"

	"github.com/pms/pms/pkg/auth"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
)

// NewAuthHandler serves the auth API of API.md ("Authentication and roles") from the
// endpoint set, under o.Prefix, behind Wrap. The gateway strips its /auth and /api
// prefixes, so the service itself serves /login, /validate, /refresh, /logout,
// /password/set, /password, /.well-known/jwks.json, the MFA routes (auth_mfa.go), /users, /users/{id},
// /users/{id}/reset-password, /users/audit, /sessions and /sessions/{id}. Login, refresh and
// logout also speak the browser's cookie session (auth_cookie.go). Every response carries
// Cache-Control: no-store (Wrap), which token responses must (RFC 6749 §5.1).
func NewAuthHandler(set auth.Set, o Options) http.Handler {
	r := NewRouter()
	p := o.prefix()
	Handle(r, o, http.MethodPost, "/login", set.LoginEndpoint, decodeCookieLogin(decodeLogin), encodeTokens(tokenPair))
	Handle(r, o, http.MethodGet, "/validate", set.ValidateEndpoint, decodeValidate, encodeOK[auth.Validation])
	Handle(r, o, http.MethodPost, "/refresh", set.RefreshEndpoint, decodeRefresh, encodeTokens(tokenPair))
	Handle(r, o, http.MethodPost, "/logout", set.LogoutEndpoint, decodeLogout, encodeLogout)
	Handle(r, o, http.MethodPost, "/password/set", set.SetPasswordEndpoint, decodeSetPassword, encodeNoContent[auth.SetPasswordResponse])
	Handle(r, o, http.MethodPost, "/password", set.ChangePasswordEndpoint, decodeChangePassword, encodeNoContent[auth.ChangePasswordResponse])
	Handle(r, o, http.MethodGet, "/.well-known/jwks.json", set.JWKSEndpoint, decodeJWKS, encodeOK[authz.JWKS])
	Handle(r, o, http.MethodPost, "/users", set.CreateUserEndpoint, decodeCreateUser, encodeCreatedUser(p))
	Handle(r, o, http.MethodGet, "/users", set.ListUsersEndpoint, decodeListUsers, encodeUsers)
	// /users/audit before /users/{id}, which would otherwise take "audit" for an id.
	Handle(r, o, http.MethodGet, "/users/audit", set.AuditEndpoint, decodeAuthAudit, encodeAuthAudit)
	Handle(r, o, http.MethodGet, "/users/audit/verify", set.VerifyAuditEndpoint, decodeVerifyAudit[auth.VerifyAuditRequest], encodeOK[audit.Report])
	Handle(r, o, http.MethodGet, "/users/{id}", set.GetUserEndpoint, decodeGetUser, encodeOK[auth.User])
	Handle(r, o, http.MethodPatch, "/users/{id}", set.UpdateUserEndpoint, decodeUpdateUser, encodeOK[auth.User])
	Handle(r, o, http.MethodPost, "/users/{id}/reset-password", set.ResetPasswordEndpoint, decodeResetPassword, encodeReset)
	handleMFA(r, o, set)
	handleSessions(r, o, set)
	return Wrap(r, o)
}

func decodeLogin(_ context.Context, r *http.Request) (auth.LoginRequest, error) {
	if err := noQuery(r); err != nil {
		return auth.LoginRequest{}, err
	}
	return DecodeJSON[auth.LoginRequest](r)
}

func decodeValidate(_ context.Context, r *http.Request) (auth.ValidateRequest, error) {
	return auth.ValidateRequest{}, noQuery(r)
}

// decodeRefresh reads POST /refresh: the refresh token from the body or the session cookie
// (auth_cookie.go).
func decodeRefresh(ctx context.Context, r *http.Request) (auth.RefreshRequest, error) {
	t, err := decodeRefreshToken(ctx, r)
	return auth.RefreshRequest{RefreshToken: t}, err
}

// decodeLogout reads POST /logout like decodeRefresh.
func decodeLogout(ctx context.Context, r *http.Request) (auth.LogoutRequest, error) {
	t, err := decodeRefreshToken(ctx, r)
	return auth.LogoutRequest{RefreshToken: t}, err
}

func decodeSetPassword(_ context.Context, r *http.Request) (auth.SetPasswordRequest, error) {
	if err := noQuery(r); err != nil {
		return auth.SetPasswordRequest{}, err
	}
	return DecodeJSON[auth.SetPasswordRequest](r)
}

func decodeChangePassword(_ context.Context, r *http.Request) (auth.ChangePasswordRequest, error) {
	if err := noQuery(r); err != nil {
		return auth.ChangePasswordRequest{}, err
	}
	return DecodeJSON[auth.ChangePasswordRequest](r)
}

func decodeJWKS(_ context.Context, r *http.Request) (auth.JWKSRequest, error) {
	return auth.JWKSRequest{}, noQuery(r)
}

func decodeCreateUser(_ context.Context, r *http.Request) (auth.CreateUserRequest, error) {
	if err := noQuery(r); err != nil {
		return auth.CreateUserRequest{}, err
	}
	return DecodeJSON[auth.CreateUserRequest](r)
}

func decodeListUsers(_ context.Context, r *http.Request) (auth.ListUsersRequest, error) {
	return auth.ListUsersRequest{}, noQuery(r)
}

func decodeGetUser(_ context.Context, r *http.Request) (auth.GetUserRequest, error) {
	id, err := idOnly(r)
	return auth.GetUserRequest{ID: id}, err
}

// decodeResetPassword reads POST /users/{id}/reset-password (no query; a body, if any, is
// not read).
func decodeResetPassword(_ context.Context, r *http.Request) (auth.ResetPasswordRequest, error) {
	id, err := idOnly(r)
	return auth.ResetPasswordRequest{ID: id}, err
}

func encodeReset(_ context.Context, _ http.Header, r auth.ResetPassword) (int, any) {
	return http.StatusCreated, r
}

// decodeUpdateUser reads PATCH /users/{id} {"role"?, "disabled"?}.
func decodeUpdateUser(_ context.Context, r *http.Request) (auth.UpdateUserRequest, error) {
	id, err := pathID(r)
	if err != nil {
		return auth.UpdateUserRequest{}, err
	}
	if err := noQuery(r); err != nil {
		return auth.UpdateUserRequest{}, err
	}
	req, err := DecodeJSON[auth.UpdateUserRequest](r)
	req.ID = id
	return req, err
}

// decodeAuthAudit reads GET /users/audit?userId=&actor=&from=&to=&limit= (decodeAuditQuery).
func decodeAuthAudit(ctx context.Context, r *http.Request) (auth.AuditQuery, error) {
	q, err := decodeAuditQuery("userId")(ctx, r)
	return auth.AuditQuery{UserID: q.SubjectID, Actor: q.Actor, From: q.From, To: q.To, Limit: q.Limit}, err
}

// userPath is the path of one user as the client addresses it.
func userPath(prefix, id string) string { return prefix + "/users/" + url.PathEscape(id) }

// encodeCreatedUser writes 201 with the new user's Location (and, for an invited user, its
// one-time set-password token).
func encodeCreatedUser(prefix string) func(context.Context, http.Header, auth.CreatedUser) (int, any) {
	return func(_ context.Context, h http.Header, u auth.CreatedUser) (int, any) {
		h.Set("Location", userPath(prefix, u.ID))
		return http.StatusCreated, u
	}
}

func encodeUsers(_ context.Context, _ http.Header, r auth.UsersResponse) (int, any) {
	return http.StatusOK, nonNil(r.Users)
}

func encodeAuthAudit(_ context.Context, _ http.Header, r auth.AuditResponse) (int, any) {
	return http.StatusOK, nonNil(r.Entries)
}

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
	sessionClient := newSessionClient(c)
	login, refresh, logout, create, setPassword, changePassword := post("/login"), post("/refresh"), post("/logout"), post("/users"), post("/password/set"), post("/password")
	set := auth.Set{
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
			decodeJSONResponse[auth.CreatedUser]),
		SetPasswordEndpoint: clientEndpoint(c, func(r auth.SetPasswordRequest) (call, error) { return setPassword(r) },
			func(*http.Response) (auth.SetPasswordResponse, error) { return auth.SetPasswordResponse{}, nil }),
		ChangePasswordEndpoint: clientEndpoint(c, func(r auth.ChangePasswordRequest) (call, error) { return changePassword(r) },
			func(*http.Response) (auth.ChangePasswordResponse, error) { return auth.ChangePasswordResponse{}, nil }),
		ListUsersEndpoint: clientEndpoint(c, func(auth.ListUsersRequest) (call, error) {
			return call{method: http.MethodGet, path: "/users"}, nil
		}, func(resp *http.Response) (auth.UsersResponse, error) {
			u, err := decodeJSONResponse[[]auth.User](resp)
			return auth.UsersResponse{Users: u}, err
		}),
		ResetPasswordEndpoint: clientEndpoint(c, func(r auth.ResetPasswordRequest) (call, error) {
			return resourceCall(http.MethodPost, "/users", r.ID, "/reset-password")
		}, decodeJSONResponse[auth.ResetPassword]),
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
		VerifyAuditEndpoint:   clientEndpoint(c, verifyCall[auth.VerifyAuditRequest]("/users/audit/verify"), decodeJSONResponse[audit.Report]),
		ListSessionsEndpoint:  sessionClient.list,
		DeleteSessionEndpoint: sessionClient.delete,
		LogoutAllEndpoint:     sessionClient.logoutAll,
	}
	authMFAClient(c, &set)
	return set, nil
}

func encodeAuthAuditCall(q auth.AuditQuery) (call, error) {
	return auditCall("/users/audit", "userId")(audit.Query{SubjectID: q.UserID, Actor: q.Actor, From: q.From, To: q.To, Limit: q.Limit})
}
