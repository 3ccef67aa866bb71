package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pms/pms/pkg/platform/polltest"

	"github.com/google/uuid"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/broker/brokertest"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
	grpctransport "github.com/pms/pms/transport/grpc"
	httptransport "github.com/pms/pms/transport/http"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	billingv0 "github.com/pms/pms/proto/legacy/billingv0"
)

var billingAddrs = []string{"billing/http", "billing/grpc", "billing/admin"}

func billingArgs(t testing.TB, dbURL string, extra ...string) []string {
	return append([]string{"billing", jwksArg(), "--http-addr=127.0.0.1:0", "--grpc-addr=127.0.0.1:0", "--admin-addr=127.0.0.1:0",
		"--data-dir=" + t.TempDir(), "--database-url=" + dbURL, "--log-format=logfmt", "--log-level=warn",
		"--kafka-brokers=" + brokertest.Start(t).Addr()}, extra...)
}

// databases are the two databases every process test runs on: a fresh PostgreSQL database
// (each service in its schema), and SQLite as `make run` has it, one file per service under
// the data folder (no URL).
func databases(*testing.T) []string { return []string{"postgres", "sqlite"} }

func dbURLFor(t *testing.T, name string) string {
	if name == "postgres" {
		return dbtest.PostgresDatabase(t)
	}
	return ""
}

func grpcConn(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// TestBillingProcess runs `pms billing` and drives every operation and error kind through
// both real transports via their client endpoints, and the earlier implementation's RPC.
func TestBillingProcess(t *testing.T) {
	for _, name := range databases(t) {
		t.Run(name, func(t *testing.T) {
			a, stop := startPMS(t, billingAddrs, billingArgs(t, dbURLFor(t, name))...)
			conn := grpcConn(t, a["billing/grpc"])
			grpcC := grpctransport.NewBillingClient(conn)
			httpC, err := httptransport.NewBillingClient("http://"+a["billing/http"], httptransport.ClientOptions{})
			if err != nil {
				t.Fatal(err)
			}
			legacy, err := billingv0.NewBillingServiceClient(conn).CreateBillingAccount(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+testIssuer.Token(t, "c", authz.RoleClinician)), &billingv0.BillingRequest{PatientId: uuid.NewString()})
			if err != nil || legacy.GetStatus() != "ACTIVE" {
				t.Fatalf("legacy RPC: %v %v", legacy, err)
			}
			if acc, err := httpC.GetAccount(authed(t, "b", authz.RoleBilling), legacy.GetAccountId()); err != nil || acc.ID != legacy.GetAccountId() {
				t.Fatalf("legacy account over HTTP: %+v %v", acc, err)
			}
			for name, c := range map[string]billing.Service{"grpc": grpcC, "http": httpC} {
				t.Run(name, func(t *testing.T) { exerciseBilling(t, grpcC, c) })
			}
			checkBillingAdmin(t, a)
			if err := stop(); err != nil {
				t.Fatalf("graceful stop: %v", err)
			}
		})
	}
}

