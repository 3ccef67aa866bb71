package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pms/pms/pkg/gateway/openapi"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/authz/authztest"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/ratelimit"
)

// newTestGateway is a gateway whose upstreams are down (a closed port): enough to see
// routing, the JWT check, the limiter and CORS, which all answer before an upstream.
func newTestGateway(t testing.TB, c Config) (*Gateway, *authztest.Issuer) {
	t.Helper()
	is := authztest.New(t)
	c.PatientAddr, c.BillingAddr, c.AuthAddr = "127.0.0.1:1", "127.0.0.1:1", "127.0.0.1:1"
	c.Verifier = authz.NewVerifier(is.Keys(), authz.DefaultIssuer, authz.DefaultAudience)
	if c.Timeout == 0 {
		c.Timeout = 2 * time.Second
	}
	g, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g, is
}

func errorWord(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var e struct{ Error string }
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("%d %q: not a contract error", rec.Code, rec.Body.String())
	}
	return e.Error
}

// TestRoutesMatchOpenAPI walks the gateway's routes against the OpenAPI document: a route
// served but not documented, or documented but not served, fails. Each documented route is
// also requested, to show the gateway really routes it (not a 404 or 405).
func TestRoutesMatchOpenAPI(t *testing.T) {
	c, _ := withOwnAudit(t, db.SQLite, Config{}) // the gateway's own routes too
	g, _ := newTestGateway(t, c)
	doc, err := openapi.Routes()
	if err != nil {
		t.Fatal(err)
	}
	documented := map[openapi.Route]bool{}
	for _, r := range doc {
		documented[r] = true
	}
	served := map[openapi.Route]bool{}
	for _, r := range g.Routes() {
		served[r] = true
		if !documented[r] {
			t.Errorf("%s %s is served but missing from openapi.json", r.Method, r.Path)
		}
	}
	for _, r := range doc {
		if !served[r] {
			t.Errorf("%s %s is in openapi.json but the gateway does not serve it", r.Method, r.Path)
			continue
		}
		path := strings.ReplaceAll(r.Path, "{id}", "7b0c2f8e-9a51-4a7e-8a3e-0f1d2c3b4a59")
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, httptest.NewRequest(r.Method, path, nil))
		if rec.Code == http.StatusNotFound || rec.Code == http.StatusMethodNotAllowed {
			t.Errorf("%s %s: %d %s", r.Method, path, rec.Code, rec.Body.String())
		}
	}
	for _, p := range []string{"/openapi.json", "/api-docs"} {
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s: %d", p, rec.Code)
		}
	}
}

// TestPublicSurface: no metrics, pprof or unrouted paths on the public port, /auth/users is
// not a way around /api/users, and every refusal is a contract error with a request id.
func TestPublicSurface(t *testing.T) {
	g, is := newTestGateway(t, Config{})
	clin := is.Token(t, "u-1", authz.RoleClinician)
	for _, tc := range []struct {
		method, path, token string
		code                int
		word                string
	}{
		{"GET", "/metrics", "", 404, "not_found"},
		{"GET", "/debug/pprof/", "", 404, "not_found"},
		{"GET", "/readyz", "", 404, "not_found"},
		{"GET", "/auth/users", "", 404, "not_found"},
		{"GET", "/api/login", "", 404, "not_found"},
		{"GET", "/api/patients", "", 401, "unauthenticated"},
		{"GET", "/api/patients", "garbage", 401, "unauthenticated"},
		{"GET", "/api/users", clin, 403, "permission_denied"},
		{"GET", "/api/audit", clin, 403, "permission_denied"},
		{"DELETE", "/api/patients", clin, 405, "method_not_allowed"},
		{"POST", "/api/patients", clin, 415, "unsupported_media_type"},
		{"GET", "/api/patients?bogus=1", clin, 400, "invalid_argument"},
		// The upstream is down: 503, never a 500.
		{"GET", "/api/patients", clin, 503, "unavailable"},
	} {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, req)
		if rec.Code != tc.code || errorWord(t, rec) != tc.word {
			t.Errorf("%s %s: %d %s, want %d %s", tc.method, tc.path, rec.Code, rec.Body.String(), tc.code, tc.word)
		}
		if rec.Header().Get("X-Request-ID") == "" {
			t.Errorf("%s %s: no X-Request-ID", tc.method, tc.path)
		}
	}
}

