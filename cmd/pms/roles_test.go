package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pms/pms/pkg/platform/polltest"

	"github.com/pms/pms/pkg/analytics"
	"github.com/pms/pms/pkg/auth"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/gateway"
	"github.com/pms/pms/pkg/gateway/openapi"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/authz"
)

// routeRule is one route of one service and the roles that may call it: the role matrix's
// row. Path and body may hold placeholders that world fills per call ({patient}: a shared
// patient; {newPatient}, {newUser}: fresh ones, for calls that change or delete them;
// {refreshToken}: a fresh login's; {inviteToken}: a freshly invited user's set-password
// token; {n}: a unique number). Allowed lists the roles expecting
// 2xx, admin always among them ("admin: everything"); every other role expects 403.
// authz.Public means every caller, token or not.
type routeRule struct {
	service      string
	method, path string
	body         string
	allowed      []string
}

// roleMatrix is every route of every service that exists, with who may call it (API.md,
// "Authentication and roles"). Later services add their rows here, and their placeholders
// to world.fill.
var roleMatrix = []routeRule{
	// auth
	{"auth", "POST", "/login", `{"email":"clinician@example.org","password":"` + matrixPassword + `"}`, []string{authz.Public}},
	{"auth", "POST", "/refresh", `{"refreshToken":"{refreshToken}"}`, []string{authz.Public}},
	{"auth", "POST", "/logout", `{"refreshToken":"{refreshToken}"}`, []string{authz.Public}},
	{"auth", "POST", "/password/set", `{"token":"{inviteToken}","newPassword":"` + matrixPassword + `"}`, []string{authz.Public}},
	{"auth", "GET", "/.well-known/jwks.json", "", []string{authz.Public}},
	{"auth", "GET", "/validate", "", authz.Roles},
	{"auth", "POST", "/users", `{"email":"m{n}@example.org","password":"` + matrixPassword + `","role":"analyst"}`, []string{authz.RoleAdmin}},
	{"auth", "GET", "/users", "", []string{authz.RoleAdmin}},
	{"auth", "GET", "/users/{newUser}", "", []string{authz.RoleAdmin}},
	{"auth", "PATCH", "/users/{newUser}", `{"role":"billing"}`, []string{authz.RoleAdmin}},
	{"auth", "GET", "/users/audit", "", []string{authz.RoleAdmin, authz.RolePrivacy}},
	{"auth", "GET", "/users/audit/verify", "", []string{authz.RoleAdmin}},
	{"auth", "POST", "/users/{newUser}/reset-password", "", []string{authz.RoleAdmin}},
	// Every role lists its own sessions and ends one of them ({ownSession}: a fresh login's
	// session of the role's own user).
	{"auth", "GET", "/sessions", "", authz.Roles},
	{"auth", "DELETE", "/sessions/{ownSession}", "", authz.Roles},
	// patient
	{"patient", "POST", "/patients", `{"name":"Matrix","email":"p{n}@example.org","address":"1 Main St","dateOfBirth":"1980-01-01"}`, []string{authz.RoleClinician}},
	{"patient", "GET", "/patients", "", []string{authz.RoleClinician, authz.RoleBilling}},
	{"patient", "POST", "/patients/_search", `{"q":"Matrix","limit":5}`, []string{authz.RoleClinician, authz.RoleBilling}},
	{"patient", "GET", "/patients/{patient}/access-log", "", []string{authz.RolePrivacy}},
	{"patient", "GET", "/patients/{patient}", "", []string{authz.RoleClinician, authz.RoleBilling}},
	{"patient", "PUT", "/patients/{patient}", `{"name":"Matrix","email":"shared@example.org","address":"1 Main St","dateOfBirth":"1980-01-01"}`, []string{authz.RoleClinician}},
	{"patient", "DELETE", "/patients/{newPatient}", "", []string{authz.RoleClinician}},
	{"patient", "GET", "/patients/{patient}/history", "", []string{authz.RoleClinician, authz.RoleBilling}},
	{"patient", "GET", "/audit", "", []string{authz.RoleAdmin, authz.RolePrivacy}},
	{"patient", "GET", "/audit/verify", "", []string{authz.RoleAdmin}},
	{"patient", "GET", "/patients/{patient}/billing-account", "", []string{authz.RoleClinician, authz.RoleBilling}},
	{"patient", "GET", "/patients/{patient}/invoices", "", []string{authz.RoleClinician, authz.RoleBilling}},
	// break-glass ({restrictedPatient}: a fresh patient an admin restricted); admin and
	// privacy restrict records and review the grants.
	{"patient", "PUT", "/patients/{newPatient}/confidentiality", `{"confidentiality":"restricted"}`, []string{authz.RoleAdmin, authz.RolePrivacy}},
	{"patient", "POST", "/patients/{restrictedPatient}/break-glass", `{"reason":"role matrix emergency"}`, []string{authz.RoleClinician}},
	{"patient", "GET", "/audit/break-glass", "", []string{authz.RoleAdmin, authz.RolePrivacy}},
	// erasure ({deletedPatient}: a fresh patient deleted), admin only.
	{"patient", "POST", "/patients/{deletedPatient}/erase", `{"reason":"role matrix erasure"}`, []string{authz.RoleAdmin}},
	// duplicates (issue 19): clinicians, who register and merge records.
	{"patient", "GET", "/patients/{patient}/duplicates", "", []string{authz.RoleClinician}},
	// merge and unmerge (issue 19; {mergedPatient}: a fresh patient an admin merged into
	// another), clinicians and admin.
	{"patient", "POST", "/patients/{newPatient}/merge", `{"duplicateId":"{newPatient}","reason":"role matrix merge"}`, []string{authz.RoleClinician}},
	{"patient", "POST", "/patients/{mergedPatient}/unmerge", `{"reason":"role matrix unmerge"}`, []string{authz.RoleClinician}},
	// FHIR (the gateway's /fhir facade over the patient endpoints: the same roles as REST;
	// the capability statement is public, as FHIR servers' are).
	{"fhir", "GET", "/metadata", "", []string{authz.Public}},
	{"fhir", "POST", "/Patient", `{"resourceType":"Patient","name":[{"text":"Matrix"}],"telecom":[{"system":"email","value":"fp{n}@example.org"}],"address":[{"text":"1 Main St"}],"birthDate":"1980-01-01"}`, []string{authz.RoleClinician}},
	{"fhir", "GET", "/Patient?name=Matrix", "", []string{authz.RoleClinician, authz.RoleBilling}},
	{"fhir", "POST", "/Patient/_search", "name=Matrix&_count=5", []string{authz.RoleClinician, authz.RoleBilling}},
	{"fhir", "GET", "/Patient/{patient}", "", []string{authz.RoleClinician, authz.RoleBilling}},
	{"fhir", "PUT", "/Patient/{patient}", fhirMatrixPatient, []string{authz.RoleClinician}},
	{"fhir", "DELETE", "/Patient/{newPatient}", "", []string{authz.RoleClinician}},
	{"fhir", "GET", "/Patient/{patient}/_history", "", []string{authz.RoleClinician, authz.RoleBilling}},
	{"fhir", "GET", "/Patient/{patient}/_history/1", "", []string{authz.RoleClinician, authz.RoleBilling}},
	{"fhir", "POST", "/Patient/$match", `{"resourceType":"Parameters","parameter":[{"name":"resource","resource":{"resourceType":"Patient","name":[{"text":"Matrix"}],"birthDate":"1980-01-01"}}]}`, []string{authz.RoleClinician}},
	// FHIR Account and Invoice (billing's endpoints: billing's roles) and AuditEvent (the
	// patient's access log: admin and privacy).
	{"fhir", "GET", "/Account?patient=Patient/{patient}", "", []string{authz.RoleBilling, authz.RoleClinician}},
	{"fhir", "GET", "/Account/{account}", "", []string{authz.RoleBilling, authz.RoleClinician}},
	{"fhir", "GET", "/Invoice?patient=Patient/{patient}", "", []string{authz.RoleBilling, authz.RoleClinician}},
	{"fhir", "GET", "/Invoice/{invoice}", "", []string{authz.RoleBilling, authz.RoleClinician}},
	{"fhir", "GET", "/AuditEvent?patient=Patient/{patient}", "", []string{authz.RolePrivacy}},
	// billing (CreateBillingAccount has no REST route: it is gRPC only, see grpcOnly)
	{"billing", "GET", "/accounts?patientId={patient}", "", []string{authz.RoleBilling, authz.RoleClinician}},
	{"billing", "GET", "/accounts/{account}", "", []string{authz.RoleBilling, authz.RoleClinician}},
	{"billing", "POST", "/invoices", invoiceBody, []string{authz.RoleBilling}},
	{"billing", "GET", "/invoices", "", []string{authz.RoleBilling, authz.RoleClinician}},
	{"billing", "GET", "/invoices/{invoice}", "", []string{authz.RoleBilling, authz.RoleClinician}},
	{"billing", "POST", "/invoices/{newInvoice}/issue", "", []string{authz.RoleBilling}},
	{"billing", "POST", "/invoices/{openInvoice}/payments", `{"amount":1,"method":"cash"}`, []string{authz.RoleBilling}},
	{"billing", "POST", "/invoices/{newInvoice}/void", "", []string{authz.RoleBilling}},
	{"billing", "GET", "/audit?subjectId={patient}", "", []string{authz.RoleAdmin, authz.RolePrivacy}},
	{"billing", "GET", "/audit/verify", "", []string{authz.RoleAdmin}},
	// analytics
	{"analytics", "GET", "/summary", "", []string{authz.RoleAnalyst}},
	{"analytics", "GET", "/audit/verify", "", []string{authz.RoleAdmin}},
	// the gateway's own routes (its base is the gateway's address)
	{"gateway", "GET", "/api/gateway/audit/verify", "", []string{authz.RoleAdmin}},
	// auth MFA: every role enrols, confirms ({totpCode}: the role enrols a fresh factor and
	// sends its code) and disables ({recoveryCode}: one its confirmation answered) its own
	// factor; the login steps are public, their challenge the credential.
	{"auth", "POST", "/mfa/totp", "", authz.Roles},
	{"auth", "POST", "/mfa/totp/confirm", `{"code":"{totpCode}"}`, authz.Roles},
	{"auth", "POST", "/mfa/totp/disable", `{"recoveryCode":"{recoveryCode}"}`, authz.Roles},
	{"auth", "POST", "/login/mfa", `{"challenge":"{mfaChallenge}","recoveryCode":"{mfaRecovery}"}`, []string{authz.Public}},
	{"auth", "POST", "/login/mfa/enrol", `{"challenge":"{enrolChallenge}"}`, []string{authz.Public}},
	{"auth", "POST", "/login/mfa/confirm", "{enrolConfirm}", []string{authz.Public}},
	// auth, last: every role changes its own password ({currentPassword} is the role's
	// password, {newPassword} a fresh one, which the role then has), so no row after this
	// one may log in as a role user with matrixPassword.
	{"auth", "POST", "/password", `{"currentPassword":"{currentPassword}","newPassword":"{newPassword}"}`, authz.Roles},
	// auth, very last: every role logs out everywhere, which ends its access token too.
	{"auth", "DELETE", "/sessions", "", authz.Roles},
}

