package patient_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/idempotency"
	"github.com/pms/pms/pkg/platform/shred"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
	"google.golang.org/protobuf/proto"
)

// erasePHI is a patient's data that must not survive the erasure anywhere.
var erasePHI = []string{"Zebedee Quillfeather", "Zebedee Q. Quillfeather", "zq-erase@example.org", "77 Lantern Row", "1961-07-23",
	"Quillfeather-Erase", "Zebedee-Given", "+1 555 010 4477", "ERASE-ID-8842"}

// patientEvents decodes the PatientEvents of id in the outbox (the relay does not run here).
func patientEvents(t *testing.T, d *db.DB, id string) []*eventsv1.PatientEvent {
	t.Helper()
	var values [][]byte
	if err := d.Select(&values, d.Rebind(`SELECT value FROM outbox WHERE topic = ? AND msg_key = ? ORDER BY id`), patient.TopicEvents, id); err != nil {
		t.Fatal(err)
	}
	out := make([]*eventsv1.PatientEvent, len(values))
	for i, v := range values {
		out[i] = &eventsv1.PatientEvent{}
		if err := proto.Unmarshal(v, out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestErase: a patient's events carry their PHI sealed (the holder of the keys opens them);
// erasure needs a soft delete first and a reason; it leaves a tombstone (id, MRN) and its
// erase record, and afterwards no column of any table holds the PHI (versions, the stored
// command reply), the events no longer open (the data key is destroyed), a PATIENT_ERASED
// event says so with ids only, reads answer 410, a second erasure 409, and the audit chain,
// which names the erasure, still verifies.
func TestErase(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		w := audit.NewWriter(d, audit.Options{Table: patient.AuditTable})
		t.Cleanup(func() { _ = w.Close(context.Background()) })
		store := patient.NewStore(d)
		s := patient.NewService(store, w, patient.Options{})
		doc, admin := ctxAs("doc-1"), ctxRole("admin-1", authz.RoleAdmin)

		p, err := s.Create(doc, patient.CreateRequest{Name: erasePHI[0], Email: erasePHI[2], Address: erasePHI[3], DateOfBirth: erasePHI[4],
			Family: erasePHI[5], Given: []string{erasePHI[6]}, Phone: erasePHI[7], Gender: "other",
			Identifiers: []patient.Identifier{{System: "https://example.org/national-id", Value: erasePHI[8]}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Update(doc, patient.UpdateRequest{ID: p.ID, Name: erasePHI[1], Email: erasePHI[2], Address: erasePHI[3], DateOfBirth: erasePHI[4]}); err != nil {
			t.Fatal(err)
		}
		// A Kafka command's stored reply that mentions the patient (as an older release kept them).
		if err := idempotency.NewReplies(d).Put(ctx, "doc-1/CreatePatient", "k-1", idempotency.Reply{RequestHash: "h", Status: 201,
			Body: []byte(`{"id":"` + p.ID + `","name":"` + erasePHI[0] + `"}`)}); err != nil {
			t.Fatal(err)
		}

		evs := patientEvents(t, d, p.ID)
		if len(evs) != 2 {
			t.Fatalf("%d events, want 2", len(evs))
		}
		for _, ev := range evs {
			raw, _ := proto.Marshal(ev)
			for _, phi := range erasePHI {
				if strings.Contains(string(raw), phi) {
					t.Fatalf("an event carries %q in clear", phi)
				}
			}
			r := ev.GetPatient()
			if !shred.IsSealed(ev.GetName()) || !shred.IsSealed(r.GetDateOfBirth()) || ev.GetPatientId() != p.ID || r.GetMrn() != p.MRN ||
				!shred.IsSealed(r.GetFamily()) || len(r.GetGiven()) != 1 || !shred.IsSealed(r.GetGiven()[0]) || !shred.IsSealed(r.GetGender()) ||
				!shred.IsSealed(r.GetPhone()) || len(r.GetIdentifiers()) != 1 || !shred.IsSealed(r.GetIdentifiers()[0].GetValue()) ||
				r.GetIdentifiers()[0].GetSystem() != "https://example.org/national-id" {
				t.Fatalf("event not sealed as documented: %v", ev)
			}
			opened, err := store.OpenEvent(ctx, ev)
			o := opened.GetPatient()
			if err != nil || o.GetAddress() != erasePHI[3] || opened.GetEmail() != erasePHI[2] || o.GetFamily() != erasePHI[5] ||
				o.GetGiven()[0] != erasePHI[6] || o.GetPhone() != erasePHI[7] || o.GetGender() != "other" || o.GetIdentifiers()[0].GetValue() != erasePHI[8] {
				t.Fatalf("open before erasure: %v %v", opened, err)
			}
		}
		// A sealed value is bound to its field and patient: moved elsewhere it does not open.
		swapped := proto.Clone(evs[0]).(*eventsv1.PatientEvent)
		swapped.Email = swapped.Name
		if _, err := store.OpenEvent(ctx, swapped); err == nil {
			t.Fatal("a sealed name opened as an e-mail")
		}

		_, err = s.Erase(admin, patient.EraseRequest{ID: p.ID, Reason: "GDPR Art. 17 request #4411"})
		wantKind(t, err, errs.Conflict) // not deleted yet
		if err := s.Delete(doc, patient.DeleteRequest{ID: p.ID}); err != nil {
			t.Fatal(err)
		}
		for _, bad := range []patient.EraseRequest{{ID: p.ID}, {ID: p.ID, Reason: "because"}, {ID: "nope", Reason: "GDPR Art. 17 request"},
			{ID: p.ID, Reason: "GDPR\x00Art. 17 request"}, {ID: p.ID, Reason: strings.Repeat("x", 501)}} {
			_, err := s.Erase(admin, bad)
			wantKind(t, err, errs.InvalidArgument)
		}
		_, err = s.Erase(admin, patient.EraseRequest{ID: "6c1f6f6e-0000-4000-8000-000000000000", Reason: "GDPR Art. 17 request"})
		wantKind(t, err, errs.NotFound)

		e, err := s.Erase(admin, patient.EraseRequest{ID: p.ID, Reason: "  GDPR Art. 17 request #4411 "})
		if err != nil || e.PatientID != p.ID || e.MRN != p.MRN || e.ErasedBy != "admin-1" || e.Reason != "GDPR Art. 17 request #4411" || e.ErasedAt.IsZero() {
			t.Fatalf("erase: %+v %v", e, err)
		}
		_, err = s.Erase(admin, patient.EraseRequest{ID: p.ID, Reason: "GDPR Art. 17 request #4411"})
		wantKind(t, err, errs.Conflict)
		if _, err := s.Get(doc, p.ID); !errors.Is(err, patient.ErrGone) {
			t.Errorf("get after erasure: %v", err)
		}
		if _, err := s.History(doc, p.ID); errs.KindOf(err) != errs.Gone || !strings.Contains(err.Error(), "erased") {
			t.Errorf("history after erasure: %v", err)
		}

		if hits, err := dbtest.FindText(ctx, d, erasePHI...); err != nil || len(hits) > 0 {
			t.Fatalf("PHI left after erasure: %v %v", hits, err)
		}
		var mrn string
		if err := d.Get(&mrn, d.Rebind(`SELECT mrn FROM patients WHERE id = ?`), p.ID); err != nil || mrn != p.MRN {
			t.Fatalf("tombstone: %q %v", mrn, err)
		}
		evs = patientEvents(t, d, p.ID)
		last := evs[len(evs)-1]
		if last.GetEventType() != patient.EventErased || last.GetName() != "" || last.GetPatient().GetMrn() != p.MRN || last.GetPatient().GetDeletedAt() == nil {
			t.Fatalf("last event: %v", last)
		}
		for _, ev := range evs[:len(evs)-1] {
			if _, err := store.OpenEvent(ctx, ev); !errors.Is(err, shred.ErrShredded) {
				t.Fatalf("an event of the erased patient still opens: %v", err)
			}
		}

		var outcomes []string // every attempt on the patient is audited, refusals included
		if err := d.Select(&outcomes, d.Rebind(`SELECT outcome FROM `+patient.AuditTable+` WHERE subject_id = ? AND action = ? ORDER BY seq`), p.ID, patient.ActionErase); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(strings.Join(outcomes, ","), "success"); n != 1 || len(outcomes) < 3 {
			t.Errorf("erase audit outcomes: %v", outcomes)
		}
		rep, err := s.VerifyAudit(admin)
		if err != nil || !rep.OK {
			t.Fatalf("chain after erasure: %+v %v", rep, err)
		}
	})
}
