package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/pms/pms/pkg/auth"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/authz/authztest"
	"github.com/pms/pms/pkg/platform/broker/brokertest"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
	grpctransport "github.com/pms/pms/transport/grpc"
	httptransport "github.com/pms/pms/transport/http"
)

var authAddrs = []string{"auth/http", "auth/grpc", "auth/admin"}

// adminPassword is the bootstrap admin's password in process tests that set it.
const adminPassword = "bootstrap operator passphrase"

// lockedBuffer collects a process's standard error while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// authArgs runs `pms auth` on :0 ports with its data (key ring) under dataDir.
func authArgs(t testing.TB, dataDir, dbURL string, extra ...string) []string {
	return append([]string{"auth", "--http-addr=127.0.0.1:0", "--grpc-addr=127.0.0.1:0", "--admin-addr=127.0.0.1:0",
		"--data-dir=" + dataDir, "--database-url=" + dbURL, "--log-format=logfmt", "--log-level=warn",
		"--kafka-brokers=" + brokertest.Start(t).Addr()}, extra...)
}

// dbURLs are the databases every process test runs on.
func dbURLs(t *testing.T) map[string]func() string {
	return map[string]func() string{
		"postgres": func() string { return dbtest.PostgresDatabase(t) },
		"sqlite":   func() string { return "sqlite://" + filepath.Join(t.TempDir(), "pms.db") },
	}
}

// call sends an HTTP request with an optional bearer token and JSON body.
func call(t *testing.T, method, url, token, body string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	return callWith(t, http.DefaultClient, method, url, token, body, headers...)
}

