package httptransport

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/go-kit/log"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/auth"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/transport/wire"
)

// authEnv is the real auth service (SQLite, a key ring in a temporary folder, a cheap
// hasher) behind the real endpoint set with its real guard, handler and client, on loopback.
type authEnv struct {
	srv    *httptest.Server
	client auth.Set
	admin  string // an admin's access token
	clin   string // a clinician's access token
}

const authPassword = "a long enough password"

func newAuthEnv(t *testing.T, throttle auth.ThrottleOptions) *authEnv {
	t.Helper()
	ctx := context.Background()
	d := dbtest.Open(t, db.SQLite, migrations.Auth())
	keys, _, err := auth.OpenKeyRing(filepath.Join(t.TempDir(), auth.KeyFileName), auth.KeyRingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := audit.NewWriter(d, audit.Options{Table: auth.AuditTable})
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	store := auth.NewStore(d)
	svc, err := auth.NewService(ctx, store, keys, w, auth.Options{
		Hasher:   auth.NewArgon2id(auth.Argon2idParams{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}, 0),
		Throttle: throttle,
	})
	if err != nil {
		t.Fatal(err)
	}
	guard := authz.NewGuard(authz.NewVerifier(keys, authz.DefaultIssuer, authz.DefaultAudience), auth.Roles, auth.DeniedAuditor(w))
	set := auth.NewEndpoints(svc, auth.EndpointOptions{Guard: guard})
	srv := httptest.NewServer(NewAuthHandler(set, Options{Logger: log.NewNopLogger()}))
	t.Cleanup(srv.Close)
	client, err := NewAuthClient(srv.URL, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := &authEnv{srv: srv, client: client}
	if _, _, _, err := auth.BootstrapAdmin(ctx, store, svc, "admin@example.org", authPassword); err != nil {
		t.Fatal(err)
	}
	e.admin = e.login(t, "admin@example.org").Token
	if _, err := client.CreateUser(authz.WithToken(ctx, e.admin), auth.CreateUserRequest{Email: "clin@example.org", Password: authPassword, Role: authz.RoleClinician}); err != nil {
		t.Fatal(err)
	}
	e.clin = e.login(t, "clin@example.org").Token
	return e
}

func (e *authEnv) login(t *testing.T, email string) auth.TokenPair {
	t.Helper()
	p, err := e.client.Login(context.Background(), auth.LoginRequest{Email: email, Password: authPassword})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (e *authEnv) do(t *testing.T, method, path, token string, body string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func keysOf(t *testing.T, b []byte) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

func TestAuthRoutes(t *testing.T) {
	e := newAuthEnv(t, auth.ThrottleOptions{})
	resp, b := e.do(t, "POST", "/login", "", `{"email":"admin@example.org","password":"`+authPassword+`"}`, jsonCT...)
	if resp.StatusCode != 200 || keysOf(t, b) != "deviceToken,expiresIn,refreshToken,token,tokenType" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("login: %d %s %v", resp.StatusCode, b, resp.Header)
	}
	pair := decodeBody[auth.TokenPair](t, b)
	if pair.TokenType != "Bearer" || pair.ExpiresIn != 900 {
		t.Fatalf("pair %+v", pair)
	}

	resp, b = e.do(t, "GET", "/validate", pair.Token, "")
	if resp.StatusCode != 200 || keysOf(t, b) != "email,exp,role,sub" {
		t.Fatalf("validate: %d %s", resp.StatusCode, b)
	}
	resp, b = e.do(t, "GET", "/validate", "", "")
	checkError(t, resp, b, 401, errs.Unauthenticated)
	resp, b = e.do(t, "GET", "/validate", pair.RefreshToken, "")
	checkError(t, resp, b, 401, errs.Unauthenticated)

	resp, b = e.do(t, "GET", "/.well-known/jwks.json", "", "")
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"kty":"OKP"`) || !strings.Contains(string(b), `"kid":`) {
		t.Fatalf("jwks: %d %s", resp.StatusCode, b)
	}

	resp, b = e.do(t, "POST", "/refresh", "", `{"refreshToken":"`+pair.RefreshToken+`"}`, jsonCT...)
	if resp.StatusCode != 200 || keysOf(t, b) != "expiresIn,refreshToken,token,tokenType" {
		t.Fatalf("refresh: %d %s", resp.StatusCode, b)
	}
	next := decodeBody[auth.TokenPair](t, b)
	resp, b = e.do(t, "POST", "/refresh", "", `{"refreshToken":"`+pair.RefreshToken+`"}`, jsonCT...)
	checkError(t, resp, b, 401, errs.Unauthenticated)
	resp, b = e.do(t, "POST", "/logout", "", `{"refreshToken":"`+next.RefreshToken+`"}`, jsonCT...)
	if resp.StatusCode != 204 || len(b) != 0 {
		t.Fatalf("logout: %d %s", resp.StatusCode, b)
	}

	resp, b = e.do(t, "POST", "/users", e.admin, `{"email":"new@example.org","password":"`+authPassword+`","role":"analyst"}`, jsonCT...)
	if resp.StatusCode != 201 || keysOf(t, b) != "createdAt,disabled,email,id,role,updatedAt" {
		t.Fatalf("create user: %d %s", resp.StatusCode, b)
	}
	u := decodeBody[auth.User](t, b)
	if resp.Header.Get("Location") != "/users/"+u.ID || u.Role != "analyst" || u.Disabled {
		t.Fatalf("created %+v at %q", u, resp.Header.Get("Location"))
	}
	resp, b = e.do(t, "POST", "/users", e.admin, `{"email":"NEW@example.org","password":"`+authPassword+`","role":"analyst"}`, jsonCT...)
	checkError(t, resp, b, 409, errs.Conflict)
	resp, b = e.do(t, "POST", "/users", e.admin, `{"email":"x@example.org","password":"short","role":"analyst"}`, jsonCT...)
	if eb := checkError(t, resp, b, 400, errs.InvalidArgument); eb.Fields["password"] == "" {
		t.Fatalf("password rule: %s", b)
	}
	resp, b = e.do(t, "GET", "/users", e.admin, "")
	if resp.StatusCode != 200 || strings.Contains(string(b), "argon2") || strings.Contains(string(b), "assword") {
		t.Fatalf("list: %d %s", resp.StatusCode, b)
	}
	if users := decodeBody[[]auth.User](t, b); len(users) != 3 {
		t.Fatalf("users %+v", users)
	}
	resp, b = e.do(t, "GET", "/users/"+u.ID, e.admin, "")
	if resp.StatusCode != 200 || decodeBody[auth.User](t, b) != u {
		t.Fatalf("get user: %d %s", resp.StatusCode, b)
	}
	resp, b = e.do(t, "PATCH", "/users/"+u.ID, e.admin, `{"role":"billing","disabled":true}`, jsonCT...)
	if got := decodeBody[auth.User](t, b); resp.StatusCode != 200 || got.Role != "billing" || !got.Disabled {
		t.Fatalf("patch: %d %s", resp.StatusCode, b)
	}
	adminID := decodeBody[auth.Validation](t, func() []byte { _, b := e.do(t, "GET", "/validate", e.admin, ""); return b }()).Sub
	resp, b = e.do(t, "PATCH", "/users/"+adminID, e.admin, `{"disabled":true}`, jsonCT...)
	checkError(t, resp, b, 409, errs.Conflict)
	resp, b = e.do(t, "GET", "/users/audit?userId="+u.ID+"&limit=10", e.admin, "")
	entries := withoutAuthReads(decodeBody[[]auth.AuditEntry](t, b)) // reads are audited too (issue 17)
	if resp.StatusCode != 200 || len(entries) != 2 || entries[0].Action != auth.ActionUserUpdate || entries[0].UserID != u.ID {
		t.Fatalf("audit: %d %s", resp.StatusCode, b)
	}
	// The same over the client.
	ctx := authz.WithToken(context.Background(), e.admin)
	if got, err := e.client.Audit(ctx, auth.AuditQuery{UserID: u.ID}); err != nil || len(withoutAuthReads(got)) != 2 {
		t.Fatalf("client audit: %v %v", got, err)
	}
	if got, err := e.client.GetUser(ctx, u.ID); err != nil || got.ID != u.ID {
		t.Fatalf("client get: %v", err)
	}
	role := authz.RoleClinician
	if got, err := e.client.UpdateUser(ctx, auth.UpdateUserRequest{ID: u.ID, Role: &role}); err != nil || got.Role != role || !got.Disabled {
		t.Fatalf("client patch keeps absent fields: %+v %v", got, err)
	}
	if set, err := e.client.JWKS(ctx); err != nil || len(set.Keys) != 1 {
		t.Fatalf("client jwks: %+v %v", set, err)
	}
	v, err := e.client.Validate(ctx)
	if err != nil || v.Role != authz.RoleAdmin {
		t.Fatalf("client validate: %+v %v", v, err)
	}
	if _, err := e.client.Login(context.Background(), auth.LoginRequest{Email: "admin@example.org", Password: "wrong password"}); !errors.Is(err, auth.ErrBadCredentials) {
		t.Fatalf("client bad login: %v", err)
	}
	if users, err := e.client.ListUsers(ctx); err != nil || len(users) != 3 {
		t.Fatalf("client list: %v", err)
	}
	if err := e.client.Logout(ctx, auth.LogoutRequest{RefreshToken: "nothing"}); err != nil {
		t.Fatalf("client logout: %v", err)
	}
}

// TestInviteOverHTTP: POST /users without a password answers 201 with the invite token
// and its expiry; the invited user's login is the wrong-password 401; POST /password/set
// (public) answers 204, after which the user logs in; the token then gets 400 with the
// token field named, as does an unknown one; a weak password is a 400 naming newPassword.
// The same through the client.
func TestInviteOverHTTP(t *testing.T) {
	e := newAuthEnv(t, auth.ThrottleOptions{})
	resp, b := e.do(t, "POST", "/users", e.admin, `{"email":"invitee@example.org","role":"clinician"}`, jsonCT...)
	if resp.StatusCode != 201 || keysOf(t, b) != "createdAt,disabled,email,id,inviteExpiresAt,inviteToken,role,updatedAt" {
		t.Fatalf("invite: %d %s", resp.StatusCode, b)
	}
	c := decodeBody[auth.CreatedUser](t, b)
	if resp.Header.Get("Location") != "/users/"+c.ID || len(c.InviteToken) != 43 || c.InviteExpiresAt == nil ||
		c.InviteExpiresAt.Sub(c.CreatedAt) != auth.DefaultInviteTTL {
		t.Fatalf("invited %+v", c)
	}
	login := `{"email":"invitee@example.org","password":"` + authPassword + `"}`
	resp, b = e.do(t, "POST", "/login", "", login, jsonCT...)
	if eb := checkError(t, resp, b, 401, errs.Unauthenticated); eb.Message != auth.ErrBadCredentials.Message {
		t.Fatalf("invited login: %s", b)
	}
	resp, b = e.do(t, "POST", "/password/set", "", `{"token":"`+c.InviteToken+`","newPassword":"short"}`, jsonCT...)
	if eb := checkError(t, resp, b, 400, errs.InvalidArgument); eb.Fields["newPassword"] == "" {
		t.Fatalf("weak password: %s", b)
	}
	resp, b = e.do(t, "POST", "/password/set", "", `{"token":"`+c.InviteToken+`","newPassword":"`+authPassword+`"}`, jsonCT...)
	if resp.StatusCode != 204 || len(b) != 0 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("set password: %d %s", resp.StatusCode, b)
	}
	if resp, b = e.do(t, "POST", "/login", "", login, jsonCT...); resp.StatusCode != 200 {
		t.Fatalf("login after set: %d %s", resp.StatusCode, b)
	}
	for _, token := range []string{c.InviteToken, strings.Repeat("A", 43)} {
		resp, b = e.do(t, "POST", "/password/set", "", `{"token":"`+token+`","newPassword":"`+authPassword+`"}`, jsonCT...)
		if eb := checkError(t, resp, b, 400, errs.InvalidArgument); eb.Fields["token"] == "" || eb.Message != auth.ErrBadSetPasswordToken.Message {
			t.Fatalf("used or unknown token: %s", b)
		}
	}
	resp, b = e.do(t, "POST", "/password/set?x=1", "", `{"token":"t","newPassword":"`+authPassword+`"}`, jsonCT...)
	checkError(t, resp, b, 400, errs.InvalidArgument)

	// The client: CreateUser returns the token, SetPassword sets the password.
	ctx := authz.WithToken(context.Background(), e.admin)
	c2, err := e.client.CreateUser(ctx, auth.CreateUserRequest{Email: "second@example.org", Role: authz.RoleAnalyst})
	if err != nil || c2.InviteToken == "" || c2.InviteExpiresAt == nil {
		t.Fatalf("client invite: %+v %v", c2, err)
	}
	if err := e.client.SetPassword(context.Background(), auth.SetPasswordRequest{Token: c2.InviteToken, NewPassword: authPassword}); err != nil {
		t.Fatalf("client set password: %v", err)
	}
	e.login(t, "second@example.org")
	err = e.client.SetPassword(context.Background(), auth.SetPasswordRequest{Token: c2.InviteToken, NewPassword: authPassword})
	if !errors.Is(err, auth.ErrBadSetPasswordToken) || errs.As(err).Fields["token"] == "" {
		t.Fatalf("client reuse: %v", err)
	}
	// Created with a password: no invite fields at all.
	if c3, err := e.client.CreateUser(ctx, auth.CreateUserRequest{Email: "third@example.org", Password: authPassword, Role: authz.RoleAnalyst}); err != nil ||
		c3.InviteToken != "" || c3.InviteExpiresAt != nil {
		t.Fatalf("client create with a password: %+v %v", c3, err)
	}
}

// TestAuthOrderAndBadInput: 401, then 403, then 400/413/415 on every admin route, and no
// malformed input gets anything but its 4xx.
func TestAuthOrderAndBadInput(t *testing.T) {
	e := newAuthEnv(t, auth.ThrottleOptions{})
	const id = "5f0c1c52-8a53-4c8e-9d43-6c1f0e2b7a11"
	admin := []struct{ method, path, body string }{
		{"POST", "/users", "{garbage"},
		{"GET", "/users?nope=1", ""},
		{"GET", "/users/" + id + "?x=1", ""},
		{"GET", "/users/not-a-uuid", ""},
		{"PATCH", "/users/" + id, `{"password":"x"}`},
		{"PATCH", "/users/audit", `{"role":"admin"}`},
		{"GET", "/users/audit?limit=0", ""},
	}
	for _, r := range admin {
		resp, b := e.do(t, r.method, r.path, "", r.body, jsonCT...)
		checkError(t, resp, b, 401, errs.Unauthenticated)
		resp, b = e.do(t, r.method, r.path, e.clin, r.body, jsonCT...)
		checkError(t, resp, b, 403, errs.PermissionDenied)
		resp, b = e.do(t, r.method, r.path, e.admin, r.body, jsonCT...)
		checkError(t, resp, b, 400, errs.InvalidArgument)
	}
	for _, path := range []string{"/login", "/refresh", "/logout", "/users", "/password/set"} {
		token := e.admin
		for name, c := range map[string]struct {
			body, ct string
			status   int
			kind     errs.Kind
		}{
			"not JSON":      {`{"email":`, "application/json", 400, errs.InvalidArgument},
			"array":         {`[]`, "application/json", 400, errs.InvalidArgument},
			"unknown field": {`{"user":"x"}`, "application/json", 400, errs.InvalidArgument},
			"wrong type":    {`{"email":1,"refreshToken":2}`, "application/json", 400, errs.InvalidArgument},
			"text":          {`email=x`, "text/plain", 415, errs.UnsupportedMediaType},
			"huge":          {`{"email":"` + strings.Repeat("a", wire.MaxBodyBytes) + `"}`, "application/json", 413, errs.PayloadTooLarge},
			"empty":         {"", "application/json", 400, errs.InvalidArgument},
		} {
			resp, b := e.do(t, "POST", path, token, c.body, "Content-Type", c.ct)
			if resp.StatusCode != c.status {
				t.Errorf("%s %s: %d %s", path, name, resp.StatusCode, b)
				continue
			}
			checkError(t, resp, b, c.status, c.kind)
		}
	}
	resp, b := e.do(t, "POST", "/login", "", `{"email":"","password":""}`, jsonCT...)
	if eb := checkError(t, resp, b, 400, errs.InvalidArgument); eb.Fields["email"] == "" || eb.Fields["password"] == "" {
		t.Fatalf("empty login: %s", b)
	}
	resp, b = e.do(t, "DELETE", "/users/"+id, e.admin, "")
	checkError(t, resp, b, 405, errs.MethodNotAllowed)
	resp, b = e.do(t, "GET", "/login", "", "")
	checkError(t, resp, b, 405, errs.MethodNotAllowed)
	resp, b = e.do(t, "GET", "/.well-known/jwks.json?x=1", "", "")
	checkError(t, resp, b, 400, errs.InvalidArgument)
	// Unknown email and wrong password: byte-identical bodies apart from the request id.
	strip := func(b []byte) string {
		var eb wire.ErrorBody
		_ = json.Unmarshal(b, &eb)
		eb.RequestID = ""
		out, _ := json.Marshal(eb)
		return string(out)
	}
	r1, b1 := e.do(t, "POST", "/login", "", `{"email":"ghost@example.org","password":"whatever whatever"}`, jsonCT...)
	r2, b2 := e.do(t, "POST", "/login", "", `{"email":"admin@example.org","password":"whatever whatever"}`, jsonCT...)
	if r1.StatusCode != 401 || r2.StatusCode != 401 || strip(b1) != strip(b2) {
		t.Fatalf("unknown email %d %s vs wrong password %d %s", r1.StatusCode, b1, r2.StatusCode, b2)
	}
}

func TestAuthThrottleOverHTTP(t *testing.T) {
	e := newAuthEnv(t, auth.ThrottleOptions{AccountAttempts: 2, AddressAttempts: 100})
	for range 2 {
		resp, b := e.do(t, "POST", "/login", "", `{"email":"clin@example.org","password":"wrong wrong wrong"}`, jsonCT...)
		checkError(t, resp, b, 401, errs.Unauthenticated)
	}
	resp, b := e.do(t, "POST", "/login", "", `{"email":"clin@example.org","password":"`+authPassword+`"}`, jsonCT...)
	checkError(t, resp, b, 429, errs.RateLimited)
	if resp.Header.Get("Retry-After") != "60" {
		t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	_, err := e.client.Login(context.Background(), auth.LoginRequest{Email: "clin@example.org", Password: authPassword})
	var ee *errs.Error
	if !errors.As(err, &ee) || ee.Kind != errs.RateLimited || ee.RetryAfter <= 0 {
		t.Fatalf("client sees %v", err)
	}
}

// TestChangePasswordOverHTTP: POST /password changes the caller's own password (204, no
// body); without a token it is 401; a wrong current password is 401 without fields; a
// common new password is a 400 naming newPassword; afterwards the old password fails, the
// new one logs in, another session's refresh token is dead and the changing session's lives. The same through the client.
func TestChangePasswordOverHTTP(t *testing.T) {
	e := newAuthEnv(t, auth.ThrottleOptions{})
	ctx := authz.WithToken(context.Background(), e.admin)
	if _, err := e.client.CreateUser(ctx, auth.CreateUserRequest{Email: "changer@example.org", Password: authPassword, Role: authz.RoleBilling}); err != nil {
		t.Fatal(err)
	}
	before := e.login(t, "changer@example.org")
	other := e.login(t, "changer@example.org")
	body := `{"currentPassword":"` + authPassword + `","newPassword":"a changed long password"}`
	resp, b := e.do(t, "POST", "/password", "", body, jsonCT...)
	checkError(t, resp, b, 401, errs.Unauthenticated)
	resp, b = e.do(t, "POST", "/password", before.Token, `{"currentPassword":"not the password 1","newPassword":"a changed long password"}`, jsonCT...)
	if eb := checkError(t, resp, b, 401, errs.Unauthenticated); eb.Message != auth.ErrBadCurrentPassword.Message || len(eb.Fields) != 0 {
		t.Fatalf("wrong current password: %s", b)
	}
	resp, b = e.do(t, "POST", "/password", before.Token, `{"currentPassword":"`+authPassword+`","newPassword":"password123456"}`, jsonCT...)
	if eb := checkError(t, resp, b, 400, errs.InvalidArgument); !strings.Contains(eb.Fields["newPassword"], "common") {
		t.Fatalf("common password: %s", b)
	}
	resp, b = e.do(t, "POST", "/password?x=1", before.Token, body, jsonCT...)
	checkError(t, resp, b, 400, errs.InvalidArgument)
	resp, b = e.do(t, "POST", "/password", before.Token, body, jsonCT...)
	if resp.StatusCode != 204 || len(b) != 0 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("change: %d %s", resp.StatusCode, b)
	}
	resp, b = e.do(t, "POST", "/login", "", `{"email":"changer@example.org","password":"`+authPassword+`"}`, jsonCT...)
	checkError(t, resp, b, 401, errs.Unauthenticated)
	// Every other session ends; the one that made the change goes on.
	resp, b = e.do(t, "POST", "/refresh", "", `{"refreshToken":"`+other.RefreshToken+`"}`, jsonCT...)
	checkError(t, resp, b, 401, errs.Unauthenticated)
	if resp, b = e.do(t, "POST", "/refresh", "", `{"refreshToken":"`+before.RefreshToken+`"}`, jsonCT...); resp.StatusCode != 200 {
		t.Fatalf("the changing session's refresh: %d %s", resp.StatusCode, b)
	}
	pair, err := e.client.Login(context.Background(), auth.LoginRequest{Email: "changer@example.org", Password: "a changed long password"})
	if err != nil {
		t.Fatal(err)
	}
	// The client: a wrong current password is ErrBadCurrentPassword; a right one changes it.
	uctx := authz.WithToken(context.Background(), pair.Token)
	if err := e.client.ChangePassword(uctx, auth.ChangePasswordRequest{CurrentPassword: authPassword, NewPassword: "a third long password"}); !errors.Is(err, auth.ErrBadCurrentPassword) {
		t.Fatalf("client wrong current: %v", err)
	}
	if err := e.client.ChangePassword(uctx, auth.ChangePasswordRequest{CurrentPassword: "a changed long password", NewPassword: "a third long password"}); err != nil {
		t.Fatalf("client change: %v", err)
	}
	if _, err := e.client.Login(context.Background(), auth.LoginRequest{Email: "changer@example.org", Password: "a third long password"}); err != nil {
		t.Fatal(err)
	}
}

// TestResetPasswordOverHTTP: POST /users/{id}/reset-password (admin) answers 201 with
// exactly resetToken and resetExpiresAt; a non-admin gets 403; the user's old password
// fails, the token sets a new one through POST /password/set once; the client does the same.
func TestResetPasswordOverHTTP(t *testing.T) {
	e := newAuthEnv(t, auth.ThrottleOptions{})
	ctx := authz.WithToken(context.Background(), e.admin)
	u, err := e.client.CreateUser(ctx, auth.CreateUserRequest{Email: "reset@example.org", Password: authPassword, Role: authz.RoleClinician})
	if err != nil {
		t.Fatal(err)
	}
	mine := e.login(t, "reset@example.org")
	resp, b := e.do(t, "POST", "/users/"+u.ID+"/reset-password", mine.Token, "", jsonCT...)
	checkError(t, resp, b, 403, errs.PermissionDenied)
	resp, b = e.do(t, "POST", "/users/"+u.ID+"/reset-password", e.admin, "", jsonCT...)
	if resp.StatusCode != 201 || keysOf(t, b) != "resetExpiresAt,resetToken" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("reset: %d %s", resp.StatusCode, b)
	}
	r := decodeBody[auth.ResetPassword](t, b)
	resp, b = e.do(t, "POST", "/login", "", `{"email":"reset@example.org","password":"`+authPassword+`"}`, jsonCT...)
	checkError(t, resp, b, 401, errs.Unauthenticated)
	resp, b = e.do(t, "POST", "/password/set", "", `{"token":"`+r.ResetToken+`","newPassword":"a brand new long passphrase"}`, jsonCT...)
	if resp.StatusCode != 204 {
		t.Fatalf("set after reset: %d %s", resp.StatusCode, b)
	}
	resp, b = e.do(t, "POST", "/password/set", "", `{"token":"`+r.ResetToken+`","newPassword":"a brand new long passphrase"}`, jsonCT...)
	checkError(t, resp, b, 400, errs.InvalidArgument)
	if resp, b = e.do(t, "POST", "/login", "", `{"email":"reset@example.org","password":"a brand new long passphrase"}`, jsonCT...); resp.StatusCode != 200 {
		t.Fatalf("login after reset: %d %s", resp.StatusCode, b)
	}
	r2, err := e.client.ResetPassword(ctx, auth.ResetPasswordRequest{ID: u.ID})
	if err != nil || len(r2.ResetToken) != 43 || r2.ResetExpiresAt.IsZero() {
		t.Fatalf("client reset: %+v %v", r2, err)
	}
	if err := e.client.SetPassword(context.Background(), auth.SetPasswordRequest{Token: r2.ResetToken, NewPassword: "another new passphrase"}); err != nil {
		t.Fatal(err)
	}
}

// withoutAuthReads drops the audited reads of users and of the audit log (issue 17).
func withoutAuthReads(entries []auth.AuditEntry) []auth.AuditEntry {
	var out []auth.AuditEntry
	for _, e := range entries {
		if e.Action != auth.ActionUserRead && e.Action != auth.ActionAuditRead {
			out = append(out, e)
		}
	}
	return out
}
