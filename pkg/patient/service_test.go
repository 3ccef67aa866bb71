package patient_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
)

// newService builds the real service over d with its real audit writer.
func newService(t *testing.T, d *db.DB) patient.Service {
	t.Helper()
	w := audit.NewWriter(d, audit.Options{Table: patient.AuditTable})
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	return patient.NewService(patient.NewStore(d), w, patient.Options{})
}

func ctxAs(subject string) context.Context {
	ctx := authz.WithPrincipal(context.Background(), authz.Principal{Subject: subject, Role: "clinician"})
	return observe.WithRequestID(ctx, observe.NewRequestID())
}

func req(i int) patient.CreateRequest {
	return patient.CreateRequest{Name: fmt.Sprintf("Patient %d", i), Email: fmt.Sprintf("p%d@example.org", i),
		Address: "1 Main St", DateOfBirth: "1980-01-02"}
}

func wantKind(t *testing.T, err error, k errs.Kind) {
	t.Helper()
	if errs.KindOf(err) != k {
		t.Fatalf("err = %v (%s), want %s", err, errs.KindOf(err), k)
	}
}

func TestLifecycle(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		s := newService(t, d)
		ctx := ctxAs("u1")
		p, err := s.Create(ctx, patient.CreateRequest{Name: "  Ada Lovelace ", Email: "Ada@Example.org", Address: "1 Main St", DateOfBirth: "1815-12-10"})
		wantKind(t, err, errs.InvalidArgument) // before 1900
		p, err = s.Create(ctx, patient.CreateRequest{Name: "  Ada Lovelace ", Email: "Ada@Example.org", Address: "1 Main St", DateOfBirth: "1915-12-10"})
		if err != nil {
			t.Fatal(err)
		}
		if p.Name != "Ada Lovelace" || p.Version != 1 || !patient.ValidMRN(p.MRN) || p.RegisteredDate != time.Now().UTC().Format("2006-01-02") {
			t.Fatalf("created %+v", p)
		}
		got, err := s.Get(ctx, strings.ToUpper(p.ID))
		if err != nil || !reflect.DeepEqual(got, p) {
			t.Fatalf("get = %+v, %v; want %+v", got, err, p)
		}
		_, err = s.Create(ctx, patient.CreateRequest{Name: "Other", Email: "ADA@example.ORG", Address: "x", DateOfBirth: "1990-01-01"})
		if !errors.Is(err, patient.ErrEmailTaken) {
			t.Fatalf("duplicate email (case-insensitive): %v", err)
		}
		// Stale If-Match changes nothing.
		up := patient.UpdateRequest{ID: p.ID, Name: "Ada King", Email: p.Email, Address: p.Address, DateOfBirth: p.DateOfBirth, IfMatch: 7}
		_, err = s.Update(ctx, up)
		if !errors.Is(err, patient.ErrVersionMismatch) {
			t.Fatalf("stale if-match: %v", err)
		}
		up.IfMatch = 1
		mrn, reg := p.MRN, p.RegisteredDate
		up.Unchanged = patient.ReadOnlyFields{ID: &p.ID, MRN: &mrn, RegisteredDate: &reg}
		p2, err := s.Update(ctx, up)
		if err != nil || p2.Version != 2 || p2.Name != "Ada King" || p2.MRN != p.MRN {
			t.Fatalf("update = %+v, %v", p2, err)
		}
		// A changed read-only field is refused and changes nothing.
		other := "0000000000"
		up.IfMatch, up.Name, up.Unchanged = 0, "Changed", patient.ReadOnlyFields{MRN: &other}
		_, err = s.Update(ctx, up)
		wantKind(t, err, errs.InvalidArgument)
		if cur, _ := s.Get(ctx, p.ID); cur.Version != 2 || cur.Name != "Ada King" {
			t.Fatalf("rejected update changed the record: %+v", cur)
		}
		// An update that changes nothing makes no new version.
		same := patient.UpdateRequest{ID: p.ID, Name: p2.Name, Email: p2.Email, Address: p2.Address, DateOfBirth: p2.DateOfBirth}
		if p3, err := s.Update(ctx, same); err != nil || p3.Version != 2 {
			t.Fatalf("no-op update = %+v, %v", p3, err)
		}
		if err := s.Delete(ctx, patient.DeleteRequest{ID: p.ID, IfMatch: 1}); !errors.Is(err, patient.ErrVersionMismatch) {
			t.Fatalf("stale delete: %v", err)
		}
		if err := s.Delete(ctx, patient.DeleteRequest{ID: p.ID}); err != nil {
			t.Fatal(err)
		}
		_, err = s.Get(ctx, p.ID)
		if !errors.Is(err, patient.ErrGone) {
			t.Fatalf("get deleted: %v", err)
		}
		wantKind(t, s.Delete(ctx, patient.DeleteRequest{ID: p.ID}), errs.Gone)
		_, err = s.Update(ctx, same)
		wantKind(t, err, errs.Gone)
		_, err = s.Get(ctx, "6ba7b810-9dad-11d1-80b4-00c04fd430c8")
		wantKind(t, err, errs.NotFound)
		_, err = s.Get(ctx, "not-a-uuid")
		wantKind(t, err, errs.InvalidArgument)
		// The email is free again once the record is deleted.
		if _, err := s.Create(ctx, patient.CreateRequest{Name: "New Ada", Email: "ada@example.org", Address: "x", DateOfBirth: "1990-01-01"}); err != nil {
			t.Fatalf("email not freed by delete: %v", err)
		}
		h, err := s.History(ctx, p.ID)
		if err != nil || len(h) != 3 {
			t.Fatalf("history = %d versions, %v", len(h), err)
		}
		for i, want := range []string{patient.ChangeCreated, patient.ChangeUpdated, patient.ChangeDeleted} {
			if h[i].Change != want || h[i].Version != int64(i+1) || h[i].ChangedBy != "u1" || h[i].Patient.MRN != p.MRN {
				t.Fatalf("history[%d] = %+v", i, h[i])
			}
		}
		if h[0].Patient.Name != "Ada Lovelace" || h[1].Patient.Name != "Ada King" {
			t.Fatalf("history does not keep old values: %+v", h)
		}
		entries, err := s.Audit(ctx, patient.AuditQuery{PatientID: p.ID})
		if err != nil {
			t.Fatal(err)
		}
		actions := map[string]int{}
		for _, e := range entries {
			if e.Actor != "u1" || e.RequestID == "" {
				t.Fatalf("audit entry %+v", e)
			}
			actions[e.Action+"/"+e.Outcome]++
		}
		for _, want := range []string{"create/success", "read/success", "update/success", "update/rejected", "delete/rejected", "delete/success", "read/rejected", "history/success"} {
			if actions[want] == 0 {
				t.Fatalf("audit has no %s: %v", want, actions)
			}
		}
		if r, err := audit.Verify(context.Background(), d, patient.AuditTable); err != nil || !r.OK {
			t.Fatalf("audit chain: %+v %v", r, err)
		}
	})
}