// exerciseBilling drives c through an invoice's whole life and every refusal; accounts are
// opened through opener (the REST API opens none).
func exerciseBilling(t *testing.T, opener, c billing.Service) {
	ctx := authed(t, "biller-1", authz.RoleBilling)
	pid := uuid.NewString()
	acc, err := opener.CreateAccount(ctx, billing.CreateAccountRequest{PatientID: pid, Name: "N", Email: "n@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	expect := func(err error, k errs.Kind) {
		t.Helper()
		if errs.KindOf(err) != k {
			t.Fatalf("got %v (%s), want %s", err, errs.KindOf(err), k)
		}
	}
	if got, err := c.GetAccount(ctx, acc.ID); err != nil || got.PatientID != pid {
		t.Fatalf("get account: %+v %v", got, err)
	}
	if l, err := c.ListAccounts(ctx, billing.AccountQuery{PatientID: pid}); err != nil || len(l) != 1 || l[0].ID != acc.ID {
		t.Fatalf("list accounts: %+v %v", l, err)
	}
	_, err = c.GetAccount(ctx, uuid.NewString())
	expect(err, errs.NotFound)
	_, err = c.ListAccounts(ctx, billing.AccountQuery{})
	expect(err, errs.InvalidArgument)

	req := billing.CreateInvoiceRequest{PatientID: pid, Currency: "KWD", DueDate: "2026-12-31", IdempotencyKey: "k-" + pid,
		Lines: []billing.LineInput{{Description: "Consultation", Quantity: 3, UnitAmount: 12345}}}
	inv, err := c.CreateInvoice(ctx, req)
	if err != nil || inv.Subtotal != 37035 || inv.Status != billing.StatusDraft || inv.AccountID != acc.ID {
		t.Fatalf("create invoice: %+v %v", inv, err)
	}
	if again, err := c.CreateInvoice(ctx, req); err != nil || again.ID != inv.ID {
		t.Fatalf("replay: %+v %v", again, err)
	}
	req.DueDate = "2027-01-01"
	_, err = c.CreateInvoice(ctx, req)
	expect(err, errs.Conflict)
	_, err = c.CreateInvoice(ctx, billing.CreateInvoiceRequest{PatientID: pid, Currency: "XYZ", DueDate: "2026-02-30", Lines: []billing.LineInput{{Quantity: 0}}})
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind != errs.InvalidArgument || e.Fields["currency"] == "" || e.Fields["dueDate"] == "" || e.Fields["lines[0].quantity"] == "" {
		t.Fatalf("validation error lost its fields: %#v", err)
	}
	_, err = c.CreateInvoice(ctx, billing.CreateInvoiceRequest{PatientID: uuid.NewString(), Currency: "USD", DueDate: "2026-12-31",
		Lines: []billing.LineInput{{Description: "x", Quantity: 1, UnitAmount: 1}}})
	expect(err, errs.NotFound)
	_, err = c.RecordPayment(ctx, billing.PaymentRequest{InvoiceID: inv.ID, Amount: 1, Method: "cash"})
	expect(err, errs.Conflict)
	if inv, err = c.IssueInvoice(ctx, inv.ID); err != nil || inv.Status != billing.StatusOpen {
		t.Fatalf("issue: %+v %v", inv, err)
	}
	_, err = c.RecordPayment(ctx, billing.PaymentRequest{InvoiceID: inv.ID, Amount: 37036, Method: "card"})
	expect(err, errs.Conflict)
	_, err = c.RecordPayment(ctx, billing.PaymentRequest{InvoiceID: inv.ID, Amount: 1, Method: "card", Currency: "USD"})
	expect(err, errs.InvalidArgument)
	_, err = c.RecordPayment(ctx, billing.PaymentRequest{InvoiceID: inv.ID, Amount: 0, Method: "gold"})
	expect(err, errs.InvalidArgument)
	pay := billing.PaymentRequest{InvoiceID: inv.ID, Amount: 35, Method: "cash", IdempotencyKey: "p-" + pid}
	if inv, err = c.RecordPayment(ctx, pay); err != nil || inv.AmountDue != 37000 || inv.Status != billing.StatusOpen {
		t.Fatalf("partial payment: %+v %v", inv, err)
	}
	if again, err := c.RecordPayment(ctx, pay); err != nil || again.AmountPaid != 35 || len(again.Payments) != 1 {
		t.Fatalf("payment replay: %+v %v", again, err)
	}
	if inv, err = c.RecordPayment(ctx, billing.PaymentRequest{InvoiceID: inv.ID, Amount: 37000, Method: "bank_transfer"}); err != nil || inv.Status != billing.StatusPaid {
		t.Fatalf("final payment: %+v %v", inv, err)
	}
	_, err = c.VoidInvoice(ctx, inv.ID)
	expect(err, errs.Conflict)
	other, _ := c.CreateInvoice(ctx, billing.CreateInvoiceRequest{PatientID: pid, Currency: "JPY", DueDate: "2026-12-31",
		Lines: []billing.LineInput{{Description: "x", Quantity: 1, UnitAmount: 500}}})
	if v, err := c.VoidInvoice(ctx, other.ID); err != nil || v.Status != billing.StatusVoid {
		t.Fatalf("void: %+v %v", v, err)
	}
	if got, err := c.GetInvoice(ctx, inv.ID); err != nil || got.Status != billing.StatusPaid || len(got.Payments) != 2 {
		t.Fatalf("get invoice: %+v %v", got, err)
	}
	_, err = c.GetInvoice(ctx, uuid.NewString())
	expect(err, errs.NotFound)
	_, err = c.GetInvoice(ctx, "nope")
	expect(err, errs.InvalidArgument)
	page, err := c.ListInvoices(ctx, billing.InvoiceQuery{PatientID: pid, Limit: 1})
	if err != nil || len(page.Invoices) != 1 || page.NextPageToken == "" {
		t.Fatalf("list page 1: %+v %v", page, err)
	}
	page, err = c.ListInvoices(ctx, billing.InvoiceQuery{PatientID: pid, Limit: 1, PageToken: page.NextPageToken})
	if err != nil || len(page.Invoices) != 1 || page.Invoices[0].ID != other.ID || page.NextPageToken != "" {
		t.Fatalf("list page 2: %+v %v", page, err)
	}
	_, err = c.ListInvoices(ctx, billing.InvoiceQuery{Status: "overdue"})
	expect(err, errs.InvalidArgument)
}

func checkBillingAdmin(t *testing.T, a map[string]string) {
	t.Helper()
	code, _ := httpGet(t, "http://"+a["billing/admin"]+"/readyz")
	if code != 200 {
		t.Fatalf("/readyz = %d", code)
	}
	code, body := httpGet(t, "http://"+a["billing/admin"]+"/metrics")
	for _, want := range []string{
		`pms_billing_request_duration_seconds_count{code="ok",method="CreateInvoice",transport="grpc"}`,
		`method="RecordPayment",transport="http"`,
		`pms_billing_changes_total{action="record_payment",result="ok"}`,
		`pms_billing_audit_`,
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Fatalf("/metrics lacks %s:\n%.3000s", want, body)
		}
	}
	if code, _ := httpGet(t, "http://"+a["billing/http"]+"/metrics"); code != 404 {
		t.Fatalf("public port serves /metrics: %d", code)
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testIssuer.Token(t, "admin-1", authz.RoleAdmin))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// doJSON sends a JSON request as an admin of the test issuer and decodes the answer into
// out (when not nil).
func doJSON(t *testing.T, method, url string, body any, out any) int {
	t.Helper()
	return doJSONAs(t, testIssuer.Token(t, "admin-1", authz.RoleAdmin), method, url, body, out)
}

// doJSONAs is doJSON with the given access token.
func doJSONAs(t *testing.T, token, method, url string, body any, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %s: %v", method, url, raw, err)
		}
	}
	if resp.StatusCode >= 300 {
		var eb struct{ Error string }
		if json.Unmarshal(raw, &eb) != nil || eb.Error == "" {
			t.Fatalf("%s %s: %d without the contract's error body: %s", method, url, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode
}

func newPatientBody(tag string) map[string]string {
	return map[string]string{"name": "Ada " + tag, "email": "ada-" + tag + "@example.org", "address": "1 Main St", "dateOfBirth": "1990-01-02"}
}

// TestAllWithBilling runs `pms all`: registering a patient opens the billing account (over
// gRPC, to the address billing's listener bound), and the patient service serves the
// patient's account and invoices from billing over HTTP.
func TestAllWithBilling(t *testing.T) {
	for _, name := range databases(t) {
		t.Run(name, func(t *testing.T) {
			a, stop := startPMS(t, allAddrs, allArgs(t, dbURLFor(t, name))...)
			patientURL, billingURL := "http://"+a["patient/http"], "http://"+a["billing/http"]
			tok := allToken(t, a)

			var p patient.Patient
			if code := doJSONAs(t, tok, "POST", patientURL+"/patients", newPatientBody("all"), &p); code != 201 {
				t.Fatalf("create patient: %d", code)
			}
			// The account is opened after the registration answered (docs/billing.md): poll.
			var accounts []billing.Account
			polltest.Until(t, 30*time.Second, "the new patient's billing account", func() bool {
				accounts = nil
				code := doJSONAs(t, tok, "GET", billingURL+"/accounts?patientId="+p.ID, nil, &accounts)
				if code != 200 {
					t.Fatalf("accounts of the new patient: %d", code)
				}
				return len(accounts) == 1
			})
			var viaPatient patient.BillingAccount
			if code := doJSONAs(t, tok, "GET", patientURL+"/patients/"+p.ID+"/billing-account", nil, &viaPatient); code != 200 ||
				viaPatient.ID != accounts[0].ID || viaPatient.PatientID != p.ID || viaPatient.Status != "active" {
				t.Fatalf("billing-account through the patient service: %d %+v", code, viaPatient)
			}
			var inv billing.Invoice
			if code := doJSONAs(t, tok, "POST", billingURL+"/invoices", map[string]any{"patientId": p.ID, "currency": "BHD", "dueDate": "2026-12-31",
				"lines": []map[string]any{{"description": "Consultation", "quantity": 2, "unitAmount": 12345}}}, &inv); code != 201 {
				t.Fatalf("create invoice: %d", code)
			}
			var invs []patient.Invoice
			if code := doJSONAs(t, tok, "GET", patientURL+"/patients/"+p.ID+"/invoices", nil, &invs); code != 200 || len(invs) != 1 ||
				invs[0].ID != inv.ID || invs[0].Subtotal != 24690 || invs[0].Lines[0].Amount != 24690 {
				t.Fatalf("invoices through the patient service: %d %+v", code, invs)
			}
			if code := doJSONAs(t, tok, "GET", patientURL+"/patients/"+uuid.NewString()+"/billing-account", nil, nil); code != 404 {
				t.Fatalf("unknown patient: %d", code)
			}
			var entries []patient.AuditEntry
			doJSONAs(t, tok, "GET", patientURL+"/audit?patientId="+p.ID, nil, &entries)
			seen := map[string]bool{}
			for _, e := range entries {
				seen[e.Action] = true
			}
			if !seen[patient.ActionBillingAccount] || !seen[patient.ActionInvoices] {
				t.Fatalf("billing reads not audited: %v", seen)
			}
			if err := stop(); err != nil {
				t.Fatalf("graceful stop: %v", err)
			}
		})
	}
}

// TestPatientWithBillingStopped runs `pms billing` and `pms patient` as two processes and
// stops billing: registering a patient still succeeds (201), the patient's billing routes
// answer 503, and the missed account is logged by id and counted.
func TestPatientWithBillingStopped(t *testing.T) {
	for _, name := range databases(t) {
		t.Run(name, func(t *testing.T) {
			url := dbURLFor(t, name)
			ba, stopBilling := startPMS(t, billingAddrs, billingArgs(t, url)...)
			args := patientArgs(t, url)
			for i, a := range args {
				if a == "--billing-addr=" {
					args[i] = "--billing-addr=" + ba["billing/grpc"]
				}
			}
			pa, stopPatient := startPMS(t, patientAddrs, args...)
			patientURL := "http://" + pa["patient/http"]

			var p patient.Patient
			if code := doJSON(t, "POST", patientURL+"/patients", newPatientBody("before"), &p); code != 201 {
				t.Fatalf("create patient: %d", code)
			}
			if code := doJSON(t, "GET", patientURL+"/patients/"+p.ID+"/billing-account", nil, nil); code != 200 {
				t.Fatalf("billing-account while billing runs: %d", code)
			}

			if err := stopBilling(); err != nil {
				t.Fatalf("stop billing: %v", err)
			}
			var p2 patient.Patient
			if code := doJSON(t, "POST", patientURL+"/patients", newPatientBody("after"), &p2); code != 201 {
				t.Fatalf("create patient while billing is stopped: %d", code)
			}
			for _, path := range []string{"/billing-account", "/invoices"} {
				for _, id := range []string{p.ID, p2.ID} {
					if code := doJSON(t, "GET", patientURL+"/patients/"+id+path, nil, nil); code != 503 {
						t.Fatalf("GET %s of %s while billing is stopped: %d, want 503", path, id, code)
					}
				}
			}
			var got patient.Patient
			if code := doJSON(t, "GET", patientURL+"/patients/"+p2.ID, nil, &got); code != 200 || got.ID != p2.ID {
				t.Fatalf("the patient registered while billing was down: %d", code)
			}
			_, metrics := httpGet(t, "http://"+pa["patient/admin"]+"/metrics")
			if !strings.Contains(metrics, `pms_patient_billing_calls_total{call="CreateAccount",result="unavailable"} 1`) ||
				!strings.Contains(metrics, `pms_patient_billing_calls_total{call="CreateAccount",result="ok"} 1`) {
				t.Fatalf("the missed account is not counted:\n%s", grepLines(metrics, "billing"))
			}
			if err := stopPatient(); err != nil {
				t.Fatalf("stop patient: %v", err)
			}
		})
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestBillingRateLimit: billing's per-endpoint limits are configuration, and past them a
// client gets the contract's 429 with Retry-After.
func TestBillingRateLimit(t *testing.T) {
	a, _ := startPMS(t, billingAddrs, billingArgs(t, "", "--rate-limit=0.5", "--rate-burst=1")...)
	if code, _ := httpGet(t, "http://"+a["billing/http"]+"/invoices"); code != 200 {
		t.Fatalf("first call: %d", code)
	}
	if code := doJSON(t, "GET", "http://"+a["billing/http"]+"/invoices", nil, nil); code != 429 {
		t.Fatalf("second call: %d, want 429", code)
	}
	// Another endpoint has its own bucket.
	if code := doJSON(t, "GET", "http://"+a["billing/http"]+"/invoices/"+uuid.NewString(), nil, nil); code != 404 {
		t.Fatalf("other endpoint: %d, want 404", code)
	}
}
