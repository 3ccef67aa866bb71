package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/pms/pms/pkg/analytics"
	"github.com/pms/pms/pkg/auth"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/broker/brokertest"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
	patientv1 "github.com/pms/pms/proto/pms/patient/v1"
	grpctransport "github.com/pms/pms/transport/grpc"
	kafkatransport "github.com/pms/pms/transport/kafka"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// guardWorld is `pms all` on a PostgreSQL database of its own with a user of every role
// (logged in through its auth service), a patient, an invoice and a user to be refused
// access to, and the database open for reading the services' audit logs.
type guardWorld struct {
	t       *testing.T
	a       map[string]string
	db      *db.DB
	dbURL   string
	tokens  map[string]string // role → access token
	ids     map[string]string // role → user id (the token's subject)
	patient string
	invoice string
	user    string
	n       atomic.Int64
}

func newGuardWorld(t *testing.T) *guardWorld {
	url := dbtest.PostgresDatabase(t)
	a, _ := startPMS(t, allAddrs, allArgs(t, url, "--rate-limit=0", "--gateway-client-rate=0")...)
	d, err := db.Open(context.Background(), url, "public")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	w := &guardWorld{t: t, a: a, db: d, dbURL: url, tokens: map[string]string{authz.RoleAdmin: allToken(t, a)}, ids: map[string]string{}}
	for _, role := range authz.Roles[1:] {
		w.ids[role] = w.create("auth", "/users", `{"email":"`+role+`@example.org","password":"`+matrixPassword+`","role":"`+role+`"}`)
		resp, b := call(t, "POST", w.url("auth", "/login"), "", `{"email":"`+role+`@example.org","password":"`+matrixPassword+`"}`)
		var p struct{ Token string }
		if resp.StatusCode != 200 || json.Unmarshal(b, &p) != nil {
			t.Fatalf("login %s: %d %s", role, resp.StatusCode, b)
		}
		w.tokens[role] = p.Token
	}
	w.patient = w.create("patient", "/patients", `{"name":"Guarded","email":"guarded@example.org","address":"1 Main St","dateOfBirth":"1980-01-01"}`)
	waitAccount(t, http.DefaultClient, w.url("billing", ""), w.tokens[authz.RoleAdmin], w.patient)
	w.invoice = w.create("billing", "/invoices", strings.ReplaceAll(invoiceBody, "{patient}", w.patient))
	w.user = w.create("auth", "/users", `{"email":"target@example.org","password":"`+matrixPassword+`","role":"clinician"}`)
	return w
}

func (w *guardWorld) url(service, path string) string { return "http://" + w.a[service+"/http"] + path }

// create posts body as admin and returns the id of the 201's answer.
func (w *guardWorld) create(service, path, body string) string {
	w.t.Helper()
	resp, b := call(w.t, "POST", w.url(service, path), w.tokens[authz.RoleAdmin], body)
	var v struct{ ID string }
	if resp.StatusCode != 201 || json.Unmarshal(b, &v) != nil || v.ID == "" {
		w.t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
	}
	return v.ID
}

// requestID returns a fresh request id, the key under which a call's audit rows are found.
func (w *guardWorld) requestID() string { return fmt.Sprintf("guard-%d", w.n.Add(1)) }

// auditRow is one row of a service's audit log.
type auditRow struct {
	Actor, Role, Action, Outcome string
	Subject                      string `db:"subject_id"`
	ClientAddress                string `db:"client_address"`
}

// audited returns the rows service's audit log holds for request id.
func (w *guardWorld) audited(service, id string) []auditRow {
	w.t.Helper()
	var rows []auditRow
	if err := w.db.SelectContext(context.Background(), &rows, `SELECT actor, role, action, outcome, subject_id, client_address FROM `+service+`.audit_log WHERE request_id = $1`, id); err != nil {
		w.t.Fatal(err)
	}
	return rows
}

