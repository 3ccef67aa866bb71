package httptransport

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/pms/pms/pkg/auth"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/transport/wire"
)

// fuzzInput is everything a request decoder reads, as a fuzz target feeds it: the raw query
// string, the {id} path variable, the Content-Type, one value sent as both If-Match and
// Idempotency-Key (each decoder reads at most one of them), the body, and how the body is
// framed (flags%3: known length, unknown length, no body at all).
type fuzzInput struct {
	query, id, contentType, header string
	body                           []byte
	flags                          uint8
}

// request builds the *http.Request a route's decoder would see for in.
func (in fuzzInput) request(method string) *http.Request {
	r := &http.Request{
		Method: method, URL: &url.URL{Path: "/fuzz", RawQuery: in.query},
		Header: http.Header{"If-Match": {in.header}, "Idempotency-Key": {in.header}},
	}
	if in.contentType != "" {
		r.Header.Set("Content-Type", in.contentType)
	}
	switch in.flags % 3 {
	case 0:
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(in.body)), int64(len(in.body))
	case 1:
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(in.body)), -1
	}
	return mux.SetURLVars(r.WithContext(context.Background()), map[string]string{"id": in.id})
}

// decodeCase is one decoder under fuzz: run decodes in and checks what came out.
type decodeCase struct {
	name string
	run  func(t *testing.T, in fuzzInput)
}

// caseOf makes a decodeCase of a typed decoder. Whatever the input, the decoder must not
// panic and its error must be a 4xx contract error (checkDecodeError). A request it accepts
// must pass check, and must survive a round trip: reencode turns it back into an input the
// way a client would send it (the HTTP client's own encoders where it has them), and that
// input must decode to the very same request.
func caseOf[Req any](name, method string, dec func(context.Context, *http.Request) (Req, error),
	check func(*testing.T, fuzzInput, Req), reencode func(*testing.T, fuzzInput, Req) fuzzInput,
) decodeCase {
	return decodeCase{name: name, run: func(t *testing.T, in fuzzInput) {
		req, err := dec(context.Background(), in.request(method))
		checkDecodeError(t, err)
		if err != nil {
			return
		}
		if check != nil {
			check(t, in, req)
		}
		if reencode == nil {
			return
		}
		again := reencode(t, in, req)
		got, err := dec(context.Background(), again.request(method))
		if err != nil || !reflect.DeepEqual(got, req) {
			t.Fatalf("%s: accepted %+v, but its re-encoding (query %q, body %q) decodes as %+v, %v", name, req, again.query, again.body, got, err)
		}
	}}
}

// runCase picks the case a fuzz input drives.
func runCase(t *testing.T, cases []decodeCase, which uint8, in fuzzInput) {
	t.Helper()
	c := cases[int(which)%len(cases)]
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("decoder: %s", c.name)
		}
	})
	c.run(t, in)
}

// withBody re-encodes a request as the JSON body v, sent with the same path, query and
// headers.
func withBody(t *testing.T, in fuzzInput, v any) fuzzInput {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("an accepted request does not encode: %v", err)
	}
	in.body, in.contentType, in.flags = b, "application/json", 0
	return in
}

// withQuery re-encodes a request as the query string v.
func withQuery(in fuzzInput, v url.Values) fuzzInput {
	in.query = v.Encode()
	return in
}

// checkNoQuery: a route that takes no parameter accepted only a query that has none.
func checkNoQuery(t *testing.T, in fuzzInput) {
	t.Helper()
	if v, err := url.ParseQuery(in.query); err != nil || len(v) != 0 {
		t.Fatalf("query %q accepted on a route that takes none", in.query)
	}
}

// checkID: the id is the path variable, unchanged and at most wire.MaxIDBytes long.
func checkID(t *testing.T, in fuzzInput, id string) {
	t.Helper()
	if id != in.id || len(id) > wire.MaxIDBytes {
		t.Fatalf("path id %q decoded as %q", in.id, id)
	}
}

// checkJSONBody: a body was accepted only under a JSON content type.
func checkJSONBody(t *testing.T, in fuzzInput) {
	t.Helper()
	if checkJSONContentType(in.contentType) != nil {
		t.Fatalf("body accepted with Content-Type %q", in.contentType)
	}
}