func TestIdempotentCreate(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		s := newService(t, d)
		ctx := ctxAs("u1")
		r := req(1)
		r.IdempotencyKey = "key-1"
		var wg sync.WaitGroup
		ids := make([]string, 20)
		errsSeen := make([]error, 20)
		for i := range 20 {
			wg.Go(func() {
				p, err := s.Create(ctx, r)
				ids[i], errsSeen[i] = p.ID, err
			})
		}
		wg.Wait()
		for i := range 20 {
			if errsSeen[i] != nil || ids[i] != ids[0] {
				t.Fatalf("request %d: id %s err %v; want %s", i, ids[i], errsSeen[i], ids[0])
			}
		}
		page, err := s.List(ctx, patient.ListQuery{})
		if err != nil || page.Total != 1 {
			t.Fatalf("20 creates with one key made %d patients (%v)", page.Total, err)
		}
		r.Name = "Someone Else"
		_, err = s.Create(ctx, r)
		if !errors.Is(err, patient.ErrIdempotencyConflict) {
			t.Fatalf("same key, other body: %v", err)
		}
		// Keys are per caller: another user's identical key is a new request.
		r2 := req(2)
		r2.IdempotencyKey = "key-1"
		if p, err := s.Create(ctxAs("u2"), r2); err != nil || p.ID == ids[0] {
			t.Fatalf("other caller's key: %+v %v", p, err)
		}
	})
}

func TestMRNUniqueUnderConcurrentCreates(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		s := newService(t, d)
		const n = 200
		mrns := make([]string, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				p, err := s.Create(ctxAs("u1"), req(i))
				if err != nil {
					t.Errorf("create %d: %v", i, err)
				}
				mrns[i] = p.MRN
			})
		}
		wg.Wait()
		seen := map[string]bool{}
		for _, m := range mrns {
			if !patient.ValidMRN(m) || seen[m] {
				t.Fatalf("MRN %q invalid or duplicated", m)
			}
			seen[m] = true
		}
	})
}

func TestPagingWhileInserting(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		s := newService(t, d)
		ctx := ctxAs("u1")
		const initial = 120
		want := map[string]bool{}
		for i := range initial {
			p, err := s.Create(ctx, req(i))
			if err != nil {
				t.Fatal(err)
			}
			want[p.ID] = true
		}
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { // concurrent inserts while the walk goes on
			defer close(done)
			for i := initial; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.Create(ctx, req(i)); err != nil {
					t.Errorf("concurrent create: %v", err)
					return
				}
			}
		}()
		seen := map[string]bool{}
		tok := ""
		pages := 0
		for {
			page, err := s.List(ctx, patient.ListQuery{Limit: 7, PageToken: tok})
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, p := range page.Patients {
				if seen[p.ID] {
					t.Fatalf("patient %s on two pages", p.ID)
				}
				seen[p.ID] = true
			}
			if page.NextPageToken == "" {
				break
			}
			tok = page.NextPageToken
		}
		close(stop)
		<-done
		for id := range want {
			if !seen[id] {
				t.Fatalf("patient %s missing from the walk (%d pages)", id, pages)
			}
		}
	})
}