// grpcOnly counts, per service, the endpoints with no REST route (checked over gRPC elsewhere).
var grpcOnly = map[string]int{"billing": 1}

// extraRoutes counts, per service, the endpoints' second routes: ListPatients is both GET
// /patients (kept for compatibility) and POST /patients/_search (issue 17: no PHI in URLs).
var extraRoutes = map[string]int{"patient": 1}

// fhirMatrixPatient is the shared patient as a FHIR Patient resource (the PUT row).
const fhirMatrixPatient = `{"resourceType":"Patient","id":"{patient}","name":[{"text":"Matrix"}],"telecom":[{"system":"email","value":"shared@example.org"}],"address":[{"text":"1 Main St"}],"birthDate":"1980-01-01"}`

const invoiceBody = `{"patientId":"{patient}","currency":"USD","dueDate":"2030-01-01","lines":[{"description":"Visit","quantity":1,"unitAmount":1000}]}`

const matrixPassword = "role matrix password"

// world is the running platform the matrix is checked against, with a user of every role.
type world struct {
	t       *testing.T
	base    map[string]string // service → base URL
	tokens  map[string]string // role → access token
	patient string
	account string
	invoice string
	n       atomic.Int64
	// MFA (mfa_test.go): a user with a factor, its unused recovery codes, and each role's
	// recovery code once it confirmed a factor.
	mfaEmail    string
	mfaRecovery []string
	recovery    map[string]string
}