// checkKey: an accepted Idempotency-Key is the header, trimmed, of printable ASCII.
func checkKey(t *testing.T, in fuzzInput, key string) {
	t.Helper()
	if key != strings.TrimSpace(in.header) || len(key) > wire.MaxIdempotencyKey {
		t.Fatalf("Idempotency-Key %q decoded as %q", in.header, key)
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			t.Fatalf("Idempotency-Key %q accepted", key)
		}
	}
}

// checkIfMatch: an accepted If-Match is a positive version, or 0 for none and *.
func checkIfMatch(t *testing.T, in fuzzInput, v int64) {
	t.Helper()
	h := strings.TrimSpace(in.header)
	if v < 0 || (v == 0) != (h == "" || h == "*") {
		t.Fatalf("If-Match %q decoded as %d", in.header, v)
	}
}

// etagHeader is how a client sends version v (none for 0).
func etagHeader(v int64) string {
	if v == 0 {
		return ""
	}
	return wire.ETag(v)
}

// checkQuery: every parameter was allowed and given once, and each string field is the
// parameter as sent.
func checkQuery(t *testing.T, in fuzzInput, allowed []string, got map[string]string) url.Values {
	t.Helper()
	v, err := url.ParseQuery(in.query)
	if err != nil {
		t.Fatalf("malformed query %q accepted", in.query)
	}
	for name, vs := range v {
		if !contains(allowed, name) || len(vs) != 1 {
			t.Fatalf("query %q accepted", in.query)
		}
	}
	for name, value := range got {
		if v.Get(name) != value {
			t.Fatalf("query %q: %s decoded as %q", in.query, name, value)
		}
	}
	return v
}

// checkLimit: limit is absent (0) or an integer in [1, hi].
func checkLimit(t *testing.T, v url.Values, limit, hi int) {
	t.Helper()
	if (v.Get("limit") == "") != (limit == 0) || limit < 0 || limit > hi {
		t.Fatalf("limit %q decoded as %d", v.Get("limit"), limit)
	}
}

// checkRange: from and to are UTC instants of years 1 to 9999, absent exactly when not given
// (or, for to, given as the end of time), and to is not before from.
func checkRange(t *testing.T, v url.Values, from, to time.Time) {
	t.Helper()
	for name, at := range map[string]time.Time{"from": from, "to": to} {
		absent := v.Get(name) == "" || (name == "to" && v.Get(name) == "9999-12-31")
		if absent != at.IsZero() || at.Location() != time.UTC || (!at.IsZero() && (at.Year() < 1 || at.Year() > 9999)) {
			t.Fatalf("%s %q decoded as %v", name, v.Get(name), at)
		}
	}
	if !from.IsZero() && !to.IsZero() && to.Before(from) {
		t.Fatalf("range %v..%v accepted", from, to)
	}
}

func noQueryCheck[Req any](t *testing.T, in fuzzInput, _ Req) { checkNoQuery(t, in) }