func TestClientRateLimit(t *testing.T) {
	g, is := newTestGateway(t, Config{ClientLimit: ratelimit.Config{Rate: 0.5, Burst: 2}})
	a, b := is.Token(t, "u-a", authz.RoleClinician), is.Token(t, "u-b", authz.RoleClinician)
	get := func(token string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/api/patients?bogus=1", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, req)
		return rec
	}
	for range 2 {
		if rec := get(a); rec.Code != 400 {
			t.Fatalf("within burst: %d", rec.Code)
		}
	}
	rec := get(a)
	if rec.Code != 429 || errorWord(t, rec) != "rate_limited" || rec.Header().Get("Retry-After") != "2" {
		t.Fatalf("past burst: %d %s Retry-After %q", rec.Code, rec.Body.String(), rec.Header().Get("Retry-After"))
	}
	// Another subject has its own bucket.
	if rec := get(b); rec.Code != 400 {
		t.Fatalf("other client: %d", rec.Code)
	}
}

func TestLimiterTableIsBounded(t *testing.T) {
	l := newClientLimiter(ratelimit.Config{Rate: 1, Burst: 1}, 3)
	now := time.Now()
	for i := range 10 {
		l.allow(string(rune('a'+i)), now)
	}
	if len(l.buckets) > 3 {
		t.Fatalf("%d buckets", len(l.buckets))
	}
}

func TestCORS(t *testing.T) {
	if _, err := New(Config{Verifier: &authz.Verifier{}, CORS: CORS{AllowedOrigins: []string{"*"}, AllowCredentials: true}}); err == nil {
		t.Fatal("* with credentials accepted")
	}
	off, _ := newTestGateway(t, Config{})
	req := httptest.NewRequest("GET", "/openapi.json", nil)
	req.Header.Set("Origin", "https://evil.example")
	rec := httptest.NewRecorder()
	off.ServeHTTP(rec, req)
	if rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("CORS is on by default")
	}
	on, _ := newTestGateway(t, Config{CORS: CORS{AllowedOrigins: []string{"https://app.example"}, AllowCredentials: true}})
	for origin, want := range map[string]string{"https://app.example": "https://app.example", "https://evil.example": ""} {
		req := httptest.NewRequest("OPTIONS", "/api/patients", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		rec := httptest.NewRecorder()
		on.ServeHTTP(rec, req)
		if got := rec.Header().Get("Access-Control-Allow-Origin"); got != want {
			t.Fatalf("%s: allow-origin %q, want %q", origin, got, want)
		}
	}
}

// TestNonTokenAuthorizationOnPublicRoute (found by FuzzGateway): an Authorization header that
// no token could be (here non-ASCII) on a public route used to be forwarded to the upstream
// as gRPC metadata, which gRPC refuses: a 500. It is now no token at all, so the call goes on
// (and meets the upstream that is down: 503).
func TestNonTokenAuthorizationOnPublicRoute(t *testing.T) {
	g, _ := newTestGateway(t, Config{})
	for _, auth := range []string{"Bearer 0k\xf4\xac\x9b\xdb<o", "Bearer a\x01b", "Bearer a b"} {
		req := httptest.NewRequest("POST", "/auth/login", strings.NewReader(`{"email":"a@b.c","password":"p"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", auth)
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, req)
		if rec.Code != 503 || errorWord(t, rec) != "unavailable" {
			t.Errorf("%q: %d %s", auth, rec.Code, rec.Body.String())
		}
	}
}
