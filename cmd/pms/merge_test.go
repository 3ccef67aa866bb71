package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pms/pms/pkg/platform/polltest"

	"github.com/pms/pms/pkg/analytics"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/authz"
	grpctransport "github.com/pms/pms/transport/grpc"
	"github.com/pms/pms/transport/wire"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// noRedirect is a client that shows a redirect instead of following it.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// TestMergeJourney runs `pms all` on PostgreSQL and walks issue 19's merge through the
// gateway as a clinician: register two records of one person, an invoice for the duplicate,
// merge (refused without a reason, into itself, or by an analyst); the duplicate's GET answers
// 308 to the survivor under /api, its PUT and DELETE 409 naming the survivor, its FHIR read
// an inactive Patient replaced-by the survivor (valid R4); billing shows the invoice under the
// survivor and analytics one live patient fewer (polled with a deadline); unmerge puts the
// invoice back and the count back, and the history keeps every step.
func TestMergeJourney(t *testing.T) {
	fhir, tok, a := fhirWorld(t)
	gw := "http://" + a["gateway/http"]
	doc, admin := tok["clinician"], tok["admin"]

	register := func(body string) patient.Patient {
		t.Helper()
		resp, b := call(t, "POST", gw+"/api/patients", doc, body)
		var p patient.Patient
		if resp.StatusCode != 201 || json.Unmarshal(b, &p) != nil {
			t.Fatalf("register: %d %s", resp.StatusCode, b)
		}
		return p
	}
	survivor := register(`{"name":"Mary Seacole","email":"mary@example.org","address":"14 Kingston Rd","dateOfBirth":"1935-11-23"}`)
	dup := register(`{"name":"Mary Secole","email":"m.seacole@example.org","address":"14 Kingston Road","dateOfBirth":"1935-11-23"}`)
	sp, dp := gw+"/api/patients/"+survivor.ID, gw+"/api/patients/"+dup.ID

	// An invoice for the duplicate (its account is opened at registration or from the topic).
	var inv billing.Invoice
	polltest.Until(t, 60*time.Second, "the duplicate's invoice", func() bool {
		resp, b := call(t, "POST", gw+"/api/billing/invoices", admin,
			`{"patientId":"`+dup.ID+`","currency":"EUR","dueDate":"2030-01-01","lines":[{"description":"Visit","quantity":1,"unitAmount":4200}]}`)
		return resp.StatusCode == 201 && json.Unmarshal(b, &inv) == nil
	})
	invoicesOf := func(pid string) []billing.Invoice {
		resp, b := call(t, "GET", gw+"/api/billing/invoices?patientId="+pid, admin, "")
		var out []billing.Invoice
		if resp.StatusCode != 200 || json.Unmarshal(b, &out) != nil {
			t.Fatalf("invoices of %s: %d %s", pid, resp.StatusCode, b)
		}
		return out
	}
	summary := "http://" + a["gateway/http"] + "/api/analytics"
	before := pollSummary(t, summary, admin, func(s analytics.Summary) bool { return s.Patients.Live == 2 })

	// Refusals.
	for _, c := range []struct {
		token, body string
		status      int
	}{
		{doc, `{"duplicateId":"` + dup.ID + `"}`, 400},
		{doc, `{"duplicateId":"` + dup.ID + `","reason":"dup"}`, 400},
		{doc, `{"duplicateId":"` + survivor.ID + `","reason":"same person, registered twice"}`, 409},
		{doc, `{"duplicateId":"9c1a4f0e-0000-4000-8000-000000000001","reason":"same person, registered twice"}`, 404},
		{tok["analyst"], `{"duplicateId":"` + dup.ID + `","reason":"same person, registered twice"}`, 403},
		{tok["billing"], `{"duplicateId":"` + dup.ID + `","reason":"same person, registered twice"}`, 403},
	} {
		if resp, b := call(t, "POST", sp+"/merge", c.token, c.body); resp.StatusCode != c.status {
			t.Fatalf("merge %s: %d %s, want %d", c.body, resp.StatusCode, b, c.status)
		}
	}

	resp, b := call(t, "POST", sp+"/merge", doc, `{"duplicateId":"`+dup.ID+`","reason":"same person, registered twice"}`)
	var rec patient.MergeRecord
	if resp.StatusCode != 200 || json.Unmarshal(b, &rec) != nil || rec.SurvivorID != survivor.ID || rec.DuplicateID != dup.ID {
		t.Fatalf("merge: %d %s", resp.StatusCode, b)
	}

	// Reads redirect, writes conflict, FHIR shows the link.
	resp, b = callWith(t, noRedirect, "GET", dp, doc, "")
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != "/api/patients/"+survivor.ID || strings.Contains(string(b), "Secole") {
		t.Fatalf("GET merged: %d Location %q %s", resp.StatusCode, resp.Header.Get("Location"), b)
	}
	if resp, b := call(t, "GET", dp, doc, ""); resp.StatusCode != 200 || !strings.Contains(string(b), survivor.ID) {
		t.Fatalf("GET merged, following the redirect: %d %s", resp.StatusCode, b)
	}
	for _, m := range []struct{ method, body string }{
		{"PUT", `{"name":"Mary S","email":"m.seacole@example.org","address":"x","dateOfBirth":"1935-11-23"}`},
		{"DELETE", ""},
	} {
		resp, b := call(t, m.method, dp, doc, m.body)
		var e wire.ErrorBody
		if resp.StatusCode != 409 || json.Unmarshal(b, &e) != nil || e.Fields[patient.MergedField] != survivor.ID {
			t.Fatalf("%s merged: %d %s", m.method, resp.StatusCode, b)
		}
	}
	f := fhir.do("GET", "/Patient/"+dup.ID, doc, "").want(t, "FHIR read of the merged record", 200)
	links, _ := f.res["link"].([]any)
	if f.res["active"] != false || len(links) != 1 || !strings.Contains(string(f.body), `"reference":"Patient/`+survivor.ID+`"`) ||
		!strings.Contains(string(f.body), `"type":"replaced-by"`) {
		t.Fatalf("FHIR merged Patient: %s", f.body)
	}
	// gRPC, straight to the patient service: the record with its survivor.
	conn, err := grpc.NewClient(a["patient/grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(authz.WithToken(context.Background(), doc), 30*time.Second)
	defer cancel()
	if got, err := grpctransport.NewPatientClient(conn).Get(ctx, dup.ID); err != nil || got.MergedInto != survivor.ID {
		t.Fatalf("gRPC read of the merged record: %+v %v", got, err)
	}
	// link is read-only: a client cannot merge by writing it.
	withLink := strings.Replace(fhirPatientJSON(survivor.ID, "Mary Seacole", "mary@example.org", "1935-11-23"), `{"resourceType":"Patient",`,
		`{"resourceType":"Patient","link":[{"other":{"reference":"Patient/`+dup.ID+`"},"type":"replaces"}],`, 1)
	fhir.do("PUT", "/Patient/"+survivor.ID, doc, withLink).want(t, "update with a link", 422)
	fhir.do("PUT", "/Patient/"+dup.ID, doc, fhirPatientJSON(dup.ID, "Mary Secole", "m.seacole@example.org", "1935-11-23")).want(t, "update of the merged record", 409)
	resp, b = call(t, "GET", gw+"/api/patients?q=seacole", doc, "")
	if resp.StatusCode != 200 || strings.Contains(string(b), dup.ID) {
		t.Fatalf("search after merge shows the merged record: %d %s", resp.StatusCode, b)
	}

	// Billing moves the invoice; analytics counts one live patient fewer.
	polltest.Until(t, 60*time.Second, "the invoice under the survivor", func() bool {
		got := invoicesOf(survivor.ID)
		return len(got) == 1 && got[0].ID == inv.ID
	})
	if got := invoicesOf(dup.ID); len(got) != 0 {
		t.Fatalf("the duplicate still has %+v", got)
	}
	after := pollSummary(t, summary, admin, func(s analytics.Summary) bool { return s.Patients.Live == before.Patients.Live-1 })
	if after.Patients.Merged != 1 || after.Patients.Registered != before.Patients.Registered {
		t.Fatalf("figures after merge %+v (before %+v)", after.Patients, before.Patients)
	}

	// Unmerge from the merged record: invoice and count come back.
	if resp, b := call(t, "POST", dp+"/unmerge", doc, `{"reason":"x"}`); resp.StatusCode != 400 {
		t.Fatalf("unmerge without a real reason: %d %s", resp.StatusCode, b)
	}
	if resp, b := call(t, "POST", sp+"/unmerge", doc, `{"reason":"not merged, nothing to undo"}`); resp.StatusCode != 409 {
		t.Fatalf("unmerge of the survivor: %d %s", resp.StatusCode, b)
	}
	resp, b = call(t, "POST", dp+"/unmerge", doc, `{"reason":"two different people after all"}`)
	if resp.StatusCode != 200 || json.Unmarshal(b, &rec) != nil || rec.UnmergedAt == nil {
		t.Fatalf("unmerge: %d %s", resp.StatusCode, b)
	}
	if resp, b := callWith(t, noRedirect, "GET", dp, doc, ""); resp.StatusCode != 200 || !strings.Contains(string(b), "Secole") {
		t.Fatalf("GET after unmerge: %d %s", resp.StatusCode, b)
	}
	polltest.Until(t, 60*time.Second, "the invoice back under the duplicate", func() bool {
		got := invoicesOf(dup.ID)
		return len(got) == 1 && got[0].ID == inv.ID
	})
	pollSummary(t, summary, admin, func(s analytics.Summary) bool {
		return s.Patients.Live == before.Patients.Live && s.Patients.Merged == 0
	})

	resp, b = call(t, "GET", dp+"/history", doc, "")
	var hist []patient.Version
	if resp.StatusCode != 200 || json.Unmarshal(b, &hist) != nil || len(hist) != 3 ||
		hist[1].Change != patient.ChangeMerged || hist[1].Patient.MergedInto != survivor.ID || hist[2].Change != patient.ChangeUnmerged {
		t.Fatalf("history: %d %s", resp.StatusCode, b)
	}
	resp, b = call(t, "GET", gw+"/api/audit?patientId="+dup.ID, admin, "")
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"action":"merge"`) || !strings.Contains(string(b), `"action":"unmerge"`) {
		t.Fatalf("audit of the duplicate: %d %s", resp.StatusCode, b)
	}
}