// patientCases are the decoders of patient_server.go.
var patientCases = []decodeCase{
	caseOf("create", "POST", decodeCreatePatient, func(t *testing.T, in fuzzInput, r patient.CreateRequest) {
		checkNoQuery(t, in)
		checkJSONBody(t, in)
		checkKey(t, in, r.IdempotencyKey)
	}, func(t *testing.T, in fuzzInput, r patient.CreateRequest) fuzzInput {
		cl, _ := encodeCreateCall(r)
		in.header = cl.header.Get("Idempotency-Key")
		return withBody(t, in, cl.body)
	}),
	caseOf("update", "PUT", decodeUpdatePatient, func(t *testing.T, in fuzzInput, r patient.UpdateRequest) {
		checkNoQuery(t, in)
		checkJSONBody(t, in)
		checkID(t, in, r.ID)
		checkIfMatch(t, in, r.IfMatch)
	}, func(t *testing.T, in fuzzInput, r patient.UpdateRequest) fuzzInput {
		cl, err := encodeUpdateCall(r)
		if err != nil {
			return in // an empty id: the client refuses to send it
		}
		in.header = cl.header.Get("If-Match")
		return withBody(t, in, cl.body)
	}),
	caseOf("delete", "DELETE", decodeDeletePatient, func(t *testing.T, in fuzzInput, r patient.DeleteRequest) {
		checkNoQuery(t, in)
		checkID(t, in, r.ID)
		checkIfMatch(t, in, r.IfMatch)
	}, func(_ *testing.T, in fuzzInput, r patient.DeleteRequest) fuzzInput {
		in.header = etagHeader(r.IfMatch)
		return in
	}),
	caseOf("get", "GET", decodeGetPatient, func(t *testing.T, in fuzzInput, r patient.GetRequest) {
		checkNoQuery(t, in)
		checkID(t, in, r.ID)
	}, nil),
	caseOf("history", "GET", decodeHistory, func(t *testing.T, in fuzzInput, r patient.HistoryRequest) {
		checkNoQuery(t, in)
		checkID(t, in, r.ID)
	}, nil),
	caseOf("billing-account", "GET", decodeBillingAccount, func(t *testing.T, in fuzzInput, r patient.BillingAccountRequest) {
		checkNoQuery(t, in)
		checkID(t, in, r.ID)
	}, nil),
	caseOf("invoices", "GET", decodePatientInvoices, func(t *testing.T, in fuzzInput, r patient.InvoicesRequest) {
		checkNoQuery(t, in)
		checkID(t, in, r.ID)
	}, nil),
	caseOf("list", "GET", decodeListPatients, func(t *testing.T, in fuzzInput, q patient.ListQuery) {
		v := checkQuery(t, in, []string{"q", "email", "dateOfBirth", "limit", "pageToken"},
			map[string]string{"q": q.Q, "email": q.Email, "dateOfBirth": q.DateOfBirth, "pageToken": q.PageToken})
		checkLimit(t, v, q.Limit, patient.MaxLimit)
	}, func(_ *testing.T, in fuzzInput, q patient.ListQuery) fuzzInput {
		cl, _ := encodeListCall(q)
		return withQuery(in, cl.query)
	}),
	caseOf("search", "POST", decodeSearchPatients, func(t *testing.T, in fuzzInput, q patient.ListQuery) {
		checkNoQuery(t, in)
		checkJSONBody(t, in)
		for name, v := range map[string]string{"q": q.Q, "email": q.Email, "dateOfBirth": q.DateOfBirth, "pageToken": q.PageToken} {
			if !plainText(v) {
				t.Fatalf("%s %q accepted", name, v)
			}
		}
		if q.Limit < 0 || q.Limit > patient.MaxLimit {
			t.Fatalf("limit %d accepted", q.Limit)
		}
	}, func(t *testing.T, in fuzzInput, q patient.ListQuery) fuzzInput {
		cl, _ := encodeSearchCall(q)
		return withBody(t, in, cl.body)
	}),
	caseOf("access-log", "GET", decodeAccessLog, func(t *testing.T, in fuzzInput, q patient.AccessLogQuery) {
		checkID(t, in, q.PatientID)
		v := checkQuery(t, in, []string{"limit", "pageToken"}, map[string]string{"pageToken": q.PageToken})
		checkLimit(t, v, q.Limit, patient.MaxLimit)
	}, nil),
	caseOf("audit-verify", "GET", decodeVerifyAudit[patient.VerifyAuditRequest], noQueryCheck[patient.VerifyAuditRequest], nil),
	caseOf("audit", "GET", decodeAudit, func(t *testing.T, in fuzzInput, q patient.AuditQuery) {
		v := checkQuery(t, in, []string{"patientId", "actor", "from", "to", "limit"},
			map[string]string{"patientId": q.PatientID, "actor": q.Actor})
		checkLimit(t, v, q.Limit, patient.MaxAuditLimit)
		checkRange(t, v, q.From, q.To)
	}, func(_ *testing.T, in fuzzInput, q patient.AuditQuery) fuzzInput {
		cl, _ := encodeAuditCall(q)
		return withQuery(in, cl.query)
	}),
}