// post sends a JSON body as admin and returns the "id" of the answer.
func (w *world) createAsAdmin(service, path, body string) string {
	w.t.Helper()
	resp, b := call(w.t, "POST", w.base[service]+path, w.tokens[authz.RoleAdmin], body)
	if resp.StatusCode != 201 {
		w.t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
	}
	var v struct{ ID string }
	_ = json.Unmarshal(b, &v)
	return v.ID
}

// ownSession returns the id of a new session of role's own user (a fresh login), or a
// well-formed unknown id for no role.
func (w *world) ownSession(role string) string {
	w.t.Helper()
	if role == "" {
		return "5f0c1c52-8a53-4c8e-9d43-6c1f0e2b7a11"
	}
	email, password := role+"@example.org", matrixPassword
	if role == authz.RoleAdmin {
		email, password = allAdminEmail, adminPassword
	}
	resp, b := call(w.t, "POST", w.base["auth"]+"/login", "", `{"email":"`+email+`","password":"`+password+`"}`)
	if c := (loginChallenge{}); resp.StatusCode == 401 && json.Unmarshal(b, &c) == nil && c.Enrol {
		// The role requires a second factor. Confirming one ends the user's other sessions
		// (the matrix's token too), so the enrolment's session becomes the matrix's token and
		// a second login, completed with a code, is the session to end; then the factor goes
		// again, as the rows enrol factors of their own.
		l, secret := enrolByChallenge(w.t, w.base["auth"], c.Challenge)
		w.tokens[role] = l.Token
		resp, b = call(w.t, "POST", w.base["auth"]+"/login", "", `{"email":"`+email+`","password":"`+password+`"}`)
		c = challengeOf(w.t, resp.StatusCode, b, "mfa_required")
		resp, b = call(w.t, "POST", w.base["auth"]+"/login/mfa", "", `{"challenge":"`+c.Challenge+`","code":"`+totpNow(w.t, secret, 30*time.Second)+`"}`)
		var p struct{ Token string }
		if resp.StatusCode != 200 || json.Unmarshal(b, &p) != nil {
			w.t.Fatalf("second login of %s: %d %s", email, resp.StatusCode, b)
		}
		if resp, b := call(w.t, "POST", w.base["auth"]+"/mfa/totp/disable", l.Token, `{"recoveryCode":"`+l.RecoveryCodes[0]+`"}`); resp.StatusCode != 204 {
			w.t.Fatalf("disable: %d %s", resp.StatusCode, b)
		}
		return sessionOf(w.t, p.Token)
	}
	var p struct{ Token string }
	if resp.StatusCode != 200 || json.Unmarshal(b, &p) != nil {
		w.t.Fatalf("login %s: %d %s", email, resp.StatusCode, b)
	}
	return sessionOf(w.t, p.Token)
}