// grpcConn dials service's gRPC listener.
func (w *guardWorld) grpcConn(service string) *grpc.ClientConn {
	w.t.Helper()
	conn, err := grpc.NewClient(w.a[service+"/grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// commander sends command messages to the broker of `pms all` and reads their replies.
type guardCommander struct {
	t       *testing.T
	p       sarama.SyncProducer
	replies *brokertest.Reader
}

// guardReplies is the operator's reply topic, which the embedded broker creates; the
// commander sends as the admin principal, which may read it.
var guardReplies = kafkatransport.RepliesOf(kafkatransport.PrincipalOperator)

func (w *guardWorld) commander() *guardCommander {
	w.t.Helper()
	broker := w.a["broker/kafka"]
	p, err := sarama.NewSyncProducer([]string{broker}, brokertest.ConfigFor(broker))
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { _ = p.Close() })
	return &guardCommander{t: w.t, p: p, replies: brokertest.NewReader(w.t, broker, guardReplies)}
}

// send publishes a command on topic with the given headers (name, value pairs) and returns
// the status of its reply (the reply is read before returning: the call is finished).
func (c *guardCommander) send(topic, value, requestID string, headers ...string) int {
	c.t.Helper()
	msg := &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(value)}
	headers = append(headers, "reply-to", guardReplies, "correlation-id", requestID, "x-request-id", requestID)
	for i := 0; i+1 < len(headers); i += 2 {
		msg.Headers = append(msg.Headers, sarama.RecordHeader{Key: []byte(headers[i]), Value: []byte(headers[i+1])})
	}
	if _, _, err := c.p.SendMessage(msg); err != nil {
		c.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			c.t.Fatalf("no reply to %s within 30s", requestID)
		}
		m := c.replies.Read(1, left)[0]
		if brokertest.Header(m, "correlation-id") != requestID {
			continue
		}
		var status int
		_, _ = fmt.Sscan(brokertest.Header(m, "status"), &status)
		return status
	}
}

// grpcStatus is the HTTP status of a gRPC client's error (its kind), 0 for none.
func grpcStatus(err error) int {
	switch errs.KindOf(err) {
	case errs.Unauthenticated:
		return http.StatusUnauthorized
	case errs.PermissionDenied:
		return http.StatusForbidden
	case "":
		return 0
	}
	return http.StatusInternalServerError
}

// callCtx is the context of a gRPC call with token ("" for none) and request id.
func callCtx(token, requestID string) context.Context {
	ctx := observe.WithRequestID(context.Background(), requestID)
	if token != "" {
		ctx = authz.WithToken(ctx, token)
	}
	return ctx
}

// jsonRoutes are the routes that take a JSON body and a token, by service and path (the
// public auth routes, login, refresh and logout, take no token and are left out), with a
// valid body and a role that may not call them. {patient}, {invoice} and {user} are filled in.
var jsonRoutes = []struct {
	service, method, path, body string
}{
	{"auth", "POST", "/users", `{"email":"new@example.org","password":"` + matrixPassword + `","role":"analyst"}`},
	{"auth", "PATCH", "/users/{user}", `{"role":"billing"}`},
	{"patient", "POST", "/patients", `{"name":"New","email":"new@example.org","address":"1 Main St","dateOfBirth":"1980-01-01"}`},
	{"patient", "PUT", "/patients/{patient}", `{"name":"New","email":"new@example.org","address":"1 Main St","dateOfBirth":"1980-01-01"}`},
	{"billing", "POST", "/invoices", invoiceBody},
	{"billing", "POST", "/invoices/{invoice}/payments", `{"amount":1,"method":"cash"}`},
}

// fill fills the placeholders of s.
func (w *guardWorld) fill(s string) string {
	return strings.NewReplacer("{patient}", w.patient, "{invoice}", w.invoice, "{user}", w.user).Replace(s)
}

