package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pms/pms/pkg/analytics"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/broker/brokertest"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/shred"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
	"google.golang.org/protobuf/proto"
)

// TestErasureEverywhere runs `pms all` on PostgreSQL and erases a patient as a privacy
// officer would prove it (issue 17, item 7): the patient is registered, changed, billed and
// deleted through the gateway; the events on Kafka carry the PHI sealed, never in clear;
// erasing a live record is refused (409), a deleted one erased (200), twice refused (409).
// Afterwards no column of any table of any service holds the name, e-mail, address or date
// of birth; no record of any topic (events, audit, replies, dead letters) holds them in clear
// and the patient's data key, the only key that opened its sealed fields, is gone; a
// PATIENT_ERASED event says so; analytics' figures are what they were; the record and its
// history answer 410; and every audit chain still verifies.
func TestErasureEverywhere(t *testing.T) {
	url := dbtest.PostgresDatabase(t)
	a, _ := startPMS(t, allAddrs, allArgs(t, url)...)
	gw := "http://" + a["gateway/http"]
	admin := allToken(t, a)
	phi := []string{"Ottoline Varga-Pemberton", "ottoline.vp@example.org", "9 Quince Alley", "11 Quince Alley", "1948-03-17"}

	resp, b := call(t, "POST", gw+"/api/patients", admin, `{"name":"`+phi[0]+`","email":"`+phi[1]+`","address":"`+phi[2]+`","dateOfBirth":"`+phi[4]+`"}`)
	var p patient.Patient
	if resp.StatusCode != 201 || json.Unmarshal(b, &p) != nil {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	pp := gw + "/api/patients/" + p.ID
	if resp, b := call(t, "PUT", pp, admin, `{"name":"`+phi[0]+`","email":"`+phi[1]+`","address":"`+phi[3]+`","dateOfBirth":"`+phi[4]+`"}`); resp.StatusCode != 200 {
		t.Fatalf("update: %d %s", resp.StatusCode, b)
	}
	if resp, b := call(t, "POST", gw+"/api/billing/invoices", admin, `{"patientId":"`+p.ID+`","currency":"EUR","dueDate":"2030-01-01","lines":[{"description":"Consultation","quantity":1,"unitAmount":4200}]}`); resp.StatusCode != 201 {
		t.Fatalf("invoice: %d %s", resp.StatusCode, b)
	}
	if resp, b := call(t, "POST", pp+"/erase", admin, `{"reason":"GDPR Art. 17 request #981"}`); resp.StatusCode != 409 {
		t.Fatalf("erase a live record: %d %s", resp.StatusCode, b)
	}
	if resp, b := call(t, "DELETE", pp, admin, ""); resp.StatusCode != 204 {
		t.Fatalf("delete: %d %s", resp.StatusCode, b)
	}
	analyticsBase := "http://" + a["analytics/http"]
	before := pollSummary(t, analyticsBase, admin, func(s analytics.Summary) bool { return s.Patients.Deleted == 1 })

	// Before the erasure the events hold the PHI sealed: present, but never in clear.
	evs := brokertest.ReadAll(t, a["broker/kafka"], patient.TopicEvents)
	if len(evs) < 3 {
		t.Fatalf("%d patient events, want 3", len(evs))
	}
	for _, m := range evs {
		var ev eventsv1.PatientEvent
		if err := proto.Unmarshal(m.Value, &ev); err != nil || !shred.IsSealed(ev.Name) || !shred.IsSealed(ev.GetPatient().GetAddress()) || ev.GetPatient().GetMrn() != p.MRN {
			t.Fatalf("event before erasure: %v %v", &ev, err)
		}
	}

	resp, b = call(t, "POST", pp+"/erase", admin, `{"reason":"GDPR Art. 17 request #981"}`)
	var e patient.Erasure
	if resp.StatusCode != 200 || json.Unmarshal(b, &e) != nil || e.PatientID != p.ID || e.MRN != p.MRN || e.Reason != "GDPR Art. 17 request #981" {
		t.Fatalf("erase: %d %s", resp.StatusCode, b)
	}
	if resp, b := call(t, "POST", pp+"/erase", admin, `{"reason":"GDPR Art. 17 request #981"}`); resp.StatusCode != 409 {
		t.Fatalf("erase twice: %d %s", resp.StatusCode, b)
	}
	for _, path := range []string{pp, pp + "/history"} {
		if resp, b := call(t, "GET", path, admin, ""); resp.StatusCode != 410 {
			t.Fatalf("GET %s after erasure: %d %s", path, resp.StatusCode, b)
		}
	}

	// The PATIENT_ERASED event reaches the topic, and analytics folds it without moving a figure.
	deadline := time.Now().Add(60 * time.Second)
	var erased *eventsv1.PatientEvent
	for erased == nil {
		for _, m := range brokertest.ReadAll(t, a["broker/kafka"], patient.TopicEvents) {
			var ev eventsv1.PatientEvent
			if proto.Unmarshal(m.Value, &ev) == nil && ev.EventType == patient.EventErased {
				erased = &ev
			}
		}
		if erased == nil && time.Now().After(deadline) {
			t.Fatal("no PATIENT_ERASED event on the patient topic")
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
	}
	if erased.PatientId != p.ID || erased.Name != "" || erased.Email != "" || erased.GetPatient().GetMrn() != p.MRN {
		t.Fatalf("PATIENT_ERASED: %v", erased)
	}
	after := pollSummary(t, analyticsBase, admin, func(s analytics.Summary) bool { return s.Events.Patient == before.Events.Patient+1 })
	if after.Patients != before.Patients || after.Invoices != before.Invoices {
		t.Fatalf("figures moved: before %+v %+v, after %+v %+v", before.Patients, before.Invoices, after.Patients, after.Invoices)
	}

	// No table of any service holds the PHI.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := db.Open(ctx, url, "patient")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	hits, err := dbtest.FindTextEverywhere(ctx, d, phi...)
	if err != nil || len(hits) > 0 {
		t.Fatalf("PHI left in the databases: %v %v", hits, err)
	}
	var keys int
	if err := d.GetContext(ctx, &keys, `SELECT count(*) FROM patient.data_keys WHERE subject = $1`, p.ID); err != nil || keys != 0 {
		t.Fatalf("the erased patient's data key: %d %v", keys, err)
	}
	// No record of any topic holds it in clear.
	topics := []string{"patient", "billing", "audit", "auth", "patient.commands", "billing.commands", "patient.dlq", "patient.commands.dlq",
		"billing.commands.dlq", "patient.replies", "billing.replies", "operator.replies"}
	var records int
	for _, topic := range topics {
		for _, m := range brokertest.ReadAll(t, a["broker/kafka"], topic) {
			records++
			raw := string(m.Key) + string(m.Value)
			for _, h := range m.Headers {
				raw += string(h.Key) + string(h.Value)
			}
			for _, s := range phi {
				if strings.Contains(strings.ToLower(raw), strings.ToLower(s)) {
					t.Fatalf("%s/%d@%d holds %q in clear", topic, m.Partition, m.Offset, s)
				}
			}
		}
	}
	t.Logf("FIGURES erasure: %d records on %d topics scanned, 0 hits; %d patient events sealed before", records, len(topics), len(evs))

	// Every audit chain still verifies.
	for _, path := range []string{"/api/audit/verify", "/api/billing/audit/verify", "/api/users/audit/verify"} {
		resp, b := call(t, "GET", gw+path, admin, "")
		var r audit.Report
		if resp.StatusCode != 200 || json.Unmarshal(b, &r) != nil || !r.OK || r.Rows == 0 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
	}
}