func (w *world) login(email string) (token, refresh string) {
	w.t.Helper()
	return w.loginWith(email, matrixPassword)
}

// loginWith logs email in with password, enrolling (and then removing) a second factor when
// its role requires one.
func (w *world) loginWith(email, password string) (token, refresh string) {
	w.t.Helper()
	resp, b := call(w.t, "POST", w.base["auth"]+"/login", "", `{"email":"`+email+`","password":"`+password+`"}`)
	if c := (loginChallenge{}); resp.StatusCode == 401 && json.Unmarshal(b, &c) == nil && c.Enrol {
		// A role that must have a second factor (the matrix requires it of analysts).
		l, _ := enrolByChallenge(w.t, w.base["auth"], c.Challenge)
		// The rows enrol factors of their own: this one goes again (the session stays).
		if resp, b := call(w.t, "POST", w.base["auth"]+"/mfa/totp/disable", l.Token, `{"recoveryCode":"`+l.RecoveryCodes[0]+`"}`); resp.StatusCode != 204 {
			w.t.Fatalf("disable: %d %s", resp.StatusCode, b)
		}
		return l.Token, l.RefreshToken
	}
	if resp.StatusCode != 200 {
		w.t.Fatalf("login %s: %d %s", email, resp.StatusCode, b)
	}
	var p struct{ Token, RefreshToken string }
	_ = json.Unmarshal(b, &p)
	return p.Token, p.RefreshToken
}