// billingCases are the decoders of billing_server.go.
var billingCases = []decodeCase{
	caseOf("billing-audit-verify", "GET", decodeVerifyAudit[billing.VerifyAuditRequest], noQueryCheck[billing.VerifyAuditRequest], nil),
	caseOf("list-accounts", "GET", decodeListAccounts, func(t *testing.T, in fuzzInput, q billing.AccountQuery) {
		checkQuery(t, in, []string{"patientId"}, map[string]string{"patientId": q.PatientID})
	}, func(_ *testing.T, in fuzzInput, q billing.AccountQuery) fuzzInput {
		v := url.Values{}
		setParam(v, "patientId", q.PatientID)
		return withQuery(in, v)
	}),
	caseOf("get-account", "GET", decodeGetAccount, func(t *testing.T, in fuzzInput, r billing.GetAccountRequest) {
		checkNoQuery(t, in)
		checkID(t, in, r.ID)
	}, nil),
	caseOf("create-invoice", "POST", decodeCreateInvoice, func(t *testing.T, in fuzzInput, r billing.CreateInvoiceRequest) {
		checkNoQuery(t, in)
		checkJSONBody(t, in)
		checkKey(t, in, r.IdempotencyKey)
	}, func(t *testing.T, in fuzzInput, r billing.CreateInvoiceRequest) fuzzInput {
		in.header = r.IdempotencyKey
		return withBody(t, in, r)
	}),
	caseOf("list-invoices", "GET", decodeListInvoices, func(t *testing.T, in fuzzInput, q billing.InvoiceQuery) {
		v := checkQuery(t, in, []string{"patientId", "status", "limit", "pageToken"},
			map[string]string{"patientId": q.PatientID, "status": q.Status, "pageToken": q.PageToken})
		checkLimit(t, v, q.Limit, billing.MaxLimit)
	}, func(_ *testing.T, in fuzzInput, q billing.InvoiceQuery) fuzzInput {
		v := url.Values{}
		setParam(v, "patientId", q.PatientID)
		setParam(v, "status", q.Status)
		if q.Limit != 0 {
			v.Set("limit", strconv.Itoa(q.Limit))
		}
		setParam(v, "pageToken", q.PageToken)
		return withQuery(in, v)
	}),
	caseOf("get-invoice", "GET", decodeGetInvoice, func(t *testing.T, in fuzzInput, r billing.GetInvoiceRequest) {
		checkNoQuery(t, in)
		checkID(t, in, r.ID)
	}, nil),
	caseOf("issue-invoice", "POST", decodeIssueInvoice, func(t *testing.T, in fuzzInput, r billing.IssueInvoiceRequest) {
		checkNoQuery(t, in)
		checkID(t, in, r.ID)
		checkEmptyAction(t, in)
	}, nil),
	caseOf("record-payment", "POST", decodeRecordPayment, func(t *testing.T, in fuzzInput, r billing.PaymentRequest) {
		checkNoQuery(t, in)
		checkJSONBody(t, in)
		checkID(t, in, r.InvoiceID)
		checkKey(t, in, r.IdempotencyKey)
	}, func(t *testing.T, in fuzzInput, r billing.PaymentRequest) fuzzInput {
		in.header = r.IdempotencyKey
		return withBody(t, in, r)
	}),
	caseOf("void-invoice", "POST", decodeVoidInvoice, func(t *testing.T, in fuzzInput, r billing.VoidInvoiceRequest) {
		checkNoQuery(t, in)
		checkID(t, in, r.ID)
		checkEmptyAction(t, in)
	}, nil),
}

// checkEmptyAction: a state change (issue, void) was accepted only with no body, an empty
// one or an empty JSON object.
func checkEmptyAction(t *testing.T, in fuzzInput) {
	t.Helper()
	if in.flags%3 == 2 || len(in.body) == 0 {
		return
	}
	checkJSONBody(t, in)
	var m map[string]json.RawMessage
	if json.Unmarshal(in.body, &m) != nil || len(m) != 0 {
		t.Fatalf("action body %q accepted", in.body)
	}
}

