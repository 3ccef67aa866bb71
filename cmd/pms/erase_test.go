package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pms/pms/pkg/analytics"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/broker/brokertest"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/shred"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
	httptransport "github.com/pms/pms/transport/http"
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
	waitAccount(t, http.DefaultClient, gw+"/api/billing", admin, p.ID)
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
	for _, path := range []string{"/api/audit/verify", "/api/billing/audit/verify", "/api/users/audit/verify", "/api/analytics/audit/verify"} {
		resp, b := call(t, "GET", gw+path, admin, "")
		var r audit.Report
		if resp.StatusCode != 200 || json.Unmarshal(b, &r) != nil || !r.OK || r.Rows == 0 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
	}
}

// TestErasureSurvivesRestore (issue 23, section 3, "Erasure"): `pms patient` on SQLite; a
// patient is registered and deleted; the database file is copied (the backup); the patient
// is erased; the old file is put back (the restore) and the service started on it: the
// erasure is applied again from the journal kept outside the database — the record answers
// 410, its history "erased", no column holds its data and its data key is gone.
func TestErasureSurvivesRestore(t *testing.T) {
	dir := t.TempDir()
	dbFile := filepath.Join(dir, "patient.db")
	brokerAddr := brokertest.Start(t).Addr()
	start := func() (patient.Set, func() error) {
		a, stop := startPMS(t, patientAddrs, "patient", jwksArg(), "--http-addr=127.0.0.1:0", "--grpc-addr=127.0.0.1:0",
			"--admin-addr=127.0.0.1:0", "--data-dir="+dir, "--log-format=logfmt", // the default database: <data-dir>/patient.db
			"--log-level=error", "--billing-addr=", "--kafka-brokers="+brokerAddr)
		c, err := httptransport.NewPatientClient("http://"+a["patient/http"], httptransport.ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return c, stop
	}
	files := func() []string { m, _ := filepath.Glob(dbFile + "*"); return m }
	copyFiles := func(to string) {
		if err := os.MkdirAll(to, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, f := range files() {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(to, filepath.Base(f)), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	doc, admin := authed(t, "doc-1", authz.RoleClinician), authed(t, "admin-1", authz.RoleAdmin)
	phi := []string{"Peregrine Oduya-Lindqvist", "peregrine.ol@example.org", "4 Heron Quay", "1971-11-05"}

	c, stop := start()
	p, err := c.Create(doc, patient.CreateRequest{Name: phi[0], Email: phi[1], Address: phi[2], DateOfBirth: phi[3]})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(doc, patient.DeleteRequest{ID: p.ID}); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "backup")
	copyFiles(backup)

	c, stop = start()
	if _, err := c.Erase(admin, patient.EraseRequest{ID: p.ID, Reason: "GDPR Art. 17 request #1207"}); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// The restore: the files of the backup replace the database's.
	for _, f := range files() {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	restored, _ := filepath.Glob(filepath.Join(backup, "*"))
	for _, f := range restored {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	c, stop = start()
	if _, err := c.History(doc, p.ID); errs.KindOf(err) != errs.Gone || !strings.Contains(err.Error(), "erased") {
		t.Fatalf("history after the restore: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, err := db.Open(ctx, "sqlite://"+dbFile, "patient")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if hits, err := dbtest.FindText(ctx, d, phi...); err != nil || len(hits) > 0 {
		t.Fatalf("PHI back after the restore: %v %v", hits, err)
	}
	var keys int
	if err := d.GetContext(ctx, &keys, `SELECT count(*) FROM data_keys WHERE subject = ?`, p.ID); err != nil || keys != 0 {
		t.Fatalf("the data key is back: %d %v", keys, err)
	}
	var by string
	if err := d.GetContext(ctx, &by, `SELECT erased_by FROM patient_erasures WHERE patient_id = ?`, p.ID); err != nil || by != patient.ErasureActor {
		t.Fatalf("erase record after the restore: %q %v", by, err)
	}
}