func TestSearch(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		s := newService(t, d)
		ctx := ctxAs("u1")
		mk := func(name, email, dob string) patient.Patient {
			p, err := s.Create(ctx, patient.CreateRequest{Name: name, Email: email, Address: "x", DateOfBirth: dob})
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
		a := mk("Grace Hopper", "grace@navy.mil", "1906-12-09")
		mk("Alan Turing", "alan@bletchley.uk", "1912-06-23")
		mk("100% Real_Name", "pct@example.org", "1950-01-01")
		c := mk("Gracie Allen", "gracie@example.org", "1906-12-09")
		count := func(q patient.ListQuery) int64 {
			t.Helper()
			page, err := s.List(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(page.Patients)) != page.Total {
				t.Fatalf("page of %d, total %d", len(page.Patients), page.Total)
			}
			return page.Total
		}
		for _, tc := range []struct {
			q    patient.ListQuery
			want int64
		}{
			{patient.ListQuery{}, 4},
			{patient.ListQuery{Q: "GRAC"}, 2},
			{patient.ListQuery{Q: "navy"}, 1},
			{patient.ListQuery{Q: "0% r"}, 1}, // wildcards match literally
			{patient.ListQuery{Q: "l_n"}, 1},  // not Alan
			{patient.ListQuery{Q: "%"}, 0},    // a short q is a prefix: no name starts with %
			{patient.ListQuery{Q: "gr"}, 2},
			{patient.ListQuery{Q: "ra"}, 0},
			{patient.ListQuery{Q: "' OR 1=1 --"}, 0},
			{patient.ListQuery{Email: "GRACE@navy.mil"}, 1},
			{patient.ListQuery{DateOfBirth: "1906-12-09"}, 2},
			{patient.ListQuery{Q: "grac", DateOfBirth: "1906-12-09", Email: "gracie@example.org"}, 1},
		} {
			if got := count(tc.q); got != tc.want {
				t.Fatalf("%+v: %d matches, want %d", tc.q, got, tc.want)
			}
		}
		if err := s.Delete(ctx, patient.DeleteRequest{ID: a.ID}); err != nil {
			t.Fatal(err)
		}
		if got := count(patient.ListQuery{Q: "grac"}); got != 1 {
			t.Fatalf("deleted patient still found: %d", got)
		}
		_ = c
		for _, bad := range []patient.ListQuery{{Limit: -1}, {Limit: 501}, {PageToken: "garbage"}, {DateOfBirth: "1906-13-01"}, {Q: strings.Repeat("q", 201)}} {
			_, err := s.List(ctx, bad)
			wantKind(t, err, errs.InvalidArgument)
		}
	})
}

func TestConcurrentReadsAuditedInOneChain(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		s := newService(t, d)
		p, err := s.Create(ctxAs("writer"), req(1))
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Go(func() {
				if _, err := s.Get(ctxAs(fmt.Sprintf("reader-%d", i)), p.ID); err != nil {
					t.Errorf("read %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		entries, err := s.Audit(ctxAs("admin"), patient.AuditQuery{PatientID: p.ID, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		readers := map[string]bool{}
		for _, e := range entries {
			if e.Action == patient.ActionRead && e.Outcome == audit.OutcomeSuccess {
				readers[e.Actor] = true
			}
		}
		if len(readers) != 50 {
			t.Fatalf("%d of 50 reads audited", len(readers))
		}
		r, err := audit.Verify(context.Background(), d, patient.AuditTable)
		if err != nil || !r.OK || r.Rows != 52 { // the create, 50 reads, the audited audit read
			t.Fatalf("chain after concurrent reads: %+v, %v", r, err)
		}
		// Tampering with one row is detected (on PostgreSQL only once the insert-only
		// triggers are disabled, which takes the table's owner).
		if d.Dialect == db.Postgres {
			if _, err := d.Exec(`ALTER TABLE audit_log DISABLE TRIGGER USER`); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := d.ExecContext(context.Background(), d.Rebind(`UPDATE audit_log SET actor = ? WHERE seq = ?`), "someone-else", 10); err != nil {
			t.Fatal(err)
		}
		r, err = audit.Verify(context.Background(), d, patient.AuditTable)
		if err != nil || r.OK || r.FirstBadSeq != 10 {
			t.Fatalf("tampered chain not detected: %+v, %v", r, err)
		}
	})
}
