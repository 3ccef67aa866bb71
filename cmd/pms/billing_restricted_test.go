package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
	grpctransport "github.com/pms/pms/transport/grpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestBillingRestrictedJourney runs `pms all` on PostgreSQL and walks issue 17's billing and
// confidentiality through the gateway: a billing clerk reads a patient's invoices; an admin
// restricts the patient; the restriction reaches billing with the PATIENT_UPDATED event
// (polled with a deadline) and billing's own routes answer 403 restricted — the invoice list
// by patient, the invoice and the account by id — and leave the invoice out of an unfiltered
// list, for the clerk and for a clinician; billing's gRPC reads refuse the same way; the
// clerk may still issue the invoice; a clinician breaks the glass and reads the invoices and
// the account through the patient service, and the patient's access log shows the emergency
// reads.
func TestBillingRestrictedJourney(t *testing.T) {
	a, stop := startPMS(t, allAddrs, allArgs(t, dbtest.PostgresDatabase(t), "--rate-limit=0")...)
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	}()
	gw := "http://" + a["gateway/http"]
	admin := allToken(t, a)
	for email, role := range map[string]string{"clerk@example.org": authz.RoleBilling, "doc@example.org": authz.RoleClinician} {
		if resp, b := call(t, "POST", gw+"/api/users", admin, `{"email":"`+email+`","password":"`+matrixPassword+`","role":"`+role+`"}`); resp.StatusCode != 201 {
			t.Fatalf("create %s: %d %s", email, resp.StatusCode, b)
		}
	}
	login := func(email string) string {
		resp, b := call(t, "POST", gw+"/auth/login", "", `{"email":"`+email+`","password":"`+matrixPassword+`"}`)
		var p struct{ Token string }
		if resp.StatusCode != 200 || json.Unmarshal(b, &p) != nil {
			t.Fatalf("login %s: %d %s", email, resp.StatusCode, b)
		}
		return p.Token
	}
	clerk, doc := login("clerk@example.org"), login("doc@example.org")

	resp, b := call(t, "POST", gw+"/api/patients", doc, `{"name":"Ada Byron","email":"ada@example.org","address":"1 Main St","dateOfBirth":"1915-12-10"}`)
	var p patient.Patient
	if resp.StatusCode != 201 || json.Unmarshal(b, &p) != nil {
		t.Fatalf("create patient: %d %s", resp.StatusCode, b)
	}
	waitAccount(t, http.DefaultClient, gw+"/api/billing", clerk, p.ID) // opened after the 201 (docs/billing.md)
	resp, b = call(t, "POST", gw+"/api/billing/invoices", clerk,
		`{"patientId":"`+p.ID+`","currency":"USD","dueDate":"2026-12-31","lines":[{"description":"Consultation","quantity":1,"unitAmount":5000}]}`)
	var inv billing.Invoice
	if resp.StatusCode != 201 || json.Unmarshal(b, &inv) != nil {
		t.Fatalf("create invoice: %d %s", resp.StatusCode, b)
	}
	byPatient := gw + "/api/billing/invoices?patientId=" + p.ID
	if resp, b := call(t, "GET", byPatient, clerk, ""); resp.StatusCode != 200 || !strings.Contains(string(b), inv.ID) {
		t.Fatalf("invoices before the restriction: %d %s", resp.StatusCode, b)
	}
	resp, b = call(t, "GET", gw+"/api/billing/accounts?patientId="+p.ID, clerk, "")
	var accounts []billing.Account
	if resp.StatusCode != 200 || json.Unmarshal(b, &accounts) != nil || len(accounts) != 1 {
		t.Fatalf("account before the restriction: %d %s", resp.StatusCode, b)
	}

	if resp, b := call(t, "PUT", gw+"/api/patients/"+p.ID+"/confidentiality", admin, `{"confidentiality":"restricted"}`); resp.StatusCode != 200 {
		t.Fatalf("restrict: %d %s", resp.StatusCode, b)
	}
	// The restriction reaches billing with the event: poll until billing refuses.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, b = call(t, "GET", byPatient, clerk, "")
		if resp.StatusCode == 403 {
			break
		}
		if resp.StatusCode != 200 || time.Now().After(deadline) {
			t.Fatalf("invoices by patient after the restriction: %d %s", resp.StatusCode, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var eb struct{ Error, Message string }
	if json.Unmarshal(b, &eb) != nil || eb.Error != string(errs.Restricted) ||
		!strings.Contains(eb.Message, "/api/patients/{id}/billing-account") || !strings.Contains(eb.Message, "/api/patients/{id}/invoices") {
		t.Fatalf("refusal body %s", b)
	}
	for _, who := range []string{clerk, doc} {
		for _, path := range []string{"/api/billing/invoices/" + inv.ID, "/api/billing/accounts/" + accounts[0].ID,
			"/api/billing/accounts?patientId=" + p.ID, "/api/billing/invoices?patientId=" + p.ID} {
			if resp, b := call(t, "GET", gw+path, who, ""); resp.StatusCode != 403 || !strings.Contains(string(b), `"restricted"`) {
				t.Errorf("GET %s: %d %s; want 403 restricted", path, resp.StatusCode, b)
			}
		}
		if resp, b := call(t, "GET", gw+"/api/billing/invoices?limit=500", who, ""); resp.StatusCode != 200 || strings.Contains(string(b), inv.ID) {
			t.Errorf("unfiltered list: %d %s; want 200 without the restricted patient's invoice", resp.StatusCode, b)
		}
	}

	// gRPC straight to billing (no gateway): refused the same way.
	conn, err := grpc.NewClient(a["billing/grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	bc := grpctransport.NewBillingClient(conn)
	ctx, cancel := context.WithTimeout(authz.WithToken(context.Background(), clerk), 30*time.Second)
	defer cancel()
	if _, err := bc.GetInvoice(ctx, inv.ID); errs.KindOf(err) != errs.Restricted {
		t.Fatalf("gRPC GetInvoice: %v; want restricted", err)
	}
	if _, err := bc.ListInvoices(ctx, billing.InvoiceQuery{PatientID: p.ID}); errs.KindOf(err) != errs.Restricted {
		t.Fatalf("gRPC ListInvoices: %v; want restricted", err)
	}

	// Writes stay with the billing role.
	if resp, b := call(t, "POST", gw+"/api/billing/invoices/"+inv.ID+"/issue", clerk, ""); resp.StatusCode != 200 {
		t.Fatalf("issue: %d %s", resp.StatusCode, b)
	}

	// Through the patient service: refused without a grant, served under one.
	pp := gw + "/api/patients/" + p.ID
	if resp, b := call(t, "GET", pp+"/invoices", doc, ""); resp.StatusCode != 403 || !strings.Contains(string(b), "break-glass") {
		t.Fatalf("patient invoices without a grant: %d %s", resp.StatusCode, b)
	}
	if resp, b := call(t, "POST", pp+"/break-glass", doc, `{"reason":"billing dispute during admission"}`); resp.StatusCode != 201 {
		t.Fatalf("break-glass: %d %s", resp.StatusCode, b)
	}
	if resp, b := call(t, "GET", pp+"/invoices", doc, ""); resp.StatusCode != 200 || !strings.Contains(string(b), inv.ID) {
		t.Fatalf("patient invoices under the grant: %d %s", resp.StatusCode, b)
	}
	if resp, b := call(t, "GET", pp+"/billing-account", doc, ""); resp.StatusCode != 200 || !strings.Contains(string(b), accounts[0].ID) {
		t.Fatalf("patient billing account under the grant: %d %s", resp.StatusCode, b)
	}
	// The billing role holds no grant and cannot get one: still refused everywhere.
	if resp, b := call(t, "GET", byPatient, clerk, ""); resp.StatusCode != 403 {
		t.Fatalf("clerk after the clinician's grant: %d %s", resp.StatusCode, b)
	}

	resp, b = call(t, "GET", pp+"/access-log", admin, "")
	var log []struct {
		Actor, Role, Action, Outcome string
		Emergency                    bool
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &log) != nil {
		t.Fatalf("access log: %d %s", resp.StatusCode, b)
	}
	var invoices, account bool
	for _, e := range log {
		if e.Role == authz.RoleClinician && e.Emergency && e.Outcome == "success" {
			invoices = invoices || e.Action == patient.ActionInvoices
			account = account || e.Action == patient.ActionBillingAccount
		}
	}
	if !invoices || !account {
		t.Fatalf("the access log lacks the emergency billing reads: %s", b)
	}
}