// authCases are the decoders of auth_server.go.
var authCases = []decodeCase{
	caseOf("login", "POST", decodeLogin, func(t *testing.T, in fuzzInput, _ auth.LoginRequest) {
		checkNoQuery(t, in)
		checkJSONBody(t, in)
	}, func(t *testing.T, in fuzzInput, r auth.LoginRequest) fuzzInput { return withBody(t, in, r) }),
	caseOf("validate", "GET", decodeValidate, noQueryCheck[auth.ValidateRequest], nil),
	caseOf("refresh", "POST", decodeRefresh, func(t *testing.T, in fuzzInput, _ auth.RefreshRequest) {
		checkNoQuery(t, in)
		checkJSONBody(t, in)
	}, func(t *testing.T, in fuzzInput, r auth.RefreshRequest) fuzzInput { return withBody(t, in, r) }),
	caseOf("logout", "POST", decodeLogout, func(t *testing.T, in fuzzInput, _ auth.LogoutRequest) {
		checkNoQuery(t, in)
		checkJSONBody(t, in)
	}, func(t *testing.T, in fuzzInput, r auth.LogoutRequest) fuzzInput { return withBody(t, in, r) }),
	caseOf("set-password", "POST", decodeSetPassword, func(t *testing.T, in fuzzInput, _ auth.SetPasswordRequest) {
		checkNoQuery(t, in)
		checkJSONBody(t, in)
	}, func(t *testing.T, in fuzzInput, r auth.SetPasswordRequest) fuzzInput { return withBody(t, in, r) }),
	caseOf("change-password", "POST", decodeChangePassword, func(t *testing.T, in fuzzInput, _ auth.ChangePasswordRequest) {
		checkNoQuery(t, in)
		checkJSONBody(t, in)
	}, func(t *testing.T, in fuzzInput, r auth.ChangePasswordRequest) fuzzInput { return withBody(t, in, r) }),
	caseOf("jwks", "GET", decodeJWKS, noQueryCheck[auth.JWKSRequest], nil),
	caseOf("mfa-enrol", "POST", decodeEnrolTOTP, noQueryCheck[auth.EnrolTOTPRequest], nil),
	caseOf("mfa-confirm", "POST", decodeJSONBody[auth.ConfirmTOTPRequest], func(t *testing.T, in fuzzInput, _ auth.ConfirmTOTPRequest) {
		checkNoQuery(t, in)
		checkJSONBody(t, in)
	}, func(t *testing.T, in fuzzInput, r auth.ConfirmTOTPRequest) fuzzInput { return withBody(t, in, r) }),
	caseOf("mfa-disable", "POST", decodeJSONBody[auth.DisableTOTPRequest], func(t *testing.T, in fuzzInput, _ auth.DisableTOTPRequest) {
		checkNoQuery(t, in)
		checkJSONBody(t, in)
	}, func(t *testing.T, in fuzzInput, r auth.DisableTOTPRequest) fuzzInput { return withBody(t, in, r) }),
	caseOf("login-mfa", "POST", decodeJSONBody[auth.LoginMFARequest], func(t *testing.T, in fuzzInput, _ auth.LoginMFARequest) {
		checkNoQuery(t, in)
		checkJSONBody(t, in)
	}, func(t *testing.T, in fuzzInput, r auth.LoginMFARequest) fuzzInput { return withBody(t, in, r) }),
	caseOf("login-mfa-enrol", "POST", decodeJSONBody[auth.ChallengeEnrolRequest], func(t *testing.T, in fuzzInput, _ auth.ChallengeEnrolRequest) {
		checkNoQuery(t, in)
		checkJSONBody(t, in)
	}, func(t *testing.T, in fuzzInput, r auth.ChallengeEnrolRequest) fuzzInput { return withBody(t, in, r) }),
	caseOf("login-mfa-confirm", "POST", decodeJSONBody[auth.ChallengeConfirmRequest], func(t *testing.T, in fuzzInput, _ auth.ChallengeConfirmRequest) {
		checkNoQuery(t, in)
		checkJSONBody(t, in)
	}, func(t *testing.T, in fuzzInput, r auth.ChallengeConfirmRequest) fuzzInput { return withBody(t, in, r) }),
	caseOf("create-user", "POST", decodeCreateUser, func(t *testing.T, in fuzzInput, _ auth.CreateUserRequest) {
		checkNoQuery(t, in)
		checkJSONBody(t, in)
	}, func(t *testing.T, in fuzzInput, r auth.CreateUserRequest) fuzzInput { return withBody(t, in, r) }),
	caseOf("list-users", "GET", decodeListUsers, noQueryCheck[auth.ListUsersRequest], nil),
	caseOf("get-user", "GET", decodeGetUser, func(t *testing.T, in fuzzInput, r auth.GetUserRequest) {
		checkNoQuery(t, in)
		checkID(t, in, r.ID)
	}, nil),
	caseOf("update-user", "PATCH", decodeUpdateUser, func(t *testing.T, in fuzzInput, r auth.UpdateUserRequest) {
		checkNoQuery(t, in)
		checkJSONBody(t, in)
		checkID(t, in, r.ID)
	}, func(t *testing.T, in fuzzInput, r auth.UpdateUserRequest) fuzzInput { return withBody(t, in, r) }),
	caseOf("audit", "GET", decodeAuthAudit, func(t *testing.T, in fuzzInput, q auth.AuditQuery) {
		v := checkQuery(t, in, []string{"userId", "actor", "from", "to", "limit"},
			map[string]string{"userId": q.UserID, "actor": q.Actor})
		checkLimit(t, v, q.Limit, auth.MaxAuditLimit)
		checkRange(t, v, q.From, q.To)
	}, func(_ *testing.T, in fuzzInput, q auth.AuditQuery) fuzzInput {
		cl, _ := encodeAuthAuditCall(q)
		return withQuery(in, cl.query)
	}),
	caseOf("list-sessions", "GET", decodeListSessions, noQueryCheck[auth.ListSessionsRequest], nil),
	caseOf("logout-all", "DELETE", decodeLogoutAll, noQueryCheck[auth.LogoutAllRequest], nil),
	caseOf("delete-session", "DELETE", decodeDeleteSession, func(t *testing.T, in fuzzInput, r auth.DeleteSessionRequest) {
		checkNoQuery(t, in)
		checkID(t, in, r.ID)
	}, nil),
}

