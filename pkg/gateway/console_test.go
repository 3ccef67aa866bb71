package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pms/pms/pkg/gateway/console"
)

// TestConsoleRoutes: the gateway serves the staff console at exactly "/" and its listed
// assets under "/console/", with the CSP and hardening headers on every console answer,
// errors included; unknown console paths and every other unknown path stay the JSON 404,
// other methods the JSON 405, and the API routes are untouched.
func TestConsoleRoutes(t *testing.T) {
	g, _ := newTestGateway(t, Config{})
	serve := func(method, path string, headers ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, nil)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, req)
		return rec
	}
	for path, a := range console.Assets {
		rec := serve("GET", path)
		if rec.Code != 200 || rec.Header().Get("Content-Type") != a.Type || rec.Body.Len() == 0 {
			t.Errorf("GET %s: %d %q", path, rec.Code, rec.Header().Get("Content-Type"))
		}
		if rec.Header().Get("Content-Security-Policy") != console.CSP || rec.Header().Get("X-Frame-Options") != "DENY" ||
			rec.Header().Get("X-Content-Type-Options") != "nosniff" || rec.Header().Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("GET %s: headers %v", path, rec.Header())
		}
		if etag := rec.Header().Get("ETag"); etag == "" || serve("GET", path, "If-None-Match", etag).Code != http.StatusNotModified {
			t.Errorf("GET %s: ETag %q not revalidated", path, etag)
		}
		if head := serve("HEAD", path); head.Code != 200 || head.Body.Len() != 0 || head.Header().Get("Content-Length") == "" {
			t.Errorf("HEAD %s: %d %d bytes", path, head.Code, head.Body.Len())
		}
	}
	for _, tc := range []struct {
		method, path string
		code         int
		word         string
		csp          bool
	}{
		{"GET", "/console", 404, "not_found", true},
		{"GET", "/console/nope.js", 404, "not_found", true},
		{"GET", "/console/../go.mod", 404, "not_found", true},
		{"GET", "/console/index.html", 404, "not_found", true},
		{"GET", "/console/assets/app.js", 404, "not_found", true},
		{"GET", "/index.html", 404, "not_found", false},
		{"GET", "/favicon.ico", 404, "not_found", false},
		{"GET", "/consolex", 404, "not_found", false},
		{"POST", "/", 405, "method_not_allowed", true},
		{"PUT", "/console/app.js", 405, "method_not_allowed", true},
		{"GET", "/api/nope", 404, "not_found", false},
		{"GET", "/api/patients", 401, "unauthenticated", false},
	} {
		rec := serve(tc.method, tc.path)
		if rec.Code != tc.code || errorWord(t, rec) != tc.word {
			t.Errorf("%s %s: %d %s, want %d %s", tc.method, tc.path, rec.Code, rec.Body.String(), tc.code, tc.word)
		}
		if got := rec.Header().Get("Content-Security-Policy") != ""; got != tc.csp {
			t.Errorf("%s %s: CSP present %v, want %v", tc.method, tc.path, got, tc.csp)
		}
		if tc.code == 405 && rec.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s %s: Allow %q", tc.method, tc.path, rec.Header().Get("Allow"))
		}
	}
	// The policy forbids inline script and eval and third-party origins.
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "http:", "https:", "*"} {
		if strings.Contains(console.CSP, bad) {
			t.Errorf("CSP allows %s: %s", bad, console.CSP)
		}
	}
}
