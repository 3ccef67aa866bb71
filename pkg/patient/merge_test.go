package patient_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
	"google.golang.org/protobuf/proto"
)

const mergeReason = "same person, registered twice at the front desk"

// TestMergeAndUnmerge, on PostgreSQL and SQLite: a merge needs a reason of 10 characters and
// two live, distinct records; the duplicate then reads with mergedInto, refuses every write
// (409 naming the survivor), leaves searches, frees its email and identifiers for others,
// keeps its history (a "merged" version) and is audited on both records; its event is
// PATIENT_MERGED naming the survivor, with no reason in it. Unmerge reverses it (an
// "unmerged" version, PATIENT_UNMERGED, live again in searches) and is refused when the
// record is not merged, or when something newer forbids it: an identifier taken meanwhile,
// the survivor merged into another record.
func TestMergeAndUnmerge(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		w := audit.NewWriter(d, audit.Options{Table: patient.AuditTable})
		t.Cleanup(func() { _ = w.Close(context.Background()) })
		store := patient.NewStore(d)
		s := patient.NewService(store, w, patient.Options{})
		doc := ctxAs("doc-1")
		const natID = "https://example.org/national-id"

		survivor, err := s.Create(doc, patient.CreateRequest{Name: "Ada Lovelace", Email: "ada@example.org", Address: "1 Main St", DateOfBirth: "1915-12-10"})
		if err != nil {
			t.Fatal(err)
		}
		dup, err := s.Create(doc, patient.CreateRequest{Name: "Ada Lovelase", Email: "ada.l@example.org", Address: "1 Main Street", DateOfBirth: "1915-12-10",
			Identifiers: []patient.Identifier{{System: natID, Value: "NAT-1"}}})
		if err != nil {
			t.Fatal(err)
		}
		other, err := s.Create(doc, req(3))
		if err != nil {
			t.Fatal(err)
		}

		// Refusals before anything changes.
		for _, c := range []struct {
			r    patient.MergeRequest
			kind errs.Kind
		}{
			{patient.MergeRequest{SurvivorID: survivor.ID, DuplicateID: dup.ID}, errs.InvalidArgument},                       // no reason
			{patient.MergeRequest{SurvivorID: survivor.ID, DuplicateID: dup.ID, Reason: " dup      "}, errs.InvalidArgument}, // too short
			{patient.MergeRequest{SurvivorID: survivor.ID, DuplicateID: "x", Reason: mergeReason}, errs.InvalidArgument},
			{patient.MergeRequest{SurvivorID: survivor.ID, DuplicateID: survivor.ID, Reason: mergeReason}, errs.Conflict},
			{patient.MergeRequest{SurvivorID: survivor.ID, DuplicateID: "9c1a4f0e-0000-4000-8000-000000000001", Reason: mergeReason}, errs.NotFound},
		} {
			_, err := s.Merge(doc, c.r)
			wantKind(t, err, c.kind)
		}
		rec, err := s.Merge(doc, patient.MergeRequest{SurvivorID: survivor.ID, DuplicateID: dup.ID, Reason: "  " + mergeReason + " "})
		if err != nil {
			t.Fatal(err)
		}
		if rec.SurvivorID != survivor.ID || rec.DuplicateID != dup.ID || rec.Reason != mergeReason || rec.MergedBy != "doc-1" || rec.UnmergedAt != nil {
			t.Fatalf("merge record %+v", rec)
		}
		got, err := s.Get(doc, dup.ID)
		if err != nil || got.MergedInto != survivor.ID || got.Name != dup.Name {
			t.Fatalf("get merged: %+v %v", got, err)
		}
		if p, err := s.Get(doc, survivor.ID); err != nil || p.MergedInto != "" {
			t.Fatalf("get survivor: %+v %v", p, err)
		}
		for name, err := range map[string]error{
			"update": func() error {
				_, err := s.Update(doc, patient.UpdateRequest{ID: dup.ID, Name: "X", Email: "x@example.org", Address: "x", DateOfBirth: "1915-12-10"})
				return err
			}(),
			"delete": s.Delete(doc, patient.DeleteRequest{ID: dup.ID}),
			"erase": func() error {
				_, err := s.Erase(ctxRole("admin-1", authz.RoleAdmin), patient.EraseRequest{ID: dup.ID, Reason: "GDPR Art. 17 request"})
				return err
			}(),
			"merge again": func() error {
				_, err := s.Merge(doc, patient.MergeRequest{SurvivorID: other.ID, DuplicateID: dup.ID, Reason: mergeReason})
				return err
			}(),
			"merge into it": func() error {
				_, err := s.Merge(doc, patient.MergeRequest{SurvivorID: dup.ID, DuplicateID: other.ID, Reason: mergeReason})
				return err
			}(),
		} {
			if errs.KindOf(err) != errs.Conflict {
				t.Errorf("%s of a merged record: %v, want a conflict", name, err)
			}
			if name == "update" || name == "delete" {
				if s2, ok := patient.MergedInto(err); !ok || s2 != survivor.ID {
					t.Errorf("%s: %v does not name the survivor", name, err)
				}
			}
		}
		page, err := s.List(doc, patient.ListQuery{Q: "lovela"})
		if err != nil || len(page.Patients) != 1 || page.Patients[0].ID != survivor.ID || page.Total != 1 {
			t.Fatalf("search after merge: %+v %v", page, err)
		}
		// Its email and identifier no longer block anyone.
		taker, err := s.Create(doc, patient.CreateRequest{Name: "Someone Else", Email: "ada.l@example.org", Address: "2 Main St", DateOfBirth: "1990-01-01",
			Identifiers: []patient.Identifier{{System: natID, Value: "NAT-1"}}})
		if err != nil {
			t.Fatalf("a merged record still blocks its email or identifier: %v", err)
		}
		hist, err := s.History(doc, dup.ID)
		if err != nil || len(hist) != 2 || hist[1].Change != patient.ChangeMerged || hist[1].Patient.MergedInto != survivor.ID || hist[1].Version != 2 {
			t.Fatalf("history after merge: %+v %v", hist, err)
		}
		if ms, err := store.Merges(ctx, survivor.ID); err != nil || len(ms) != 1 || ms[0].ID != rec.ID {
			t.Fatalf("merges of the survivor: %+v %v", ms, err)
		}

		// The event: PATIENT_MERGED, keyed by the duplicate, naming the survivor; no reason.
		evs := patientEvents(t, d, dup.ID)
		last := evs[len(evs)-1]
		if last.GetEventType() != patient.EventMerged || last.GetPatient().GetMergedInto() != survivor.ID || last.GetVersion() != 2 {
			t.Fatalf("merge event %v", last)
		}
		raw, _ := proto.Marshal(last)
		if strings.Contains(string(raw), "front desk") {
			t.Error("the merge event carries the reason")
		}
		// Audited on both records.
		if err := w.Settle(ctx); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{dup.ID, survivor.ID} {
			entries, err := s.Audit(ctxRole("admin-1", authz.RoleAdmin), patient.AuditQuery{PatientID: id})
			if err != nil {
				t.Fatal(err)
			}
			if !hasAction(entries, patient.ActionMerge, "success") {
				t.Errorf("no successful merge entry on %s: %+v", id, entries)
			}
		}

		// Unmerge: refused while the identifier is taken, then allowed once it is free.
		if _, err := s.Unmerge(doc, patient.UnmergeRequest{ID: survivor.ID, Reason: "not merged at all"}); err != patient.ErrNotMerged && errs.KindOf(err) != errs.Conflict {
			t.Fatalf("unmerge of a record that is not merged: %v", err)
		}
		_, err = s.Unmerge(doc, patient.UnmergeRequest{ID: dup.ID, Reason: "two different people after all"})
		wantKind(t, err, errs.Conflict)
		if err := s.Delete(doc, patient.DeleteRequest{ID: taker.ID}); err != nil {
			t.Fatal(err)
		}
		undone, err := s.Unmerge(doc, patient.UnmergeRequest{ID: dup.ID, Reason: "two different people after all"})
		if err != nil {
			t.Fatal(err)
		}
		if undone.ID != rec.ID || undone.UnmergedAt == nil || undone.UnmergeReason != "two different people after all" {
			t.Fatalf("unmerge record %+v", undone)
		}
		got, err = s.Get(doc, dup.ID)
		if err != nil || got.MergedInto != "" || got.Version != 3 || len(got.Identifiers) != 2 {
			t.Fatalf("get after unmerge: %+v %v", got, err)
		}
		if page, err := s.List(doc, patient.ListQuery{Q: "lovela"}); err != nil || page.Total != 2 {
			t.Fatalf("search after unmerge: %+v %v", page, err)
		}
		if _, err := s.Create(doc, patient.CreateRequest{Name: "Third", Email: "t@example.org", Address: "x", DateOfBirth: "1990-01-01",
			Identifiers: []patient.Identifier{{System: natID, Value: "NAT-1"}}}); errs.KindOf(err) != errs.Conflict {
			t.Fatalf("the unmerged record's identifier is not live again: %v", err)
		}
		evs = patientEvents(t, d, dup.ID)
		if last := evs[len(evs)-1]; last.GetEventType() != patient.EventUnmerged || last.GetPatient().GetMergedInto() != "" || last.GetVersion() != 3 {
			t.Fatalf("unmerge event %v", last)
		}
		hist, _ = s.History(doc, dup.ID)
		if len(hist) != 3 || hist[2].Change != patient.ChangeUnmerged {
			t.Fatalf("history after unmerge: %+v", hist)
		}
		if _, err := s.Update(doc, patient.UpdateRequest{ID: dup.ID, Name: "Ada L.", Email: dup.Email, Address: dup.Address, DateOfBirth: dup.DateOfBirth}); err != nil {
			t.Fatalf("update after unmerge: %v", err)
		}

		// Something newer forbids an unmerge: the survivor merged into another record since.
		if _, err := s.Merge(doc, patient.MergeRequest{SurvivorID: survivor.ID, DuplicateID: dup.ID, Reason: mergeReason}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Merge(doc, patient.MergeRequest{SurvivorID: other.ID, DuplicateID: survivor.ID, Reason: mergeReason}); err != nil {
			t.Fatal(err)
		}
		_, err = s.Unmerge(doc, patient.UnmergeRequest{ID: dup.ID, Reason: "two different people after all"})
		if err != patient.ErrUnmergeForbidden && !strings.Contains(errs.As(err).Message, "no longer") {
			t.Fatalf("unmerge under a merged survivor: %v", err)
		}
		// Undoing the newer merge first makes it possible again.
		if _, err := s.Unmerge(doc, patient.UnmergeRequest{ID: survivor.ID, Reason: "undo the newer merge first"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Unmerge(doc, patient.UnmergeRequest{ID: dup.ID, Reason: "two different people after all"}); err != nil {
			t.Fatal(err)
		}
		// A survivor deleted since does not forbid it: the duplicate comes back in use.
		if _, err := s.Merge(doc, patient.MergeRequest{SurvivorID: other.ID, DuplicateID: dup.ID, Reason: mergeReason}); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(doc, patient.DeleteRequest{ID: other.ID}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Unmerge(doc, patient.UnmergeRequest{ID: dup.ID, Reason: "the survivor was deleted by mistake"}); err != nil {
			t.Fatalf("unmerge under a deleted survivor: %v", err)
		}
		if p, err := s.Get(doc, dup.ID); err != nil || p.MergedInto != "" {
			t.Fatalf("after unmerge under a deleted survivor: %+v %v", p, err)
		}
		// Erasing a record blanks the free-text reasons of the merges it took part in.
		if _, err := s.Erase(ctxRole("admin-1", authz.RoleAdmin), patient.EraseRequest{ID: other.ID, Reason: "GDPR Art. 17 request"}); err != nil {
			t.Fatal(err)
		}
		ms, err := store.Merges(ctx, other.ID)
		if err != nil || len(ms) == 0 {
			t.Fatalf("merges of the erased record: %+v %v", ms, err)
		}
		for _, m := range ms {
			if m.Reason != "" || m.UnmergeReason != "" {
				t.Errorf("an erased record's merge keeps its reasons: %+v", m)
			}
		}
		if report, err := s.VerifyAudit(ctx); err != nil || !report.OK {
			t.Fatalf("audit chain: %+v %v", report, err)
		}
	})
}

func hasAction(entries []patient.AuditEntry, action, outcome string) bool {
	for _, e := range entries {
		if e.Action == action && e.Outcome == outcome {
			return true
		}
	}
	return false
}

// TestMergeInAccessLog: with the disclosure hook wired as cmd/pms wires it, a merge and an
// unmerge show in the duplicate's access log, the merge in the survivor's too, each with how
// the request arrived, and the merge leaves nothing pending.
func TestMergeInAccessLog(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		s := newDisclosingService(t, d)
		doc := observe.WithTransport(ctxAs("doc-7"), "http")
		a, err := s.Create(doc, req(1))
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.Create(doc, req(2))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Merge(doc, patient.MergeRequest{SurvivorID: a.ID, DuplicateID: b.ID, Reason: mergeReason}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Unmerge(doc, patient.UnmergeRequest{ID: b.ID, Reason: "two different people after all"}); err != nil {
			t.Fatal(err)
		}
		var pending, merges int
		if err := d.GetContext(context.Background(), &pending, `SELECT count(*) FROM audit_pending`); err != nil || pending != 0 {
			t.Fatalf("entries still pending = %d, %v", pending, err)
		}
		if err := d.GetContext(context.Background(), &merges, `SELECT count(*) FROM audit_log WHERE action = 'merge'`); err != nil || merges != 2 {
			t.Fatalf("merge entries = %d, %v; want one per record", merges, err)
		}
		log, err := s.AccessLog(ctxRole("priv-1", authz.RolePrivacy), patient.AccessLogQuery{PatientID: b.ID})
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, r := range log.Records {
			actions = append(actions, r.Action+"/"+r.Transport)
		}
		if strings.Join(actions, ",") != "unmerge/http,merge/http,create/http" {
			t.Fatalf("access log of the duplicate: %v", actions)
		}
		// The survivor's entry is the merge's second (audit.WithPendingAlso).
		log, err = s.AccessLog(ctxRole("priv-1", authz.RolePrivacy), patient.AccessLogQuery{PatientID: a.ID})
		if err != nil {
			t.Fatal(err)
		}
		actions = nil
		for _, r := range log.Records {
			actions = append(actions, r.Action+"/"+r.Transport)
		}
		if strings.Join(actions, ",") != "merge/http,create/http" {
			t.Fatalf("access log of the survivor: %v", actions)
		}
	})
}

// TestConcurrentOppositeMerges: merging A into B and B into A at once (two clinicians on the
// same pair) ends with exactly one merge; the other is refused 409, and nobody is merged
// into a merged record.
func TestConcurrentOppositeMerges(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		s := newService(t, d)
		doc := ctxAs("doc-1")
		for round := range 5 {
			a, err := s.Create(doc, req(100+2*round))
			if err != nil {
				t.Fatal(err)
			}
			b, err := s.Create(doc, req(101+2*round))
			if err != nil {
				t.Fatal(err)
			}
			errsOf := make([]error, 2)
			done := make(chan struct{})
			for i, pair := range [][2]string{{a.ID, b.ID}, {b.ID, a.ID}} {
				go func() {
					defer func() { done <- struct{}{} }()
					_, errsOf[i] = s.Merge(ctxAs("doc-1"), patient.MergeRequest{SurvivorID: pair[0], DuplicateID: pair[1], Reason: mergeReason})
				}()
			}
			<-done
			<-done
			ok := 0
			for _, err := range errsOf {
				if err == nil {
					ok++
				} else if errs.KindOf(err) != errs.Conflict {
					t.Fatalf("round %d: %v", round, err)
				}
			}
			if ok != 1 {
				t.Fatalf("round %d: %d merges succeeded (%v)", round, ok, errsOf)
			}
			pa, _ := s.Get(doc, a.ID)
			pb, _ := s.Get(doc, b.ID)
			if (pa.MergedInto == "") == (pb.MergedInto == "") {
				t.Fatalf("round %d: a merged into %q, b into %q", round, pa.MergedInto, pb.MergedInto)
			}
		}
	})
}