// TestDeniedCallsAreAudited: a call a service refuses — no token, a token it cannot verify,
// or a role that may not call the endpoint — sent straight to the service over each of its
// transports (REST, gRPC, a command message) leaves exactly one row in that service's audit
// log: outcome denied, the caller when the token was valid (else anonymous), the action,
// and the patient (invoice, user) when the request named one (API.md: "Every create, read,
// update, delete and search of patient data, allowed or denied, is written to the audit
// log"; "Refused calls (401/403) are audited as denied with the actor when the token was
// valid"). Every service that audits is covered: auth, patient, billing, analytics (which
// has no command topic).
func TestDeniedCallsAreAudited(t *testing.T) {
	w := newGuardWorld(t)
	analyst, clinician := w.tokens[authz.RoleAnalyst], w.tokens[authz.RoleClinician]
	// A token the services cannot verify: well formed, signed by a key they do not know.
	forged := testIssuer.Token(t, w.ids[authz.RoleAdmin], authz.RoleAdmin)
	patientGRPC := grpctransport.NewPatientClient(w.grpcConn("patient"))
	billingGRPC := grpctransport.NewBillingClient(w.grpcConn("billing"))
	authGRPC := grpctransport.NewAuthClient(w.grpcConn("auth"))
	analyticsGRPC := grpctransport.NewAnalyticsClient(w.grpcConn("analytics"))
	cmd := w.commander()
	body := w.fill(jsonRoutes[3].body)
	payment := `{"amount":1,"method":"cash"}`

	type refusal struct {
		service, transport, name string
		role                     string // the caller's role; "" for no valid token (401)
		action, subject          string
		do                       func(requestID string) int // the status the caller got
	}
	rest := func(method, path, token, body string) func(string) int {
		return func(id string) int {
			resp, _ := call(t, method, path, token, body, "X-Request-ID", id)
			return resp.StatusCode
		}
	}
	p, inv, u := w.patient, w.invoice, w.user
	cases := []refusal{
		// patient
		{"patient", "rest", "read as analyst", authz.RoleAnalyst, "read", p, rest("GET", w.url("patient", "/patients/"+p), analyst, "")},
		{"patient", "rest", "update without a token", "", "update", p, rest("PUT", w.url("patient", "/patients/"+p), "", body)},
		{"patient", "rest", "delete with a forged token", "", "delete", p, rest("DELETE", w.url("patient", "/patients/"+p), forged, "")},
		{"patient", "rest", "search as analyst", authz.RoleAnalyst, "search", "", rest("GET", w.url("patient", "/patients?q=x"), analyst, "")},
		{"patient", "rest", "billing account as analyst", authz.RoleAnalyst, "read", p, rest("GET", w.url("patient", "/patients/"+p+"/billing-account"), analyst, "")},
		{"patient", "rest", "audit as clinician", authz.RoleClinician, "audit_read", "", rest("GET", w.url("patient", "/audit"), clinician, "")},
		{"patient", "grpc", "read as analyst", authz.RoleAnalyst, "read", p, func(id string) int {
			_, err := patientGRPC.Get(callCtx(analyst, id), p)
			return grpcStatus(err)
		}},
		{"patient", "grpc", "history without a token", "", "history", p, func(id string) int {
			_, err := patientGRPC.History(callCtx("", id), p)
			return grpcStatus(err)
		}},
		{"patient", "grpc", "invoices with a forged token", "", "read", p, func(id string) int {
			_, err := patientGRPC.Invoices(callCtx(forged, id), p)
			return grpcStatus(err)
		}},
		{"patient", "kafka", "update as analyst", authz.RoleAnalyst, "update", p, func(id string) int {
			return cmd.send(patient.TopicCommands, body, id, "endpoint", "UpdatePatient", "id", p, "authorization", "Bearer "+analyst)
		}},
		{"patient", "kafka", "delete without a token", "", "delete", p, func(id string) int {
			return cmd.send(patient.TopicCommands, "", id, "endpoint", "DeletePatient", "id", p)
		}},
		{"patient", "kafka", "create with a forged token", "", "create", "", func(id string) int {
			return cmd.send(patient.TopicCommands, body, id, "endpoint", "CreatePatient", "authorization", "Bearer "+forged)
		}},
		// billing
		{"billing", "rest", "read an invoice as analyst", authz.RoleAnalyst, "read_invoice", inv, rest("GET", w.url("billing", "/invoices/"+inv), analyst, "")},
		{"billing", "rest", "search accounts without a token", "", "search_accounts", p, rest("GET", w.url("billing", "/accounts?patientId="+p), "", "")},
		{"billing", "rest", "create an invoice as clinician", authz.RoleClinician, "create_invoice", p, rest("POST", w.url("billing", "/invoices"), clinician, w.fill(invoiceBody))},
		{"billing", "rest", "pay with a forged token", "", "record_payment", inv, rest("POST", w.url("billing", "/invoices/"+inv+"/payments"), forged, payment)},
		{"billing", "grpc", "read an invoice as analyst", authz.RoleAnalyst, "read_invoice", inv, func(id string) int {
			_, err := billingGRPC.GetInvoice(callCtx(analyst, id), inv)
			return grpcStatus(err)
		}},
		{"billing", "grpc", "open an account as analyst", authz.RoleAnalyst, "create_account", p, func(id string) int {
			_, err := billingGRPC.CreateAccount(callCtx(analyst, id), billing.CreateAccountRequest{PatientID: p, Name: "N", Email: "n@example.org"})
			return grpcStatus(err)
		}},
		{"billing", "grpc", "issue without a token", "", "issue_invoice", inv, func(id string) int {
			_, err := billingGRPC.IssueInvoice(callCtx("", id), inv)
			return grpcStatus(err)
		}},
		{"billing", "kafka", "issue as clinician", authz.RoleClinician, "issue_invoice", inv, func(id string) int {
			return cmd.send(billing.TopicCommands, "", id, "endpoint", "IssueInvoice", "id", inv, "authorization", "Bearer "+clinician)
		}},
		{"billing", "kafka", "void without a token", "", "void_invoice", inv, func(id string) int {
			return cmd.send(billing.TopicCommands, "", id, "endpoint", "VoidInvoice", "id", inv)
		}},
		{"billing", "kafka", "create an invoice with a forged token", "", "create_invoice", p, func(id string) int {
			return cmd.send(billing.TopicCommands, w.fill(invoiceBody), id, "endpoint", "CreateInvoice", "authorization", "Bearer "+forged)
		}},
		// auth
		{"auth", "rest", "read a user as clinician", authz.RoleClinician, "user_read", u, rest("GET", w.url("auth", "/users/"+u), clinician, "")},
		{"auth", "rest", "change a user without a token", "", "user_update", u, rest("PATCH", w.url("auth", "/users/"+u), "", `{"role":"billing"}`)},
		{"auth", "grpc", "read a user as analyst", authz.RoleAnalyst, "user_read", u, func(id string) int {
			_, err := authGRPC.GetUser(callCtx(analyst, id), u)
			return grpcStatus(err)
		}},
		{"auth", "grpc", "list users with a forged token", "", "user_read", "", func(id string) int {
			_, err := authGRPC.ListUsers(callCtx(forged, id))
			return grpcStatus(err)
		}},
		{"auth", "kafka", "disable a user as clinician", authz.RoleClinician, "user_update", u, func(id string) int {
			return cmd.send(auth.TopicCommands, "", id, "endpoint", "DisableUser", "id", u, "authorization", "Bearer "+clinician)
		}},
		{"auth", "kafka", "create a user without a token", "", "user_create", "", func(id string) int {
			return cmd.send(auth.TopicCommands, w.fill(jsonRoutes[0].body), id, "endpoint", "CreateUser")
		}},
		// analytics
		{"analytics", "rest", "summary as clinician", authz.RoleClinician, "read_summary", "", rest("GET", w.url("analytics", "/summary"), clinician, "")},
		{"analytics", "rest", "summary without a token", "", "read_summary", "", rest("GET", w.url("analytics", "/summary"), "", "")},
		{"analytics", "grpc", "summary as billing", authz.RoleBilling, "read_summary", "", func(id string) int {
			_, err := analyticsGRPC.GetSummary(callCtx(w.tokens[authz.RoleBilling], id), analytics.SummaryQuery{})
			return grpcStatus(err)
		}},
		{"analytics", "grpc", "summary with a forged token", "", "read_summary", "", func(id string) int {
			_, err := analyticsGRPC.GetSummary(callCtx(forged, id), analytics.SummaryQuery{})
			return grpcStatus(err)
		}},
	}
	covered := map[string]bool{}
	for _, c := range cases {
		t.Run(c.service+" "+c.transport+" "+c.name, func(t *testing.T) {
			id := w.requestID()
			want, actor := http.StatusForbidden, w.ids[c.role]
			if c.role == "" {
				want, actor = http.StatusUnauthorized, authz.Anonymous
			}
			if got := c.do(id); got != want {
				t.Fatalf("answered %d, want %d", got, want)
			}
			rows := w.audited(c.service, id)
			if len(rows) != 1 {
				t.Fatalf("%d audit rows for the refused call, want 1: %+v", len(rows), rows)
			}
			wantRow := auditRow{Actor: actor, Role: c.role, Action: c.action, Outcome: "denied", Subject: c.subject, ClientAddress: rows[0].ClientAddress}
			if rows[0] != wantRow || rows[0].ClientAddress == "" {
				t.Fatalf("audit row %+v, want %+v (and a client address)", rows[0], wantRow)
			}
		})
		covered[c.service+" "+c.transport] = true
	}
	for _, want := range []string{"patient rest", "patient grpc", "patient kafka", "billing rest", "billing grpc", "billing kafka",
		"auth rest", "auth grpc", "auth kafka", "analytics rest", "analytics grpc"} {
		if !covered[want] {
			t.Errorf("no refused call over %s", want)
		}
	}
}

