package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/ratelimit"
)

// fuzzOrigin is the one origin the fuzzed gateway allows.
const fuzzOrigin = "https://app.example.org"

// FuzzGateway sends arbitrary requests to the gateway (method, path and query, Origin,
// token, content type, body) with its upstreams down. What the gateway reads itself is the
// path it dispatches on, the Origin and preflight headers, and the token; the rest goes
// through the services' own decoders. Every answer is a success, a 4xx, or 503/504 for the
// upstream that is down, never a 500 or a panic; every error has the contract's body and a
// request id; CORS allows exactly the configured origin.
func FuzzGateway(f *testing.F) {
	g, is := newTestGateway(f, Config{
		CORS:        CORS{AllowedOrigins: []string{fuzzOrigin}, AllowCredentials: true},
		ClientLimit: ratelimit.Config{Rate: -1},
	})
	tokens := []string{"", is.Token(f, "u-1", authz.RoleClinician), is.Token(f, "u-2", authz.RoleAdmin)}
	for _, s := range []struct {
		token                            uint8
		method, target, origin, ct, body string
	}{
		{0, "GET", "/api/patients", "", "", ""},
		{1, "GET", "/api/patients?limit=0", fuzzOrigin, "", ""},
		{1, "POST", "/api/patients", "https://APP.example.org", "application/json", `{"name":1}`},
		{2, "GET", "/api/users/audit?from=0000-01-01", "", "", ""},
		{2, "PATCH", "/api/users/u-1", "", "text/plain", `{}`},
		{0, "POST", "/auth/login", "https://evil.example", "application/json", `{"email":"a@b.c"}`},
		{0, "POST", "/auth/login", "", "application/json", `{"email":"a@b.c","password":"p"}`},
		{0, "GET", "/auth/.well-known/jwks.json", "", "", ""},
		{0, "OPTIONS", "/api/patients", fuzzOrigin, "", ""},
		{0, "GET", "/openapi.json", "", "", ""},
		{0, "GET", "/", "", "", ""},
		{0, "GET", "/console/app.js", "https://evil.example", "", ""},
		{0, "POST", "/console/../console/app.js", "", "application/json", `{}`},
		{1, "GET", "/api/billing/invoices/x/../y", "", "", ""},
		{1, "POST", "/api/billing/invoices/%00/void", "", "application/json", `{"x":1}`},
		{1, "GET", "/api/analytics/summary?from=2026-02-30", "", "", ""},
		{3, "GET", "/api/patientsx", "null", "", ""},
		{3, "DELETE", "/auth/users", "", "", ""},
		{3, "", "", "", "", ""},
		{3, "GET", "//api/patients", "", "", ""},
	} {
		f.Add(s.token, s.method, s.target, s.origin, s.ct, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, token uint8, method, target, origin, contentType string, body []byte) {
		path, query, _ := strings.Cut(target, "?")
		r := &http.Request{
			Method: method, URL: &url.URL{Path: path, RawQuery: query}, Host: "gw.test", RemoteAddr: "198.51.100.7:4000",
			Header: http.Header{"Origin": {origin}, "Content-Type": {contentType}, "Access-Control-Request-Method": {method}},
			Body:   io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)),
		}
		auth := ""
		if int(token) < len(tokens) {
			auth = tokens[token]
		} else {
			auth = origin // any text as a token
		}
		if auth != "" {
			r.Header.Set("Authorization", "Bearer "+auth)
		}
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, r)
		h := rec.Header()
		if rec.Code < 200 || (rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable && rec.Code != http.StatusGatewayTimeout) {
			t.Fatalf("%s %q: %d %s", method, target, rec.Code, rec.Body.String())
		}
		if rec.Code >= 400 {
			var e struct {
				Error     errs.Kind
				Message   string
				RequestID string `json:"requestId"`
			}
			if json.Unmarshal(rec.Body.Bytes(), &e) != nil || !e.Error.Known() || e.Message == "" || e.RequestID == "" ||
				h.Get("X-Request-ID") != e.RequestID {
				t.Fatalf("%s %q: %d %q is not a contract error", method, target, rec.Code, rec.Body.String())
			}
		}
		allowed := h.Get("Access-Control-Allow-Origin")
		if allowed != "" && (allowed != origin || !strings.EqualFold(origin, fuzzOrigin)) {
			t.Fatalf("Origin %q allowed as %q", origin, allowed)
		}
		if (origin != "") != (h.Get("Vary") == "Origin") {
			t.Fatalf("Origin %q, Vary %q", origin, h.Get("Vary"))
		}
		if rec.Code == http.StatusNoContent && method == http.MethodOptions && allowed == "" {
			t.Fatalf("preflight answered for Origin %q", origin)
		}
	})
}