// callWith is call through client (one trusting a test CA, for TLS).
func callWith(t *testing.T, client *http.Client, method, url, token, body string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func dialGRPC(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, append(grpctransport.ClientDialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// metric returns the value of the sample line that starts with name (labels included).
func metric(t *testing.T, adminAddr, name string) float64 {
	t.Helper()
	_, b := call(t, "GET", "http://"+adminAddr+"/metrics", "", "")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

var generatedPassword = regexp.MustCompile(`generated password\n\n    (\S+)\n`)

// kidOf returns the kid in a token's header.
func kidOf(t *testing.T, token string) string {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := tok.Header["kid"].(string)
	return kid
}

// TestAuthProcess runs `pms auth` on PostgreSQL and SQLite: the first start creates the
// admin with a generated password printed once on standard error, and a 0600 key file; every
// operation works over both transports; a restart prints nothing, keeps the keys (tokens
// issued before it still verify) and the users.
func TestAuthProcess(t *testing.T) {
	for name, url := range dbURLs(t) {
		t.Run(name, func(t *testing.T) {
			t.Setenv(bootstrapPasswordEnv, "")
			dataDir, dbURL := t.TempDir(), url()
			var stderr lockedBuffer
			a, stop := startPMSLogs(t, authAddrs, &stderr, authArgs(t, dataDir, dbURL)...)
			m := generatedPassword.FindStringSubmatch(stderr.String())
			if m == nil || strings.Count(stderr.String(), m[1]) != 1 {
				t.Fatalf("the generated password is not printed exactly once:\n%s", stderr.String())
			}
			generated := m[1]
			if fi, err := os.Stat(filepath.Join(dataDir, auth.KeyFileName)); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("key file: %v %v", fi, err)
			}
			if fi, err := os.Stat(filepath.Join(dataDir, "auth", "mfa.key")); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("mfa key file: %v %v", fi, err)
			}
			// The generated password works once, to change it, as a user would.
			password := "a chosen first-start passphrase"
			challenge := changeGeneratedPassword(t, "http://"+a["auth/http"], generated, password)
			hc, err := httptransport.NewAuthClient("http://"+a["auth/http"], httptransport.ClientOptions{})
			if err != nil {
				t.Fatal(err)
			}
			gc := grpctransport.NewAuthClient(dialGRPC(t, a["auth/grpc"]))
			var earlier string
			for tr, c := range map[string]auth.Service{"http": hc, "grpc": gc} {
				t.Run(tr, func(t *testing.T) {
					earlier = exerciseAuth(t, c, password, tr)
				})
			}
			_, b := call(t, "GET", "http://"+a["auth/admin"]+"/metrics", "", "")
			if !strings.Contains(string(b), `pms_auth_logins_total{result="ok"}`) ||
				!strings.Contains(string(b), `pms_auth_request_duration_seconds_count{code="ok",method="Login",transport="grpc"}`) {
				t.Fatalf("metrics lack the auth counters:\n%.3000s", b)
			}
			if strings.Contains(string(b), "example.org") || strings.Contains(string(b), password) {
				t.Fatal("user data in metrics")
			}
			if strings.Contains(stderr.String(), "example.org") || strings.Count(stderr.String(), generated) != 1 ||
				strings.Contains(stderr.String(), password) || strings.Contains(stderr.String(), challenge) {
				t.Fatal("logs carry an email, a password or a challenge")
			}
			if code, _ := call(t, "GET", "http://"+a["auth/admin"]+"/readyz", "", ""); code.StatusCode != 200 {
				t.Fatalf("/readyz %d", code.StatusCode)
			}
			if err := stop(); err != nil {
				t.Fatalf("graceful stop: %v", err)
			}

			// Second start: nothing printed, same keys, same users.
			var stderr2 lockedBuffer
			a, _ = startPMSLogs(t, authAddrs, &stderr2, authArgs(t, dataDir, dbURL)...)
			if strings.Contains(stderr2.String(), "generated password") {
				t.Fatalf("a second start printed a password:\n%s", stderr2.String())
			}
			resp, b := call(t, "GET", "http://"+a["auth/http"]+"/validate", earlier, "")
			if resp.StatusCode != 200 {
				t.Fatalf("a token from before the restart: %d %s", resp.StatusCode, b)
			}
			resp, b = call(t, "POST", "http://"+a["auth/http"]+"/login", "", `{"email":"admin@pms.local","password":"`+password+`"}`)
			if resp.StatusCode != 200 {
				t.Fatalf("login after restart: %d %s", resp.StatusCode, b)
			}
		})
	}
}

// changeGeneratedPassword logs in at base (the auth service's or the gateway's /auth) with
// the generated bootstrap password, which answers 401 password_change_required and a
// challenge, sets newPassword with it through /password/set, and returns the challenge.
func changeGeneratedPassword(t *testing.T, base, generated, newPassword string) string {
	t.Helper()
	resp, b := call(t, "POST", base+"/login", "", `{"email":"admin@pms.local","password":"`+generated+`"}`)
	var eb struct{ Error, Challenge string }
	if err := json.Unmarshal(b, &eb); err != nil || resp.StatusCode != 401 || eb.Error != "password_change_required" || eb.Challenge == "" {
		t.Fatalf("login with the generated password: %d %s", resp.StatusCode, b)
	}
	if resp, b := call(t, "POST", base+"/password/set", "", `{"token":"`+eb.Challenge+`","newPassword":"`+newPassword+`"}`); resp.StatusCode != 204 {
		t.Fatalf("changing the generated password: %d %s", resp.StatusCode, b)
	}
	return eb.Challenge
}

// exerciseAuth drives every auth operation through c as the bootstrap admin and returns an
// access token of a session it leaves open.
func exerciseAuth(t *testing.T, c auth.Service, adminPW, tag string) string {
	ctx := context.Background()
	pair, err := c.Login(ctx, auth.LoginRequest{Email: "Admin@PMS.local", Password: adminPW})
	if err != nil || pair.TokenType != "Bearer" || pair.ExpiresIn != 900 {
		t.Fatalf("admin login: %+v %v", pair, err)
	}
	actx := authz.WithToken(ctx, pair.Token)
	v, err := c.Validate(actx)
	if err != nil || v.Role != authz.RoleAdmin || v.Email != "admin@pms.local" {
		t.Fatalf("validate: %+v %v", v, err)
	}
	email := "clin-" + tag + "@example.org"
	u, err := c.CreateUser(actx, auth.CreateUserRequest{Email: email, Password: "clinician password", Role: authz.RoleClinician})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateUser(actx, auth.CreateUserRequest{Email: strings.ToUpper(email), Password: "clinician password", Role: authz.RoleClinician}); !errors.Is(err, auth.ErrEmailTaken) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := c.CreateUser(actx, auth.CreateUserRequest{Email: "x" + email, Password: "eleven char", Role: authz.RoleClinician}); errs.KindOf(err) != errs.InvalidArgument {
		t.Fatalf("11-character password: %v", err)
	}
	// An invited user (no password): refused at login like a wrong password until its
	// one-time token sets a password, which then works; the token works once.
	invited := "inv-" + tag + "@example.org"
	inv, err := c.CreateUser(actx, auth.CreateUserRequest{Email: invited, Role: authz.RoleAnalyst})
	if err != nil || len(inv.InviteToken) != 43 || inv.InviteExpiresAt == nil || !inv.InviteExpiresAt.After(inv.CreatedAt) {
		t.Fatalf("invite: %+v %v", inv, err)
	}
	if _, err := c.Login(ctx, auth.LoginRequest{Email: invited, Password: "invited password"}); !errors.Is(err, auth.ErrBadCredentials) {
		t.Fatalf("invited login: %v", err)
	}
	if err := c.SetPassword(ctx, auth.SetPasswordRequest{Token: inv.InviteToken, NewPassword: "invited password"}); err != nil {
		t.Fatalf("set password: %v", err)
	}
	if _, err := c.Login(ctx, auth.LoginRequest{Email: invited, Password: "invited password"}); err != nil {
		t.Fatalf("login after set: %v", err)
	}
	if err := c.SetPassword(ctx, auth.SetPasswordRequest{Token: inv.InviteToken, NewPassword: "another password"}); !errors.Is(err, auth.ErrBadSetPasswordToken) {
		t.Fatalf("token reused: %v", err)
	}
	cp, err := c.Login(ctx, auth.LoginRequest{Email: email, Password: "clinician password"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListUsers(authz.WithToken(ctx, cp.Token)); errs.KindOf(err) != errs.PermissionDenied {
		t.Fatalf("clinician lists users: %v", err)
	}
	next, err := c.Refresh(ctx, auth.RefreshRequest{RefreshToken: cp.RefreshToken})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Refresh(ctx, auth.RefreshRequest{RefreshToken: cp.RefreshToken}); !errors.Is(err, auth.ErrBadRefreshToken) {
		t.Fatalf("reuse: %v", err)
	}
	if _, err := c.Refresh(ctx, auth.RefreshRequest{RefreshToken: next.RefreshToken}); !errors.Is(err, auth.ErrBadRefreshToken) {
		t.Fatalf("the family survived reuse: %v", err)
	}
	// A disabled user can neither log in nor refresh.
	cp, _ = c.Login(ctx, auth.LoginRequest{Email: email, Password: "clinician password"})
	yes := true
	if _, err := c.UpdateUser(actx, auth.UpdateUserRequest{ID: u.ID, Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Login(ctx, auth.LoginRequest{Email: email, Password: "clinician password"}); !errors.Is(err, auth.ErrBadCredentials) {
		t.Fatalf("disabled login: %v", err)
	}
	if _, err := c.Refresh(ctx, auth.RefreshRequest{RefreshToken: cp.RefreshToken}); !errors.Is(err, auth.ErrBadRefreshToken) {
		t.Fatalf("disabled refresh: %v", err)
	}
	if _, err := c.UpdateUser(actx, auth.UpdateUserRequest{ID: v.Sub, Disabled: &yes}); !errors.Is(err, auth.ErrLastAdmin) {
		t.Fatalf("disable the last admin: %v", err)
	}
	entries, err := c.Audit(actx, auth.AuditQuery{UserID: u.ID})
	if err != nil || len(entries) < 6 {
		t.Fatalf("audit: %d %v", len(entries), err)
	}
	for _, e := range entries {
		if e.RequestID == "" || e.ClientAddress == "" {
			t.Fatalf("audit entry lacks where: %+v", e)
		}
	}
	if err := c.Logout(ctx, auth.LogoutRequest{RefreshToken: pair.RefreshToken}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Refresh(ctx, auth.RefreshRequest{RefreshToken: pair.RefreshToken}); errs.KindOf(err) != errs.Unauthenticated {
		t.Fatalf("refresh after logout: %v", err)
	}
	// The logout ended that session's access token too (the revocation list), within the
	// deadline; a session still open keeps its own.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := c.Validate(actx)
		if errs.KindOf(err) == errs.Unauthenticated {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the logged-out session's access token still validates: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	open, err := c.Login(ctx, auth.LoginRequest{Email: "admin@pms.local", Password: adminPW})
	if err != nil {
		t.Fatal(err)
	}
	return open.Token
}

// TestUserCreateCommand: `pms user create` takes the password from PMS_USER_PASSWORD or
// standard input (never a flag), applies the rules, and the user can log in.
func TestUserCreateCommand(t *testing.T) {
	dataDir := t.TempDir()
	dbURL := "sqlite://" + filepath.Join(dataDir, "auth.db")
	run := func(in string, args ...string) (string, error) {
		t.Helper()
		stdin = strings.NewReader(in)
		defer func() { stdin = os.Stdin }()
		var out bytes.Buffer
		err := dispatch(context.Background(), append([]string{"user"}, append(args, "--data-dir="+dataDir, "--database-url="+dbURL, "--log-format=logfmt")...), &out, io.Discard)
		return out.String(), err
	}
	t.Setenv(userPasswordEnv, "from the environment")
	if out, err := run("", "create", "--email=env@example.org", "--role=billing"); err != nil || !strings.Contains(out, "created user") {
		t.Fatalf("env password: %q %v", out, err)
	}
	if _, err := run("", "create", "--email=ENV@example.org", "--role=billing"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("duplicate: %v", err)
	}
	os.Unsetenv(userPasswordEnv)
	if out, err := run("typed on stdin\n", "create", "--email=typist@example.org", "--role=analyst"); err != nil || !strings.Contains(out, "analyst") {
		t.Fatalf("stdin password: %q %v", out, err)
	}
	if _, err := run("short\n", "create", "--email=short@example.org", "--role=analyst"); err == nil || !strings.Contains(err.Error(), "password") {
		t.Fatalf("short password: %v", err)
	}
	// An empty password is refused here (the service would invite the user instead).
	if _, err := run("\n", "create", "--email=empty@example.org", "--role=analyst"); err == nil || !strings.Contains(err.Error(), "a password is required") {
		t.Fatalf("empty password: %v", err)
	}
	if _, err := run("long enough password\n", "create", "--email=x@example.org", "--role=root"); err == nil || !strings.Contains(err.Error(), "role") {
		t.Fatalf("bad role: %v", err)
	}
	if _, err := run("", "delete"); err == nil {
		t.Fatal("unknown user subcommand accepted")
	}
	if _, err := run("", "create", "--password=x"); err == nil {
		t.Fatal("a --password flag exists")
	}
	// No bootstrap admin on a database that has users; both users can log in.
	var stderr lockedBuffer
	a, _ := startPMSLogs(t, authAddrs, &stderr, authArgs(t, dataDir, dbURL)...)
	if strings.Contains(stderr.String(), "generated password") {
		t.Fatal("bootstrap ran although users exist")
	}
	for email, pw := range map[string]string{"env@example.org": "from the environment", "typist@example.org": "typed on stdin"} {
		if resp, b := call(t, "POST", "http://"+a["auth/http"]+"/login", "", `{"email":"`+email+`","password":"`+pw+`"}`); resp.StatusCode != 200 {
			t.Fatalf("login %s: %d %s", email, resp.StatusCode, b)
		}
	}
}

// TestLoginThrottleOverTheWire: past the limit a login gets 429 with Retry-After (HTTP) or
// ResourceExhausted (gRPC) without any password hash being computed (the hash counter on
// the admin port does not move), per account and per client address (x-forwarded-for,
// believed from the loopback proxy).
func TestLoginThrottleOverTheWire(t *testing.T) {
	t.Setenv(bootstrapPasswordEnv, adminPassword)
	dataDir := t.TempDir()
	a, _ := startPMS(t, authAddrs, authArgs(t, dataDir, "sqlite://"+filepath.Join(dataDir, "auth.db"),
		"--login-account-attempts=2", "--login-address-attempts=3", "--login-lockout=1m")...)
	base := "http://" + a["auth/http"]
	login := func(email, pw, xff string) (*http.Response, []byte) {
		return call(t, "POST", base+"/login", "", `{"email":"`+email+`","password":"`+pw+`"}`, "X-Forwarded-For", xff)
	}
	for i := range 2 {
		if resp, b := login("admin@pms.local", "wrong password!", "203.0.113."+strconv.Itoa(i+1)); resp.StatusCode != 401 {
			t.Fatalf("failure %d: %d %s", i, resp.StatusCode, b)
		}
	}
	hashes := metric(t, a["auth/admin"], "pms_auth_password_hashes_total")
	resp, b := login("admin@pms.local", adminPassword, "203.0.113.9")
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "60" || !strings.Contains(string(b), `"rate_limited"`) {
		t.Fatalf("locked account: %d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	gc := grpctransport.NewAuthClient(dialGRPC(t, a["auth/grpc"]))
	_, err := gc.Login(context.Background(), auth.LoginRequest{Email: "admin@pms.local", Password: adminPassword})
	var ee *errs.Error
	if !errors.As(err, &ee) || ee.Kind != errs.RateLimited || ee.RetryAfter <= 0 {
		t.Fatalf("gRPC login while locked: %v", err)
	}
	if got := metric(t, a["auth/admin"], "pms_auth_password_hashes_total"); got != hashes {
		t.Fatalf("throttled logins computed %v hashes", got-hashes)
	}
	// Per address: three failures on different accounts from one client lock that client.
	for i := range 3 {
		if resp, _ := login("nobody"+strconv.Itoa(i)+"@example.org", "wrong password!", "198.51.100.7"); resp.StatusCode != 401 {
			t.Fatalf("address failure %d: %d", i, resp.StatusCode)
		}
	}
	if resp, _ := login("someone@example.org", "whatever whatever", "198.51.100.7"); resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("locked address: %d", resp.StatusCode)
	}
	// The client forwards the context's client address as x-forwarded-for, as the gateway does.
	_, err = gc.Login(observe.WithClientAddr(context.Background(), "198.51.100.7"), auth.LoginRequest{Email: "someone@example.org", Password: "whatever whatever"})
	if errs.KindOf(err) != errs.RateLimited {
		t.Fatalf("locked address over gRPC: %v", err)
	}
	if resp, _ := login("someone@example.org", "whatever whatever", "198.51.100.8"); resp.StatusCode != 401 {
		t.Fatalf("another address is throttled too: %d", resp.StatusCode)
	}
	// The lock-outs are audited (read with a token minted from the service's key: the
	// admin is locked out).
	tok := ringIssuer(t, dataDir).Token(t, "test-admin", authz.RoleAdmin)
	resp, b = call(t, "GET", base+"/users/audit?limit=1000", tok, "")
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"action":"lockout"`) || !strings.Contains(string(b), `"action":"lockout_address"`) {
		t.Fatalf("audit: %d %s", resp.StatusCode, b)
	}
}

// ringIssuer is an authztest issuer signing with the key of the auth service whose data
// folder is dataDir, so forged claims carry a real signature.
func ringIssuer(t *testing.T, dataDir string) *authztest.Issuer {
	t.Helper()
	ring, _, err := auth.OpenKeyRing(filepath.Join(dataDir, auth.KeyFileName), auth.KeyRingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kid, priv := ring.SigningKey()
	return &authztest.Issuer{Kid: kid, Private: priv, Public: priv.Public().(ed25519.PublicKey)}
}

// startAuthAndPatient runs `pms auth` and a separate `pms patient` that fetches the auth
// service's JWKS over HTTP, as they run apart in production.
func startAuthAndPatient(t *testing.T) (authA, patientA map[string]string, dataDir string) {
	t.Helper()
	t.Setenv(bootstrapPasswordEnv, adminPassword)
	dataDir = t.TempDir()
	authA, _ = startPMS(t, authAddrs, authArgs(t, dataDir, "sqlite://"+filepath.Join(dataDir, "auth.db"))...)
	patientA, _ = startPMS(t, patientAddrs, "patient", "--auth-jwks-url=http://"+authA["auth/http"]+"/.well-known/jwks.json",
		"--http-addr=127.0.0.1:0", "--grpc-addr=127.0.0.1:0", "--admin-addr=127.0.0.1:0", "--data-dir="+t.TempDir(),
		"--database-url=sqlite://"+filepath.Join(t.TempDir(), "patient.db"), "--log-format=logfmt", "--log-level=warn")
	return authA, patientA, dataDir
}

// TestJWTAttacksOverTheWire sends every forged or unacceptable token of the contract to real
// `pms auth` and `pms patient` processes, over HTTP and gRPC: each must be 401
// (Unauthenticated), and a well-formed token signed by the auth service's key must pass.
func TestJWTAttacksOverTheWire(t *testing.T) {
	authA, patientA, dataDir := startAuthAndPatient(t)
	resp, b := call(t, "POST", "http://"+authA["auth/http"]+"/login", "", `{"email":"admin@pms.local","password":"`+adminPassword+`"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("login: %d %s", resp.StatusCode, b)
	}
	var pair auth.TokenPair
	_ = json.Unmarshal(b, &pair)
	is := ringIssuer(t, dataDir)
	authConn, patientConn := dialGRPC(t, authA["auth/grpc"]), dialGRPC(t, patientA["patient/grpc"])
	authG, patientG := grpctransport.NewAuthClient(authConn), grpctransport.NewPatientClient(patientConn)
	httpTargets := map[string]string{
		"auth GET /validate":    "http://" + authA["auth/http"] + "/validate",
		"auth GET /users":       "http://" + authA["auth/http"] + "/users",
		"patient GET /patients": "http://" + patientA["patient/http"] + "/patients",
	}
	grpcTargets := map[string]func(ctx context.Context) error{
		"auth Validate":        func(ctx context.Context) error { _, err := authG.Validate(ctx); return err },
		"auth ListUsers":       func(ctx context.Context) error { _, err := authG.ListUsers(ctx); return err },
		"patient ListPatients": func(ctx context.Context) error { _, err := patientG.List(ctx, patient.ListQuery{}); return err },
	}
	// The control: the real token, and one minted with the real key, pass everywhere.
	for _, tok := range []string{pair.Token, is.Token(t, "someone", authz.RoleAdmin)} {
		for name, url := range httpTargets {
			if resp, b := call(t, "GET", url, tok, ""); resp.StatusCode != 200 {
				t.Fatalf("%s with a valid token: %d %s", name, resp.StatusCode, b)
			}
		}
		for name, f := range grpcTargets {
			if err := f(authz.WithToken(context.Background(), tok)); err != nil {
				t.Fatalf("%s with a valid token: %v", name, err)
			}
		}
	}
	for attack, tok := range authztest.Attacks(t, is, pair.RefreshToken) {
		t.Run(attack, func(t *testing.T) {
			for name, url := range httpTargets {
				resp, b := call(t, "GET", url, tok, "")
				if resp.StatusCode != 401 || !strings.Contains(string(b), `"unauthenticated"`) {
					t.Errorf("%s: %d %s", name, resp.StatusCode, b)
				}
			}
			for name, f := range grpcTargets {
				ctx := context.Background()
				if tok != "" {
					ctx = authz.WithToken(ctx, tok)
				}
				if err := f(ctx); errs.KindOf(err) != errs.Unauthenticated {
					t.Errorf("%s: %v", name, err)
				}
			}
		})
	}
}

// TestKeyRotationOverTheWire: `pms auth rotate-key` while auth and patient run: new tokens
// carry the new kid, the JWKS lists both keys, and a token signed by the old key keeps
// working at both services (until it expires; pkg/auth tests the expiry with a clock).
func TestKeyRotationOverTheWire(t *testing.T) {
	authA, patientA, dataDir := startAuthAndPatient(t)
	login := func() string {
		t.Helper()
		resp, b := call(t, "POST", "http://"+authA["auth/http"]+"/login", "", `{"email":"admin@pms.local","password":"`+adminPassword+`"}`)
		if resp.StatusCode != 200 {
			t.Fatalf("login: %d %s", resp.StatusCode, b)
		}
		var p auth.TokenPair
		_ = json.Unmarshal(b, &p)
		return p.Token
	}
	patients := "http://" + patientA["patient/http"] + "/patients"
	old := login()
	if resp, _ := call(t, "GET", patients, old, ""); resp.StatusCode != 200 { // the patient service caches the key set
		t.Fatalf("before rotation: %d", resp.StatusCode)
	}
	var out bytes.Buffer
	if err := dispatch(context.Background(), []string{"auth", "rotate-key", "--data-dir=" + dataDir}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "retired "+kidOf(t, old)) {
		t.Fatalf("rotate-key said %q", out.String())
	}
	fresh := login()
	if kidOf(t, fresh) == kidOf(t, old) {
		t.Fatal("the running service still signs with the retired key")
	}
	_, b := call(t, "GET", "http://"+authA["auth/http"]+"/.well-known/jwks.json", "", "")
	var set authz.JWKS
	if err := json.Unmarshal(b, &set); err != nil || len(set.Keys) != 2 || set.Keys[0].Kid != kidOf(t, fresh) {
		t.Fatalf("JWKS after rotation: %s", b)
	}
	for _, tok := range []string{old, fresh} {
		if resp, b := call(t, "GET", "http://"+authA["auth/http"]+"/validate", tok, ""); resp.StatusCode != 200 {
			t.Fatalf("auth validate after rotation: %d %s", resp.StatusCode, b)
		}
	}
	// The patient service learns the new kid on its next JWKS fetch, which it allows itself
	// at most every 5 s: poll until then.
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, _ := call(t, "GET", patients, fresh, "")
		if resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the patient service never accepted the new key: %d", resp.StatusCode)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if resp, _ := call(t, "GET", patients, old, ""); resp.StatusCode != 200 {
		t.Fatalf("a token of the retired key was refused: %d", resp.StatusCode)
	}
}

// TestKeyRevocationOverTheWire: `pms auth rotate-key --revoke` while auth, patient and the
// gateway run as separate processes: a token of the revoked key stops verifying at the auth
// service within a second and at the patient service and the gateway within their JWKS
// refresh interval (1 s here), while a token of the new key is accepted everywhere. Every
// process serves TLS with its own certificate, so the JWKS travels over HTTPS.
func TestKeyRevocationOverTheWire(t *testing.T) {
	t.Setenv(bootstrapPasswordEnv, adminPassword)
	dataDir := t.TempDir()
	// Over TLS, each process with its own certificate: the JWKS is fetched over HTTPS.
	certs := certsFor(t)
	own := func(svc string) []string {
		return []string{"--tls-cert=" + filepath.Join(certs, svc+".pem"), "--tls-key=" + filepath.Join(certs, svc+"-key.pem"),
			"--tls-ca=" + filepath.Join(certs, "ca.pem")}
	}
	client := httpsClient(t, certs)
	authA, _ := startPMS(t, authAddrs, authArgs(t, dataDir, "sqlite://"+filepath.Join(dataDir, "auth.db"), own("auth")...)...)
	jwks := "--auth-jwks-url=https://" + authA["auth/http"] + "/.well-known/jwks.json"
	patientA, _ := startPMS(t, patientAddrs, append([]string{"patient", jwks, "--auth-jwks-refresh=1s",
		"--http-addr=127.0.0.1:0", "--grpc-addr=127.0.0.1:0", "--admin-addr=127.0.0.1:0", "--data-dir=" + t.TempDir(),
		"--database-url=sqlite://" + filepath.Join(t.TempDir(), "patient.db"), "--log-format=logfmt", "--log-level=warn", "--billing-addr="},
		own("patient")...)...)
	gwA, _ := startPMS(t, []string{"gateway/http", "gateway/admin"}, append([]string{"gateway", jwks, "--auth-jwks-refresh=1s",
		"--http-addr=127.0.0.1:0", "--admin-addr=127.0.0.1:0", "--patient-addr=" + patientA["patient/grpc"],
		"--billing-addr=127.0.0.1:1", "--auth-addr=" + authA["auth/grpc"], "--auth-revocations-addr=" + authA["auth/grpc"],
		"--analytics-addr=127.0.0.1:1", "--data-dir=" + t.TempDir(), "--log-format=logfmt", "--log-level=error"}, own("gateway")...)...)
	call := func(t *testing.T, method, url, token, body string) (*http.Response, []byte) {
		t.Helper()
		return callWith(t, client, method, url, token, body)
	}
	login := func() string {
		t.Helper()
		resp, b := call(t, "POST", "https://"+authA["auth/http"]+"/login", "", `{"email":"admin@pms.local","password":"`+adminPassword+`"}`)
		if resp.StatusCode != 200 {
			t.Fatalf("login: %d %s", resp.StatusCode, b)
		}
		var p auth.TokenPair
		_ = json.Unmarshal(b, &p)
		return p.Token
	}
	targets := map[string]string{
		"auth":    "https://" + authA["auth/http"] + "/validate",
		"patient": "https://" + patientA["patient/http"] + "/patients",
		"gateway": "https://" + gwA["gateway/http"] + "/api/patients",
	}
	old := login()
	for name, u := range targets {
		if resp, b := call(t, "GET", u, old, ""); resp.StatusCode != 200 {
			t.Fatalf("%s before the revocation: %d %s", name, resp.StatusCode, b)
		}
	}
	var out bytes.Buffer
	if err := dispatch(context.Background(), []string{"auth", "rotate-key", "--revoke", "--data-dir=" + dataDir}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "revoked "+kidOf(t, old)) {
		t.Fatalf("rotate-key --revoke said %q", out.String())
	}
	fresh := login()
	deadline := time.Now().Add(15 * time.Second)
	for name, u := range targets {
		for {
			oldResp, _ := call(t, "GET", u, old, "")
			newResp, _ := call(t, "GET", u, fresh, "")
			if oldResp.StatusCode == 401 && newResp.StatusCode == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: revoked key → %d, new key → %d; want 401 and 200 within the refresh interval", name, oldResp.StatusCode, newResp.StatusCode)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
