package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/authz/authztest"
	"github.com/pms/pms/pkg/platform/db/dbtest"
)

// errWord returns the contract error word of an answer body.
func errWord(b []byte) string {
	var e struct{ Error string }
	_ = json.Unmarshal(b, &e)
	return e.Error
}

// TestGatewayJourney runs `pms all` and goes only through the gateway's port: the earlier
// Java implementation's checks, then a patient's whole life, billing, the audit trail with
// the request id and client address, every error kind the journey can provoke, and the JWT
// attack list. On PostgreSQL it runs over TLS and mutual TLS with a certificate per service
// (as a deployment does); on SQLite in plain HTTP with no TLS flags (as `make run` does).
func TestGatewayJourney(t *testing.T) {
	for name, url := range map[string]func() string{
		"postgres": func() string { return dbtest.PostgresDatabase(t) },
		"sqlite":   func() string { return "" },
	} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			scheme, client, extra := "http://", http.DefaultClient, []string{"--gateway-client-rate=2000", "--gateway-client-burst=4000"}
			if name == "postgres" {
				certs := certsFor(t)
				scheme, client = "https://", httpsClient(t, certs)
				extra = append(extra, tlsArgs(certs)...)
				for _, svc := range []string{"auth", "billing", "patient", "analytics", "gateway"} {
					extra = append(extra, "--"+svc+"-tls-cert="+filepath.Join(certs, svc+".pem"), "--"+svc+"-tls-key="+filepath.Join(certs, svc+"-key.pem"))
				}
			}
			call := func(t *testing.T, method, url, token, body string, headers ...string) (*http.Response, []byte) {
				t.Helper()
				return callWith(t, client, method, url, token, body, headers...)
			}
			a, _ := startPMS(t, allAddrs, allArgs(t, url(), extra...)...)
			for _, k := range []string{"auth/admin", "billing/admin", "patient/admin", "gateway/admin"} {
				waitReadyWith(t, client, scheme+a[k])
			}
			t.Logf("pms all (%s): start to every /readyz 200 in %v", name, time.Since(start))
			gw := scheme + a["gateway/http"]

			// The earlier implementation's integration checks, unchanged.
			resp, b := call(t, "POST", gw+"/auth/login", "", `{"email":"`+allAdminEmail+`","password":"`+adminPassword+`"}`)
			var pair struct{ Token *string }
			if resp.StatusCode != 200 || json.Unmarshal(b, &pair) != nil || pair.Token == nil {
				t.Fatalf("login: %d %s", resp.StatusCode, b)
			}
			tok := *pair.Token
			if resp, b := call(t, "POST", gw+"/auth/login", "", `{"email":"`+allAdminEmail+`","password":"wrong-password-1"}`); resp.StatusCode != 401 {
				t.Fatalf("bad login: %d %s", resp.StatusCode, b)
			}
			resp, b = call(t, "GET", gw+"/api/patients", tok, "")
			var arr []json.RawMessage
			if resp.StatusCode != 200 || json.Unmarshal(b, &arr) != nil {
				t.Fatalf("list: %d %s", resp.StatusCode, b)
			}
			if resp, _ := call(t, "GET", gw+"/api/patients", "", ""); resp.StatusCode != 401 {
				t.Fatalf("list without token: %d", resp.StatusCode)
			}
			// Analytics is mounted under /api/analytics.
			if resp, b := call(t, "GET", gw+"/api/analytics/summary", tok, ""); resp.StatusCode != 200 || !strings.Contains(string(b), `"patients"`) {
				t.Fatalf("analytics summary through the gateway: %d %s", resp.StatusCode, b)
			}
			if resp, _ := call(t, "GET", gw+"/api/analytics/summary?from=nope", tok, ""); resp.StatusCode != 400 {
				t.Fatalf("bad summary query through the gateway: %d", resp.StatusCode)
			}

			// Create, read, list, search, page.
			reqID := "0123456789abcdef0123456789abcdef"
			var ids []string
			for i := range 3 {
				body := fmt.Sprintf(`{"name":"Ada %d","email":"ada%d@example.org","address":"1 Main St","dateOfBirth":"1990-12-10"}`, i, i)
				resp, b := call(t, "POST", gw+"/api/patients", tok, body)
				var p struct{ ID string }
				if resp.StatusCode != 201 || json.Unmarshal(b, &p) != nil {
					t.Fatalf("create: %d %s", resp.StatusCode, b)
				}
				if loc := resp.Header.Get("Location"); loc != "/api/patients/"+p.ID {
					t.Fatalf("Location %q", loc)
				}
				ids = append(ids, p.ID)
			}
			id := ids[0]
			resp, b = call(t, "GET", gw+"/api/patients/"+id, tok, "", "X-Request-ID", reqID, "X-Forwarded-For", "203.0.113.7")
			if resp.StatusCode != 200 || resp.Header.Get("ETag") != `"1"` || resp.Header.Get("X-Request-ID") != reqID {
				t.Fatalf("read: %d %v %s", resp.StatusCode, resp.Header, b)
			}
			resp, b = call(t, "GET", gw+"/api/patients?q=ada&limit=2", tok, "")
			link := resp.Header.Get("Link")
			if resp.StatusCode != 200 || resp.Header.Get("X-Total-Count") != "3" || !strings.HasPrefix(link, "</api/patients?") {
				t.Fatalf("search: %d Link %q %s", resp.StatusCode, link, b)
			}
			next := strings.TrimSuffix(strings.TrimPrefix(strings.Split(link, ";")[0], "<"), ">")
			if resp, b := call(t, "GET", gw+next, tok, ""); resp.StatusCode != 200 || json.Unmarshal(b, &arr) != nil || len(arr) != 1 {
				t.Fatalf("next page: %d %s", resp.StatusCode, b)
			}

			// Update with a stale and a fresh If-Match; delete, then 410.
			upd := `{"name":"Ada L","email":"ada0@example.org","address":"2 Main St","dateOfBirth":"1990-12-10"}`
			if resp, b := call(t, "PUT", gw+"/api/patients/"+id, tok, upd, "If-Match", `"7"`); resp.StatusCode != 412 || errWord(b) != "precondition_failed" {
				t.Fatalf("stale If-Match: %d %s", resp.StatusCode, b)
			}
			if resp, b := call(t, "PUT", gw+"/api/patients/"+id, tok, upd, "If-Match", `"1"`); resp.StatusCode != 200 || resp.Header.Get("ETag") != `"2"` {
				t.Fatalf("fresh If-Match: %d %s", resp.StatusCode, b)
			}
			if resp, b := call(t, "GET", gw+"/api/patients/"+id+"/history", tok, ""); resp.StatusCode != 200 || json.Unmarshal(b, &arr) != nil || len(arr) != 2 {
				t.Fatalf("history: %d %s", resp.StatusCode, b)
			}

			// Billing: invoice, issue, pay, the patient's invoices.
			waitAccount(t, client, gw+"/api/billing", tok, ids[1])
			resp, b = call(t, "POST", gw+"/api/billing/invoices", tok,
				`{"patientId":"`+ids[1]+`","currency":"USD","dueDate":"2030-12-31","lines":[{"description":"visit","quantity":1,"unitAmount":5000}]}`)
			var inv struct{ ID, Status string }
			if resp.StatusCode != 201 || json.Unmarshal(b, &inv) != nil || resp.Header.Get("Location") != "/api/billing/invoices/"+inv.ID {
				t.Fatalf("invoice: %d %v %s", resp.StatusCode, resp.Header.Get("Location"), b)
			}
			if resp, b := call(t, "POST", gw+"/api/billing/invoices/"+inv.ID+"/issue", tok, ""); resp.StatusCode != 200 {
				t.Fatalf("issue: %d %s", resp.StatusCode, b)
			}
			if resp, b := call(t, "POST", gw+"/api/billing/invoices/"+inv.ID+"/payments", tok, `{"amount":5000,"method":"card"}`); resp.StatusCode != 200 || json.Unmarshal(b, &inv) != nil || inv.Status != "paid" {
				t.Fatalf("pay: %d %s", resp.StatusCode, b)
			}
			if resp, b := call(t, "GET", gw+"/api/patients/"+ids[1]+"/invoices", tok, ""); resp.StatusCode != 200 || json.Unmarshal(b, &arr) != nil || len(arr) != 1 {
				t.Fatalf("patient invoices: %d %s", resp.StatusCode, b)
			}

			if resp, b := call(t, "DELETE", gw+"/api/patients/"+id, tok, ""); resp.StatusCode != 204 {
				t.Fatalf("delete: %d %s", resp.StatusCode, b)
			}

			// Every error kind the contract has that a client can provoke here.
			clin := ""
			{
				if resp, b := call(t, "POST", gw+"/api/users", tok, `{"email":"nurse@example.org","password":"a long enough password","role":"clinician"}`); resp.StatusCode != 201 || resp.Header.Get("Location") == "" || !strings.HasPrefix(resp.Header.Get("Location"), "/api/users/") {
					t.Fatalf("create user: %d %s", resp.StatusCode, b)
				}
				resp, b := call(t, "POST", gw+"/auth/login", "", `{"email":"nurse@example.org","password":"a long enough password"}`)
				var p struct{ Token string }
				if resp.StatusCode != 200 || json.Unmarshal(b, &p) != nil {
					t.Fatalf("nurse login: %d %s", resp.StatusCode, b)
				}
				clin = p.Token
			}
			// An invited user: created without a password, it gets its one-time token; it
			// cannot log in until the token (public route) sets a password, once.
			{
				resp, b := call(t, "POST", gw+"/api/users", tok, `{"email":"ward.clerk@example.org","role":"analyst"}`)
				var c struct{ ID, InviteToken, InviteExpiresAt string }
				if resp.StatusCode != 201 || json.Unmarshal(b, &c) != nil || len(c.InviteToken) != 43 || c.InviteExpiresAt == "" ||
					resp.Header.Get("Location") != "/api/users/"+c.ID {
					t.Fatalf("invite through the gateway: %d %s", resp.StatusCode, b)
				}
				login := `{"email":"ward.clerk@example.org","password":"the invitee's own password"}`
				if resp, b := call(t, "POST", gw+"/auth/login", "", login); resp.StatusCode != 401 || errWord(b) != "unauthenticated" {
					t.Fatalf("invited login: %d %s", resp.StatusCode, b)
				}
				set := `{"token":"` + c.InviteToken + `","newPassword":"the invitee's own password"}`
				if resp, b := call(t, "POST", gw+"/auth/password/set", "", set); resp.StatusCode != 204 {
					t.Fatalf("set password through the gateway: %d %s", resp.StatusCode, b)
				}
				if resp, b := call(t, "POST", gw+"/auth/login", "", login); resp.StatusCode != 200 {
					t.Fatalf("invitee login: %d %s", resp.StatusCode, b)
				}
				if resp, b := call(t, "POST", gw+"/auth/password/set", "", set); resp.StatusCode != 400 || errWord(b) != "invalid_argument" ||
					!strings.Contains(string(b), `"token"`) {
					t.Fatalf("token reused through the gateway: %d %s", resp.StatusCode, b)
				}
				// The admin resets the invitee's password (gateway → auth over gRPC): the
				// password stops working, the reset token sets a new one; the invitee then
				// changes it itself with its current one.
				resp, b = call(t, "POST", gw+"/api/users/"+c.ID+"/reset-password", tok, "")
				var r struct{ ResetToken, ResetExpiresAt string }
				if resp.StatusCode != 201 || json.Unmarshal(b, &r) != nil || len(r.ResetToken) != 43 || r.ResetExpiresAt == "" {
					t.Fatalf("reset through the gateway: %d %s", resp.StatusCode, b)
				}
				if resp, b := call(t, "POST", gw+"/auth/login", "", login); resp.StatusCode != 401 || errWord(b) != "unauthenticated" {
					t.Fatalf("login after reset: %d %s", resp.StatusCode, b)
				}
				if resp, b := call(t, "POST", gw+"/auth/password/set", "", `{"token":"`+r.ResetToken+`","newPassword":"password123456"}`); resp.StatusCode != 400 ||
					!strings.Contains(string(b), "common") {
					t.Fatalf("common password through the gateway: %d %s", resp.StatusCode, b)
				}
				if resp, b := call(t, "POST", gw+"/auth/password/set", "", `{"token":"`+r.ResetToken+`","newPassword":"the reset password"}`); resp.StatusCode != 204 {
					t.Fatalf("set after reset: %d %s", resp.StatusCode, b)
				}
				resp, b = call(t, "POST", gw+"/auth/login", "", `{"email":"ward.clerk@example.org","password":"the reset password"}`)
				var p struct{ Token string }
				if resp.StatusCode != 200 || json.Unmarshal(b, &p) != nil {
					t.Fatalf("login with the reset password: %d %s", resp.StatusCode, b)
				}
				if resp, b := call(t, "POST", gw+"/auth/password", p.Token, `{"currentPassword":"not the password 1","newPassword":"the changed password"}`); resp.StatusCode != 401 || errWord(b) != "unauthenticated" {
					t.Fatalf("wrong current password through the gateway: %d %s", resp.StatusCode, b)
				}
				if resp, b := call(t, "POST", gw+"/auth/password", p.Token, `{"currentPassword":"the reset password","newPassword":"the changed password"}`); resp.StatusCode != 204 {
					t.Fatalf("change through the gateway: %d %s", resp.StatusCode, b)
				}
				resp, b = call(t, "POST", gw+"/auth/login", "", `{"email":"ward.clerk@example.org","password":"the changed password"}`)
				if resp.StatusCode != 200 || json.Unmarshal(b, &p) != nil {
					t.Fatalf("login with the changed password: %d %s", resp.StatusCode, b)
				}
				gatewayMFAJourney(t, call, gw, p.Token, "ward.clerk@example.org", "the changed password")
			}
			// Sessions through the gateway (auth over gRPC): the browser's user agent reaches
			// the session list; strangers' failures lock the account's unknown devices but not
			// the device of an earlier login; one session ends, then all of them.
			{
				if resp, b := call(t, "POST", gw+"/api/users", tok, `{"email":"sessions@example.org","password":"a listed devices passphrase","role":"analyst"}`); resp.StatusCode != 201 {
					t.Fatalf("create: %d %s", resp.StatusCode, b)
				}
				const ua = "Mozilla/5.0 (journey) Gecko/20100101 Firefox/140.0"
				login := `{"email":"sessions@example.org","password":"a listed devices passphrase"}`
				var s1, s2 struct{ Token, RefreshToken, DeviceToken string }
				resp, b := call(t, "POST", gw+"/auth/login", "", login, "User-Agent", ua)
				if resp.StatusCode != 200 || json.Unmarshal(b, &s1) != nil || s1.DeviceToken == "" {
					t.Fatalf("login: %d %s", resp.StatusCode, b)
				}
				for i := range 6 {
					resp, b := call(t, "POST", gw+"/auth/login", "", `{"email":"sessions@example.org","password":"guess `+fmt.Sprint(i)+`"}`)
					if resp.StatusCode != 401 && resp.StatusCode != 429 {
						t.Fatalf("a stranger's guess: %d %s", resp.StatusCode, b)
					}
				}
				if resp, b := call(t, "POST", gw+"/auth/login", "", login); resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
					t.Fatalf("an unknown device after the guesses: %d %s", resp.StatusCode, b)
				}
				resp, b = call(t, "POST", gw+"/auth/login", "", `{"email":"sessions@example.org","password":"a listed devices passphrase","deviceToken":"`+s1.DeviceToken+`"}`)
				if resp.StatusCode != 200 || json.Unmarshal(b, &s2) != nil || s2.DeviceToken != s1.DeviceToken {
					t.Fatalf("the known device: %d %s", resp.StatusCode, b)
				}
				resp, b = call(t, "GET", gw+"/auth/sessions", s1.Token, "")
				var list []struct {
					ID, UserAgent, ClientAddress string
					Current                      bool
				}
				if resp.StatusCode != 200 || json.Unmarshal(b, &list) != nil || len(list) != 2 {
					t.Fatalf("sessions: %d %s", resp.StatusCode, b)
				}
				for _, s := range list {
					if s.Current && (s.UserAgent != ua || s.ClientAddress == "") {
						t.Fatalf("the current session through the gateway: %s", b)
					}
				}
				if resp, b := call(t, "DELETE", gw+"/auth/sessions/"+sessionOf(t, s2.Token), s1.Token, ""); resp.StatusCode != 204 {
					t.Fatalf("delete a session: %d %s", resp.StatusCode, b)
				}
				if resp, b := call(t, "POST", gw+"/auth/refresh", "", `{"refreshToken":"`+s2.RefreshToken+`"}`); resp.StatusCode != 401 {
					t.Fatalf("refresh of a deleted session: %d %s", resp.StatusCode, b)
				}
				if resp, b := call(t, "DELETE", gw+"/auth/sessions/"+sessionOf(t, tok), s1.Token, ""); resp.StatusCode != 404 || errWord(b) != "not_found" {
					t.Fatalf("delete the admin's session: %d %s", resp.StatusCode, b)
				}
				if resp, b := call(t, "DELETE", gw+"/auth/sessions", s1.Token, ""); resp.StatusCode != 204 {
					t.Fatalf("logout everywhere: %d %s", resp.StatusCode, b)
				}
				if resp, b := call(t, "POST", gw+"/auth/refresh", "", `{"refreshToken":"`+s1.RefreshToken+`"}`); resp.StatusCode != 401 {
					t.Fatalf("refresh after logout everywhere: %d %s", resp.StatusCode, b)
				}
			}
			big := `{"name":"` + strings.Repeat("x", 2<<20) + `"}`
			for _, tc := range []struct {
				method, path, token, body string
				headers                   []string
				code                      int
				word                      string
			}{
				{"GET", "/api/patients/" + id, tok, "", nil, 410, "gone"},
				{"GET", "/api/patients/not-an-id", tok, "", nil, 400, "invalid_argument"},
				{"POST", "/api/patients", tok, `{"name":"x","bogus":1}`, nil, 400, "invalid_argument"},
				{"GET", "/api/patients", "", "", nil, 401, "unauthenticated"},
				{"GET", "/api/audit", clin, "", nil, 403, "permission_denied"},
				{"GET", "/api/users", clin, "", nil, 403, "permission_denied"},
				{"GET", "/api/patients/7b0c2f8e-9a51-4a7e-8a3e-0f1d2c3b4a59", tok, "", nil, 404, "not_found"},
				{"GET", "/api/nothing", tok, "", nil, 404, "not_found"},
				{"PATCH", "/api/patients", tok, "", nil, 405, "method_not_allowed"},
				{"POST", "/api/patients", tok, `{"name":"Ada","email":"ada1@example.org","address":"1 Main St","dateOfBirth":"1990-12-10"}`, nil, 409, "conflict"},
				{"PUT", "/api/patients/" + ids[1], tok, upd, []string{"If-Match", `"9"`}, 412, "precondition_failed"},
				{"POST", "/api/patients", tok, big, nil, 413, "payload_too_large"},
				{"POST", "/api/patients", tok, `{}`, []string{"Content-Type", "text/plain"}, 415, "unsupported_media_type"},
			} {
				resp, b := call(t, tc.method, gw+tc.path, tc.token, tc.body, tc.headers...)
				if resp.StatusCode != tc.code || errWord(b) != tc.word {
					t.Errorf("%s %s: %d %.200s; want %d %s", tc.method, tc.path, resp.StatusCode, b, tc.code, tc.word)
				}
			}

			// The JWT attack list: every one refused by the gateway.
			is := authztest.New(t)
			for attack, bad := range authztest.Attacks(t, is, "") {
				if resp, b := call(t, "GET", gw+"/api/patients", bad, ""); resp.StatusCode != 401 || errWord(b) != "unauthenticated" {
					t.Errorf("attack %s: %d %s", attack, resp.StatusCode, b)
				}
			}

			// The audit trail (admin, through the gateway) has the read with the request id
			// and the client address the gateway forwarded.
			deadline := time.Now().Add(10 * time.Second)
			for {
				resp, b := call(t, "GET", gw+"/api/audit?patientId="+id, tok, "")
				var entries []struct{ Action, RequestID, ClientAddress string }
				if resp.StatusCode != 200 || json.Unmarshal(b, &entries) != nil {
					t.Fatalf("audit: %d %s", resp.StatusCode, b)
				}
				found := false
				for _, e := range entries {
					if e.RequestID == reqID {
						found = true
						if e.ClientAddress != "203.0.113.7" {
							t.Fatalf("audit row client address %q", e.ClientAddress)
						}
					}
				}
				if found {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no audit row with request id %s: %s", reqID, b)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// TestGatewayLimitsAndUpstreamOutage runs the gateway alone in front of a patient service:
// a burst past the client's bucket gets 429 with Retry-After; stopping the patient service
// turns reads into 503 (never 500), and bringing it back on the same address recovers.
func TestGatewayLimitsAndUpstreamOutage(t *testing.T) {
	url := "sqlite://" + t.TempDir() + "/pms.db"
	pa, stopPatient := startPMS(t, patientAddrs, patientArgs(t, url)...)
	ga, _ := startPMS(t, []string{"gateway/http", "gateway/admin"}, "gateway", "--http-addr=127.0.0.1:0", "--admin-addr=127.0.0.1:0",
		"--data-dir="+t.TempDir(), "--patient-addr="+pa["patient/grpc"], "--billing-addr=127.0.0.1:1", "--auth-addr=127.0.0.1:1", jwksArg(),
		"--gateway-client-rate=1", "--gateway-client-burst=5", "--gateway-timeout=2s", "--log-format=logfmt", "--log-level=error")
	gw := "http://" + ga["gateway/http"]
	tok := testIssuer.Token(t, "burst-1", authz.RoleClinician)
	if resp, b := call(t, "GET", gw+"/api/patients", tok, ""); resp.StatusCode != 200 {
		t.Fatalf("through the gateway: %d %s", resp.StatusCode, b)
	}
	limited := false
	for range 10 {
		resp, b := call(t, "GET", gw+"/api/patients", tok, "")
		if resp.StatusCode == 429 {
			if errWord(b) != "rate_limited" || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("429 without the contract's body or Retry-After: %v %s", resp.Header, b)
			}
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("a burst past the bucket was never limited")
	}

	// Outage: another subject (its own bucket).
	tok2 := testIssuer.Token(t, "outage-1", authz.RoleClinician)
	if err := stopPatient(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		resp, b := call(t, "GET", gw+"/api/patients", tok2, "")
		if resp.StatusCode != 503 || errWord(b) != "unavailable" {
			t.Fatalf("upstream down: %d %s", resp.StatusCode, b)
		}
	}
	// Back on the same address: the gateway finds it again (breaker half-opens, reconnect).
	args := patientArgs(t, url)
	for i, a := range args {
		if strings.HasPrefix(a, "--grpc-addr=") {
			args[i] = "--grpc-addr=" + pa["patient/grpc"]
		}
	}
	startPMS(t, patientAddrs, args...)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, b := call(t, "GET", gw+"/api/patients", tok2, "")
		if resp.StatusCode == 200 {
			break
		}
		if resp.StatusCode != 503 && resp.StatusCode != 429 {
			t.Fatalf("during recovery: %d %s", resp.StatusCode, b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery: %d %s", resp.StatusCode, b)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitReady polls a service's /readyz until it answers 200.
func waitReady(t *testing.T, admin string) {
	t.Helper()
	waitReadyWith(t, http.DefaultClient, "http://"+admin)
}

// waitReadyWith is waitReady for the admin server at base (a URL) through client.
func waitReadyWith(t *testing.T, client *http.Client, admin string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get(admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/readyz never 200", admin)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