// gatewayPath is path of service as the gateway serves it (API.md, "Gateway routing").
func gatewayPath(service, path string) string {
	if service == "billing" {
		return "/api/billing" + path
	}
	return "/api" + path
}

// TestAuthBeforeBody: on every JSON route that needs a token, of every service and of the
// gateway, a caller without a valid token gets 401 and a valid token whose role may not
// call the route gets 403, whatever is wrong with the body — too large, not JSON by its
// Content-Type, malformed, an unknown field (API.md: "Checks run in this order, so an
// unauthenticated caller learns nothing else: 401, then 403, then 400/413/415"). With a
// caller who may call the route, the same bodies get their own 413/415/400: the body rules
// are there, only after the token.
func TestAuthBeforeBody(t *testing.T) {
	w := newGuardWorld(t)
	forged := testIssuer.Token(t, w.ids[authz.RoleAdmin], authz.RoleAdmin) // signed by a key the platform does not know
	type variant struct {
		name, ctype string
		body        func(valid string) string
		own         int // the answer a caller allowed on the route gets
	}
	variants := []variant{
		// 1 MiB is the contract's limit (docs/api.md, payload_too_large): one byte over it.
		{"oversized", "application/json", func(v string) string { return padJSON(v, 1<<20+1) }, 413},
		{"wrong content type", "text/plain", func(v string) string { return v }, 415},
		{"malformed", "application/json", func(string) string { return `{"name":` }, 400},
		{"unknown field", "application/json", func(v string) string { return `{"bogus":1,` + v[1:] }, 400},
	}
	callers := []struct {
		name, token, word string
		status            int
	}{
		{"no token", "", "unauthenticated", 401},
		{"forged token", forged, "unauthenticated", 401},
		{"analyst", w.tokens[authz.RoleAnalyst], "permission_denied", 403}, // analysts may call none of these routes
		{"admin", w.tokens[authz.RoleAdmin], "", 0},                        // may call every one: the body rules answer
	}
	for _, r := range jsonRoutes {
		for _, via := range []string{"service", "gateway"} {
			url := w.url(r.service, w.fill(r.path))
			if via == "gateway" {
				url = w.url("gateway", gatewayPath(r.service, w.fill(r.path)))
			}
			t.Run(via+" "+r.method+" "+r.service+r.path, func(t *testing.T) {
				for _, v := range variants {
					for _, c := range callers {
						want, word := c.status, c.word
						if want == 0 {
							want = v.own
						}
						resp, b := call(t, r.method, url, c.token, v.body(w.fill(r.body)), "Content-Type", v.ctype)
						var e struct{ Error string }
						_ = json.Unmarshal(b, &e)
						if resp.StatusCode != want || (word != "" && e.Error != word) {
							t.Errorf("%s, %s body: %d %.200s, want %d %s", c.name, v.name, resp.StatusCode, b, want, word)
						}
					}
				}
			})
		}
	}
}

