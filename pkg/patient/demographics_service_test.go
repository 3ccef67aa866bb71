package patient_test

import (
	"context"
	"reflect"
	"sync"
	"testing"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
)

const nationalID = "https://example.org/national-id"

func ptr[T any](v T) *T { return &v }

// TestDemographics: the new fields round-trip through create, read, update, history and
// search; a PUT that omits them keeps them; the display name follows the structured one when
// not given.
func TestDemographics(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		s := newService(t, d)
		ctx := ctxAs("u1")
		p, err := s.Create(ctx, patient.CreateRequest{Family: "Lovelace", Given: []string{"Ada", "Augusta"}, Gender: "female",
			Phone: "+44 20 7946 0958", Identifiers: []patient.Identifier{{System: nationalID, Value: "AB123"}},
			Address: "1 Main St", DateOfBirth: "1915-12-10"})
		if err != nil {
			t.Fatal(err)
		}
		wantIDs := []patient.Identifier{{System: patient.SystemMRN, Value: p.MRN}, {System: nationalID, Value: "AB123"}}
		if p.Name != "Ada Augusta Lovelace" || p.Email != "" || p.Gender != "female" || p.Phone != "+44 20 7946 0958" ||
			!reflect.DeepEqual(p.Identifiers, wantIDs) {
			t.Fatalf("created %+v", p)
		}
		got, err := s.Get(ctx, p.ID)
		if err != nil || !reflect.DeepEqual(got, p) {
			t.Fatalf("get %+v %v, want %+v", got, err, p)
		}
		// A PUT as today's clients send it: name, email, address, dateOfBirth only.
		up, err := s.Update(ctx, patient.UpdateRequest{ID: p.ID, Name: "Ada King", Email: "ada@example.org", Address: "2 Main St", DateOfBirth: "1915-12-10"})
		if err != nil {
			t.Fatal(err)
		}
		if up.Name != "Ada King" || up.Family != "Lovelace" || !reflect.DeepEqual(up.Given, []string{"Ada", "Augusta"}) || up.Gender != "female" ||
			up.Phone != p.Phone || !reflect.DeepEqual(up.Identifiers, wantIDs) {
			t.Fatalf("PUT without the new fields lost some: %+v", up)
		}
		// Empty values clear; a blank name is derived from the structured one.
		up, err = s.Update(ctx, patient.UpdateRequest{ID: p.ID, Family: ptr("King"), Given: ptr([]string{"Ada"}), Phone: ptr(""),
			Identifiers: ptr([]patient.Identifier{}), Email: "ada@example.org", Address: "2 Main St", DateOfBirth: "1915-12-10"})
		if err != nil {
			t.Fatal(err)
		}
		if up.Name != "Ada King" || up.Phone != "" || !reflect.DeepEqual(up.Identifiers, wantIDs[:1]) || up.Gender != "female" {
			t.Fatalf("update %+v", up)
		}
		h, err := s.History(ctx, p.ID)
		if err != nil || len(h) != 3 || !reflect.DeepEqual(h[0].Patient.Identifiers, wantIDs) || h[0].Patient.Phone != p.Phone || h[2].Patient.Family != "King" {
			t.Fatalf("history %+v %v", h, err)
		}
		// Only a name-less, structure-less record is refused; name alone works as before.
		_, err = s.Create(ctx, patient.CreateRequest{Address: "x", DateOfBirth: "1990-01-01"})
		wantKind(t, err, errs.InvalidArgument)
		_, err = s.Update(ctx, patient.UpdateRequest{ID: p.ID, Address: "x", DateOfBirth: "1990-01-01"})
		wantKind(t, err, errs.InvalidArgument)
		q, err := s.Create(ctx, patient.CreateRequest{Name: "Grace Hopper", Address: "x", DateOfBirth: "1906-12-09"})
		if err != nil || q.Family != "" || len(q.Given) != 0 || q.Email != "" {
			t.Fatalf("name-only create %+v %v", q, err)
		}
		// Searching by the MRN identifier.
		page, err := s.List(ctx, patient.ListQuery{Identifier: patient.SystemMRN + "|" + q.MRN})
		if err != nil || len(page.Patients) != 1 || page.Patients[0].ID != q.ID {
			t.Fatalf("search by MRN identifier %+v %v", page, err)
		}
	})
}