// fill replaces the placeholders of s, making fresh resources where asked.
func (w *world) fill(s string) string {
	for {
		if out, ok := w.mfaFill(s); ok {
			s = out
			continue
		}
		switch {
		case strings.Contains(s, "{n}"):
			s = strings.Replace(s, "{n}", fmt.Sprint(w.n.Add(1)), 1)
		case strings.Contains(s, "{patient}"):
			s = strings.ReplaceAll(s, "{patient}", w.patient)
		case strings.Contains(s, "{account}"):
			s = strings.ReplaceAll(s, "{account}", w.account)
		case strings.Contains(s, "{invoice}"):
			s = strings.ReplaceAll(s, "{invoice}", w.invoice)
		case strings.Contains(s, "{newInvoice}"):
			s = strings.Replace(s, "{newInvoice}", w.createAsAdmin("billing", "/invoices", w.fill(invoiceBody)), 1)
		case strings.Contains(s, "{openInvoice}"):
			id := w.createAsAdmin("billing", "/invoices", w.fill(invoiceBody))
			if resp, b := call(w.t, "POST", w.base["billing"]+"/invoices/"+id+"/issue", w.tokens[authz.RoleAdmin], ""); resp.StatusCode != 200 {
				w.t.Fatalf("issue: %d %s", resp.StatusCode, b)
			}
			s = strings.Replace(s, "{openInvoice}", id, 1)
		case strings.Contains(s, "{restrictedPatient}"):
			id := w.createAsAdmin("patient", "/patients", w.fill(`{"name":"Restricted","email":"r{n}@example.org","address":"x","dateOfBirth":"1980-01-01"}`))
			if resp, b := call(w.t, "PUT", w.base["patient"]+"/patients/"+id+"/confidentiality", w.tokens[authz.RoleAdmin], `{"confidentiality":"restricted"}`); resp.StatusCode != 200 {
				w.t.Fatalf("restrict: %d %s", resp.StatusCode, b)
			}
			s = strings.Replace(s, "{restrictedPatient}", id, 1)
		case strings.Contains(s, "{deletedPatient}"):
			id := w.createAsAdmin("patient", "/patients", w.fill(`{"name":"Erased","email":"e{n}@example.org","address":"x","dateOfBirth":"1980-01-01"}`))
			if resp, b := call(w.t, "DELETE", w.base["patient"]+"/patients/"+id, w.tokens[authz.RoleAdmin], ""); resp.StatusCode != 204 {
				w.t.Fatalf("delete: %d %s", resp.StatusCode, b)
			}
			s = strings.Replace(s, "{deletedPatient}", id, 1)
		case strings.Contains(s, "{mergedPatient}"):
			survivor := w.createAsAdmin("patient", "/patients", w.fill(`{"name":"Survivor","email":"s{n}@example.org","address":"x","dateOfBirth":"1980-01-01"}`))
			id := w.createAsAdmin("patient", "/patients", w.fill(`{"name":"Merged","email":"m{n}@example.org","address":"x","dateOfBirth":"1980-01-01"}`))
			if resp, b := call(w.t, "POST", w.base["patient"]+"/patients/"+survivor+"/merge", w.tokens[authz.RoleAdmin],
				`{"duplicateId":"`+id+`","reason":"role matrix merge"}`); resp.StatusCode != 200 {
				w.t.Fatalf("merge: %d %s", resp.StatusCode, b)
			}
			s = strings.Replace(s, "{mergedPatient}", id, 1)
		case strings.Contains(s, "{newPatient}"):
			id := w.createAsAdmin("patient", "/patients", w.fill(`{"name":"Fresh","email":"f{n}@example.org","address":"x","dateOfBirth":"1980-01-01"}`))
			s = strings.Replace(s, "{newPatient}", id, 1)
		case strings.Contains(s, "{newUser}"):
			id := w.createAsAdmin("auth", "/users", w.fill(`{"email":"u{n}@example.org","password":"`+matrixPassword+`","role":"clinician"}`))
			s = strings.Replace(s, "{newUser}", id, 1)
		case strings.Contains(s, "{inviteToken}"):
			resp, b := call(w.t, "POST", w.base["auth"]+"/users", w.tokens[authz.RoleAdmin], w.fill(`{"email":"i{n}@example.org","role":"analyst"}`))
			var c struct{ InviteToken string }
			if resp.StatusCode != 201 || json.Unmarshal(b, &c) != nil || c.InviteToken == "" {
				w.t.Fatalf("invite: %d %s", resp.StatusCode, b)
			}
			s = strings.Replace(s, "{inviteToken}", c.InviteToken, 1)
		case strings.Contains(s, "{refreshToken}"):
			_, r := w.login("clinician@example.org")
			s = strings.Replace(s, "{refreshToken}", r, 1)
		default:
			return s
		}
	}
}