// decoderSeeds adds, for every case, a valid input, the shared hostile bodies and queries,
// and a few path ids and header values at their limits.
func decoderSeeds(f *testing.F, cases []decodeCase, valid map[string]fuzzInput) {
	queries := []string{"", "x=1", "%zz", "limit=0", "limit=1", "limit=+7", "limit=99999999999999999999", "from=2026-01-01&to=2025-12-31",
		"from=9999-12-31&to=9999-12-31", "from=0000-01-01T00:00:00%2B23:59", "to=2026-01-01T00:00:00.999999999-23:59",
		"q=%00&email=%FF", "a=1&a=2", "status=open&status=open", ";", "&&&"}
	ids := []string{testID, "", strings.Repeat("x", wire.MaxIDBytes), strings.Repeat("x", wire.MaxIDBytes+1), "\x00", "\xff", "../x", "a/b"}
	headers := []string{"", "*", `"3"`, `W/"3"`, "3", "-1", `"0"`, "+3", `W/"9223372036854775808"`, "\x7f", strings.Repeat("k", 201), " k "}
	cts := []string{"application/json", "application/json; charset=UTF-8", "text/plain", "", "application/json; charset=latin1", "application/json;", "APPLICATION/JSON"}
	for i, c := range cases {
		which := uint8(i)
		if in, ok := valid[c.name]; ok {
			f.Add(which, in.query, in.id, in.contentType, in.header, in.body, in.flags)
		}
		for j, q := range queries {
			f.Add(which, q, ids[j%len(ids)], cts[j%len(cts)], headers[j%len(headers)], []byte(fuzzSeeds[j%len(fuzzSeeds)]), uint8(j))
		}
	}
	for j, b := range fuzzSeeds {
		f.Add(uint8(j), "", testID, "application/json", `"1"`, []byte(b), uint8(0))
	}
}

func fuzzCases(f *testing.F, cases []decodeCase, valid map[string]fuzzInput) {
	decoderSeeds(f, cases, valid)
	f.Fuzz(func(t *testing.T, which uint8, query, id, contentType, header string, body []byte, flags uint8) {
		runCase(t, cases, which, fuzzInput{query: query, id: id, contentType: contentType, header: header, body: body, flags: flags})
	})
}