// TestIdentifierUniqueAmongLive: a pair held by a live patient is 409; deleting the holder
// frees it; identifier=system|value finds the live holder only.
func TestIdentifierUniqueAmongLive(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		s := newService(t, d)
		ctx := ctxAs("u1")
		ids := []patient.Identifier{{System: nationalID, Value: "X1"}}
		a, err := s.Create(ctx, patient.CreateRequest{Name: "A", Identifiers: ids, Address: "x", DateOfBirth: "1990-01-01"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Create(ctx, patient.CreateRequest{Name: "B", Identifiers: ids, Address: "x", DateOfBirth: "1990-01-01"})
		if !errorsIs(err, patient.ErrIdentifierTaken) {
			t.Fatalf("second live holder: %v", err)
		}
		b, err := s.Create(ctx, patient.CreateRequest{Name: "B", Address: "x", DateOfBirth: "1990-01-01"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Update(ctx, patient.UpdateRequest{ID: b.ID, Name: "B", Identifiers: &ids, Address: "x", DateOfBirth: "1990-01-01"})
		if !errorsIs(err, patient.ErrIdentifierTaken) {
			t.Fatalf("update to a held pair: %v", err)
		}
		page, err := s.List(ctx, patient.ListQuery{Identifier: nationalID + "|X1"})
		if err != nil || len(page.Patients) != 1 || page.Patients[0].ID != a.ID {
			t.Fatalf("search %+v %v", page, err)
		}
		if err := s.Delete(ctx, patient.DeleteRequest{ID: a.ID}); err != nil {
			t.Fatal(err)
		}
		if page, err = s.List(ctx, patient.ListQuery{Identifier: nationalID + "|X1"}); err != nil || len(page.Patients) != 0 {
			t.Fatalf("search after delete %+v %v", page, err)
		}
		if _, err = s.Update(ctx, patient.UpdateRequest{ID: b.ID, Name: "B", Identifiers: &ids, Address: "x", DateOfBirth: "1990-01-01"}); err != nil {
			t.Fatalf("a deleted holder frees the pair: %v", err)
		}
		_, err = s.List(ctx, patient.ListQuery{Identifier: "no-bar"})
		wantKind(t, err, errs.InvalidArgument)
	})
}

// TestSharedEmail: a shared email is 409 without a confirmation, 409 with one that leaves a
// holder out, 201 with one naming every holder, and the confirmation is audited by id.
func TestSharedEmail(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		s := newService(t, d)
		ctx := ctxAs("u1")
		mk := func(name string, confirm ...string) (patient.Patient, error) {
			return s.Create(ctx, patient.CreateRequest{Name: name, Email: "family@example.org", Address: "x", DateOfBirth: "1990-01-01",
				ConfirmNotDuplicate: confirm})
		}
		a, err := mk("Parent")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := mk("Child"); !errorsIs(err, patient.ErrEmailTaken) {
			t.Fatalf("unconfirmed: %v", err)
		}
		b, err := mk("Child", a.ID)
		if err != nil {
			t.Fatalf("confirmed: %v", err)
		}
		if _, err := mk("Other child", a.ID); !errorsIs(err, patient.ErrEmailTaken) {
			t.Fatalf("partial confirmation: %v", err)
		}
		if _, err := mk("Other child", a.ID, b.ID); err != nil {
			t.Fatalf("full confirmation: %v", err)
		}
		entries, err := s.Audit(auditCtx(), patient.AuditQuery{PatientID: b.ID})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range entries {
			if e.Action == patient.ActionConfirmNotDuplicate && e.Outcome == "success" {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("b confirmed once as a different person, audit shows %d: %+v", n, entries)
		}
	})
}

// TestSameEmailRace: concurrent creates with the same email and no confirmation: exactly one
// succeeds (advisory lock on PostgreSQL, the single writer on SQLite).
func TestSameEmailRace(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		s := newService(t, d)
		const n = 8
		var wg sync.WaitGroup
		errsC := make(chan error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.Create(ctxAs("u1"), patient.CreateRequest{Name: "Same", Email: "race@example.org", Address: "x", DateOfBirth: "1990-01-01"})
				errsC <- err
			}()
		}
		wg.Wait()
		close(errsC)
		ok := 0
		for err := range errsC {
			switch {
			case err == nil:
				ok++
			case errs.KindOf(err) != errs.Conflict && errs.KindOf(err) != errs.Unavailable:
				t.Errorf("unexpected error %v", err)
			}
		}
		if ok != 1 {
			t.Fatalf("%d creates succeeded, want exactly 1", ok)
		}
	})
}

func errorsIs(err, target error) bool {
	return errs.KindOf(err) == errs.KindOf(target) && err != nil && err.Error() == target.Error()
}

func auditCtx() context.Context { return ctxRole("auditor", authz.RoleAdmin) }