// TestRoleMatrix checks every route of every service against every role on `pms all`: the
// allowed roles get 2xx, the others 403, and a caller without a token 401 (except on
// public routes).
func TestRoleMatrix(t *testing.T) {
	a, _ := startPMS(t, allAddrs, allArgs(t, "", "--rate-limit=0", "--gateway-client-rate=0", "--auth-require-mfa-roles=analyst")...)
	w := &world{t: t, base: map[string]string{"auth": "http://" + a["auth/http"], "patient": "http://" + a["patient/http"],
		"billing": "http://" + a["billing/http"], "analytics": "http://" + a["analytics/http"], "fhir": "http://" + a["gateway/http"] + "/fhir",
		"gateway": "http://" + a["gateway/http"]}, tokens: map[string]string{}}
	w.tokens[authz.RoleAdmin] = allToken(t, a)
	for _, role := range authz.Roles[1:] {
		w.createAsAdmin("auth", "/users", `{"email":"`+role+`@example.org","password":"`+matrixPassword+`","role":"`+role+`"}`)
		w.tokens[role], _ = w.login(role + "@example.org")
	}
	w.patient = w.createAsAdmin("patient", "/patients", `{"name":"Matrix","email":"shared@example.org","address":"1 Main St","dateOfBirth":"1980-01-01"}`)
	var accounts []struct{ ID string }
	polltest.Until(t, 30*time.Second, "the shared patient's billing account", func() bool { // opened after the 201
		resp, b := call(t, "GET", w.base["billing"]+"/accounts?patientId="+w.patient, w.tokens[authz.RoleAdmin], "")
		if resp.StatusCode != 200 || json.Unmarshal(b, &accounts) != nil {
			t.Fatalf("the shared patient's billing account: %d %s", resp.StatusCode, b)
		}
		return len(accounts) == 1
	})
	w.account = accounts[0].ID
	w.invoice = w.createAsAdmin("billing", "/invoices", w.fill(invoiceBody))
	w.setUpMFAUser()

	passwords := map[string]string{} // each role's password once it changed it
	for _, r := range roleMatrix {
		t.Run(r.service+" "+r.method+" "+r.path, func(t *testing.T) {
			public := len(r.allowed) == 1 && r.allowed[0] == authz.Public
			for _, role := range append([]string{""}, authz.Roles...) {
				want := 403
				switch {
				case public || role == authz.RoleAdmin || contains(r.allowed, role):
					want = 200
				case role == "":
					want = 401
				}
				body, next := r.body, ""
				if strings.Contains(body, "{currentPassword}") {
					cur := matrixPassword
					if role == authz.RoleAdmin {
						cur = adminPassword
					}
					if p, ok := passwords[role]; ok {
						cur = p
					}
					next = w.fill("changed matrix password {n}")
					body = strings.NewReplacer("{currentPassword}", cur, "{newPassword}", next).Replace(body)
				}
				body = w.mfaBody(body, role)
				path := r.path
				if strings.Contains(path, "{ownSession}") {
					path = strings.ReplaceAll(path, "{ownSession}", w.ownSession(role))
				}
				var headers []string
				if r.service == "fhir" && strings.HasSuffix(r.path, "/_search") {
					headers = []string{"Content-Type", "application/x-www-form-urlencoded"}
				}
				resp, b := call(t, r.method, w.base[r.service]+w.fill(path), w.tokens[role], w.fill(body), headers...)
				got := resp.StatusCode
				w.mfaAnswer(body, role, got, b)
				if next != "" && got >= 200 && got < 300 {
					passwords[role] = next
				}
				if want == 200 && got >= 200 && got < 300 {
					continue
				}
				if got != want {
					t.Errorf("role %q: %d, want %d: %s", role, got, want, b)
				}
			}
		})
	}
	// Every endpoint of every service has its route in the matrix (one route per method).
	methods := map[string]int{"auth": len(auth.Methods), "patient": len(patient.Methods) + extraRoutes["patient"], "billing": len(billing.Methods) - grpcOnly["billing"],
		"analytics": len(analytics.Methods), "fhir": len(fhirRoutes(t)), "gateway": len(gateway.Ops)}
	rows := map[string]int{}
	for _, r := range roleMatrix {
		rows[r.service]++
	}
	for service, n := range methods {
		if rows[service] != n {
			t.Errorf("%s has %d endpoints but %d rows in the role matrix", service, n, rows[service])
		}
	}
}

// fhirRoutes are the FHIR facade's routes the OpenAPI document lists (TestRoutesMatchOpenAPI
// holds it to what the gateway serves).
func fhirRoutes(t *testing.T) []openapi.Route {
	routes, err := openapi.Routes()
	if err != nil {
		t.Fatal(err)
	}
	var out []openapi.Route
	for _, r := range routes {
		if strings.HasPrefix(r.Path, "/fhir/") {
			out = append(out, r)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