// FuzzPatientDecoders drives every request decoder of the patient routes (the input's first
// byte picks one) with arbitrary queries, path ids, headers, content types and bodies.
func FuzzPatientDecoders(f *testing.F) {
	body := []byte(fuzzSeeds[0])
	fuzzCases(f, patientCases, map[string]fuzzInput{
		"create":          {contentType: "application/json", header: "key-1", body: body},
		"update":          {id: testID, contentType: "application/json", header: `W/"2"`, body: []byte(fuzzSeeds[1])},
		"delete":          {id: testID, header: `"7"`, flags: 2},
		"get":             {id: testID},
		"list":            {query: "q=ada&email=a%40b.c&dateOfBirth=1915-12-10&limit=10&pageToken=cDEuMQ"},
		"audit":           {query: "patientId=" + testID + "&actor=u-1&from=2026-01-01&to=2026-01-31T23:00:00%2B01:00&limit=1000"},
		"billing-account": {id: testID},
		"search":          {contentType: "application/json", body: []byte(`{"q":"ada","email":"a@b.c","dateOfBirth":"1915-12-10","limit":10,"pageToken":"cDEuMQ"}`)},
		"access-log":      {id: testID, query: "limit=10&pageToken=cDEuMQ"},
	})
}

// FuzzBillingDecoders drives every request decoder of the billing routes.
func FuzzBillingDecoders(f *testing.F) {
	fuzzCases(f, billingCases, map[string]fuzzInput{
		"list-accounts": {query: "patientId=" + testID},
		"get-account":   {id: testID},
		"create-invoice": {contentType: "application/json", header: "k", body: []byte(`{"patientId":"` + testID +
			`","currency":"USD","dueDate":"2026-12-31","lines":[{"description":"x","quantity":1,"unitAmount":1,"currency":"USD"}]}`)},
		"list-invoices":  {query: "patientId=" + testID + "&status=open&limit=500&pageToken=aTEuMQ"},
		"issue-invoice":  {id: invID, contentType: "application/json", body: []byte(" {} "), flags: 1},
		"record-payment": {id: invID, contentType: "application/json", header: "k", body: []byte(`{"amount":1,"method":"cash","currency":"EUR"}`)},
		"void-invoice":   {id: invID, flags: 1},
	})
}

// FuzzAuthDecoders drives every request decoder of the auth routes.
func FuzzAuthDecoders(f *testing.F) {
	fuzzCases(f, authCases, map[string]fuzzInput{
		"login":             {contentType: "application/json", body: []byte(`{"email":"a@b.c","password":"pw","deviceToken":"d"}`)},
		"refresh":           {contentType: "application/json", body: []byte(`{"refreshToken":"abc"}`)},
		"logout":            {contentType: "application/json", body: []byte(`{"refreshToken":"abc"}`)},
		"set-password":      {contentType: "application/json", body: []byte(`{"token":"abc","newPassword":"pw"}`)},
		"mfa-confirm":       {contentType: "application/json", body: []byte(`{"code":"123456"}`)},
		"mfa-disable":       {contentType: "application/json", body: []byte(`{"code":"123456"}`)},
		"login-mfa":         {contentType: "application/json", body: []byte(`{"challenge":"c","recoveryCode":"AAAA-BBBB-CCCC-DDDD"}`)},
		"login-mfa-enrol":   {contentType: "application/json", body: []byte(`{"challenge":"c"}`)},
		"login-mfa-confirm": {contentType: "application/json", body: []byte(`{"challenge":"c","code":"123456"}`)},
		"create-user":       {contentType: "application/json", body: []byte(`{"email":"a@b.c","password":"pw","role":"admin"}`)},
		"get-user":          {id: testID},
		"update-user":       {id: testID, contentType: "application/json", body: []byte(`{"role":"clinician","disabled":true}`)},
		"audit":             {query: "userId=u&actor=a&from=2026-01-01T00:00:00Z&to=2026-01-02&limit=5"},
		"delete-session":    {id: testID},
	})
}