// padJSON returns the JSON object obj padded with JSON whitespace after its opening brace
// to exactly size bytes: the same record, as large as the caller wants.
func padJSON(obj string, size int) string {
	return "{" + strings.Repeat(" ", size-len(obj)) + obj[1:]
}

// TestBodyLimitIsTheContracts: the contract's limit is 1 MiB of bytes, whatever the fields
// hold (docs/api.md: "payload_too_large (body over 1 MiB)"; "Request messages are limited to
// 1 MiB"). A valid patient record padded with whitespace to exactly 1 MiB is created over
// REST, straight to the service and through the gateway, and one byte more is a 413; a gRPC
// CreatePatient message of exactly 1 MiB (padded with an unknown field, which protobuf
// skips) is created, one byte more is ResourceExhausted. The number is the contract's, not
// the code's constant, so a smaller limit in the code fails here.
func TestBodyLimitIsTheContracts(t *testing.T) {
	w := newGuardWorld(t)
	const limit = 1 << 20 // 1,048,576 bytes: docs/api.md, "Errors" (payload_too_large) and "gRPC"
	token := w.tokens[authz.RoleClinician]
	record := func(n int) string {
		return fmt.Sprintf(`{"name":"Big %d","email":"big%d@example.org","address":"1 Main St","dateOfBirth":"1980-01-01"}`, n, n)
	}
	for i, url := range []string{w.url("patient", "/patients"), w.url("gateway", "/api/patients")} {
		body := padJSON(record(i), limit)
		if len(body) != limit {
			t.Fatalf("body of %d bytes", len(body))
		}
		resp, b := call(t, "POST", url, token, body)
		if resp.StatusCode != 201 || !strings.Contains(string(b), fmt.Sprintf("big%d@example.org", i)) {
			t.Errorf("POST %s with a valid body of exactly 1 MiB: %d %.300s, want 201", url, resp.StatusCode, b)
		}
		resp, b = call(t, "POST", url, token, padJSON(record(10+i), limit+1))
		if resp.StatusCode != 413 {
			t.Errorf("POST %s with 1 MiB + 1 byte: %d %.300s, want 413", url, resp.StatusCode, b)
		}
	}

	client := patientv1.NewPatientServiceClient(w.grpcConn("patient"))
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
	for _, tc := range []struct {
		size int
		want codes.Code
	}{{limit, codes.OK}, {limit + 1, codes.ResourceExhausted}} {
		msg := &patientv1.CreatePatientRequest{Name: "Big gRPC", Email: fmt.Sprintf("big-grpc-%d@example.org", tc.size), Address: "1 Main St", DateOfBirth: "1980-01-01"}
		padTo(t, msg, tc.size)
		p, err := client.CreatePatient(ctx, msg)
		if got := status.Code(err); got != tc.want || (err == nil && p.GetEmail() != msg.Email) {
			t.Errorf("CreatePatient message of %d bytes: %v, want %s", tc.size, err, tc.want)
		}
	}
}

// padTo appends an unknown field (number 1000, bytes) to msg so that it marshals to exactly
// size bytes.
func padTo(t *testing.T, msg proto.Message, size int) {
	t.Helper()
	base := proto.Size(msg)
	for pad := size - base - 6; pad <= size-base; pad++ {
		b := protowire.AppendTag(nil, 1000, protowire.BytesType)
		b = protowire.AppendBytes(b, make([]byte, pad))
		if base+len(b) == size {
			msg.ProtoReflect().SetUnknown(b)
			if proto.Size(msg) != size {
				t.Fatalf("padded message is %d bytes, want %d", proto.Size(msg), size)
			}
			return
		}
	}
	t.Fatalf("cannot pad a %d-byte message to %d", base, size)
}
