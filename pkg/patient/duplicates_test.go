package patient_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
)

// newDuplicateService is newDisclosingService under a duplicate policy.
func newDuplicateService(t testing.TB, d *db.DB, policy string) patient.Service {
	t.Helper()
	disc := patient.NewDisclosures(d)
	w := audit.NewWriter(d, audit.Options{Table: patient.AuditTable, AfterBatch: disc.Hook(nil)})
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	return patient.NewService(patient.NewStore(d), w, patient.Options{Disclosures: disc, DuplicatePolicy: policy})
}

// ada is a registration; adaAgain is the same woman registered again with a nickname, her
// day and month swapped and the phone in national format.
var (
	ada = patient.CreateRequest{Family: "Lovelace", Given: []string{"Augusta", "Ada"}, Gender: "female", Phone: "+44 20 7946 0958",
		Email: "ada@example.org", Address: "12 St James's Square, London", DateOfBirth: "1915-12-10"}
	adaAgain = patient.CreateRequest{Family: "Lovelace", Given: []string{"Ada"}, Gender: "female", Phone: "020 7946 0958",
		Address: "12 St James's Square, London", DateOfBirth: "1915-10-12"}
	stranger = patient.CreateRequest{Family: "Hopper", Given: []string{"Grace"}, Address: "1 Navy Rd", DateOfBirth: "1906-12-09"}
)

// candidatesOf returns the candidates a possible_duplicate error carries.
func candidatesOf(t *testing.T, err error) []patient.Candidate {
	t.Helper()
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind != errs.PossibleDuplicate || !errors.Is(err, patient.ErrPossibleDuplicate) {
		t.Fatalf("err = %v, want possible_duplicate", err)
	}
	var cs []patient.Candidate
	if err := json.Unmarshal(e.Candidates, &cs); err != nil {
		t.Fatalf("candidates %s: %v", e.Candidates, err)
	}
	return cs
}

func count(t *testing.T, d *db.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := d.GetContext(context.Background(), &n, d.Rebind(query), args...); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDuplicateCheck is issue 19 item 2 at the service: under warn a registration of the
// same person succeeds and counts its possible duplicates; with the strict check it is
// refused with the scored candidates, each candidate disclosed in the access log; confirming
// them registers it and audits each confirmation; a different person passes; block refuses
// without being asked; off checks nothing.
func TestDuplicateCheck(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		s := newDuplicateService(t, d, patient.DuplicatePolicyWarn)
		ctx := observe.WithTransport(ctxAs("clin1"), "http")
		first, err := s.Create(ctx, ada)
		if err != nil || first.PossibleDuplicates != 0 {
			t.Fatalf("first: %+v %v", first, err)
		}
		warned, err := s.Create(ctx, adaAgain)
		if err != nil || warned.PossibleDuplicates != 1 {
			t.Fatalf("warn: %d %v, want 1 possible duplicate", warned.PossibleDuplicates, err)
		}
		other, err := s.Create(ctx, patient.CreateRequest{Family: "Hopper", Given: []string{"Grace"}, Address: "1 Navy Rd", DateOfBirth: "1906-12-09",
			DuplicateCheck: patient.DuplicateCheckStrict})
		if err != nil || other.PossibleDuplicates != 0 {
			t.Fatalf("a different person under the strict check: %+v %v", other, err)
		}

		strict := adaAgain
		strict.DuplicateCheck = patient.DuplicateCheckStrict
		_, err = s.Create(ctx, strict)
		cs := candidatesOf(t, err)
		if len(cs) != 2 || cs[0].Score < 0.5 || len(cs[0].Reasons) == 0 || cs[0].Patient.Family != "Lovelace" || cs[0].Grade == "" {
			t.Fatalf("candidates %+v", cs)
		}
		ids := map[string]bool{cs[0].ID: true, cs[1].ID: true}
		if !ids[first.ID] || !ids[warned.ID] {
			t.Fatalf("candidates %v, want %s and %s", ids, first.ID, warned.ID)
		}
		if n := count(t, d, `SELECT count(*) FROM patients WHERE deleted_at IS NULL`); n != 3 {
			t.Fatalf("%d patients after the refusal, want 3", n)
		}
		// Each candidate shown is a disclosure in its access log.
		admin := ctxRole("admin1", "admin")
		for _, id := range []string{first.ID, warned.ID} {
			log, err := s.AccessLog(admin, patient.AccessLogQuery{PatientID: id})
			if err != nil || len(log.Records) == 0 || log.Records[0].Action != patient.ActionDuplicates || log.Records[0].Actor != "clin1" {
				t.Fatalf("access log of %s: %+v %v", id, log, err)
			}
		}
		// Confirming only one of them is not enough; confirming both registers.
		strict.ConfirmNotDuplicate = []string{first.ID}
		_, err = s.Create(ctx, strict)
		candidatesOf(t, err)
		strict.ConfirmNotDuplicate = []string{first.ID, warned.ID}
		third, err := s.Create(ctx, strict)
		if err != nil || third.PossibleDuplicates != 2 {
			t.Fatalf("confirmed: %+v %v", third, err)
		}
		if n := count(t, d, `SELECT count(*) FROM audit_log WHERE action = ? AND subject_id IN (?, ?)`, patient.ActionConfirmNotDuplicate, first.ID, warned.ID); n != 2 {
			t.Fatalf("%d confirm_not_duplicate entries, want 2", n)
		}
		// A bad Prefer value never reaches the database.
		_, err = s.Create(ctx, patient.CreateRequest{Name: "x", Address: "x", DateOfBirth: "1990-01-01", DuplicateCheck: "lenient"})
		wantKind(t, err, errs.InvalidArgument)

		block := newDuplicateService(t, d, patient.DuplicatePolicyBlock)
		_, err = block.Create(ctx, adaAgain)
		if cs := candidatesOf(t, err); len(cs) != 3 {
			t.Fatalf("block: %d candidates, want 3", len(cs))
		}
		off := newDuplicateService(t, d, patient.DuplicatePolicyOff)
		p, err := off.Create(ctx, strict)
		if err != nil || p.PossibleDuplicates != 0 {
			t.Fatalf("off: %+v %v", p, err)
		}
	})
}

// TestDuplicateCandidatesMasked: a restricted candidate is shown to a caller without a grant
// as id, MRN and confidentiality only, with no reasons.
func TestDuplicateCandidatesMasked(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		s := newDuplicateService(t, d, patient.DuplicatePolicyBlock)
		ctx := ctxAs("clin1")
		first, err := s.Create(ctx, ada)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.SetConfidentiality(ctxRole("priv1", "privacy"), patient.ConfidentialityRequest{ID: first.ID, Confidentiality: patient.ConfidentialityRestricted}); err != nil {
			t.Fatal(err)
		}
		_, err = s.Create(ctx, adaAgain)
		cs := candidatesOf(t, err)
		if len(cs) != 1 || cs[0].ID != first.ID || cs[0].Patient.Name != "" || cs[0].Patient.DateOfBirth != "" || len(cs[0].Reasons) != 0 ||
			cs[0].Patient.MRN != first.MRN || cs[0].Patient.Confidentiality != patient.ConfidentialityRestricted {
			t.Fatalf("restricted candidate not masked: %+v", cs)
		}
		r, err := s.Duplicates(ctx, patient.DuplicatesRequest{Patient: &adaAgain})
		if err != nil || len(r.Candidates) != 1 || r.Candidates[0].Patient.Family != "" {
			t.Fatalf("$match of a restricted record: %+v %v", r, err)
		}
	})
}

// TestDuplicatesOfRecord: GET /patients/{id}/duplicates at the service lists the other
// registrations of the person, never the record itself; a deleted record and one changed
// into someone else stop being candidates (the keys follow every change in its
// transaction); demographics match the same way ($match); bad requests are refused.
func TestDuplicatesOfRecord(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		s := newDuplicateService(t, d, patient.DuplicatePolicyOff)
		ctx := ctxAs("clin1")
		var ids []string
		for _, r := range []patient.CreateRequest{ada, adaAgain, adaAgain, stranger} {
			p, err := s.Create(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, p.ID)
		}
		r, err := s.Duplicates(ctx, patient.DuplicatesRequest{ID: ids[0]})
		if err != nil || len(r.Candidates) != 2 || r.Candidates[0].ID == ids[0] || r.Candidates[1].ID == ids[0] {
			t.Fatalf("duplicates of %s: %+v %v", ids[0], r, err)
		}
		if r, err = s.Duplicates(ctx, patient.DuplicatesRequest{ID: ids[1]}); err != nil || len(r.Candidates) != 2 || r.Candidates[0].ID != ids[2] ||
			r.Candidates[0].Score < r.Candidates[1].Score || r.Candidates[0].Grade != "certain" {
			t.Fatalf("duplicates of %s: %+v %v", ids[1], r, err)
		}
		if err := s.Delete(ctx, patient.DeleteRequest{ID: ids[2]}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Update(ctx, patient.UpdateRequest{ID: ids[1], Name: "Marie Curie", Family: ptr("Curie"), Given: ptr([]string{"Marie"}),
			Phone: ptr(""), Address: "Paris", DateOfBirth: "1967-11-07"}); err != nil {
			t.Fatal(err, errs.As(err).Fields)
		}
		if r, err = s.Duplicates(ctx, patient.DuplicatesRequest{ID: ids[0]}); err != nil || len(r.Candidates) != 0 || r.Candidates == nil {
			t.Fatalf("after delete and update: %+v %v", r, err)
		}
		if n := count(t, d, `SELECT count(*) FROM patient_match_keys WHERE patient_id = ?`, ids[2]); n != 0 {
			t.Fatalf("a deleted record keeps %d keys", n)
		}
		// $match: demographics, the record itself is a candidate; onlyCertain and count.
		m, err := s.Duplicates(ctx, patient.DuplicatesRequest{Patient: &adaAgain, MinScore: patient.PossibleScore})
		if err != nil || len(m.Candidates) != 1 || m.Candidates[0].ID != ids[0] {
			t.Fatalf("$match: %+v %v", m, err)
		}
		exact := ada
		if m, err = s.Duplicates(ctx, patient.DuplicatesRequest{Patient: &exact, OnlyCertain: true, Count: 1}); err != nil || len(m.Candidates) != 1 || m.Candidates[0].Score < patient.CertainScore {
			t.Fatalf("$match onlyCertain: %+v %v", m, err)
		}
		for _, bad := range []patient.DuplicatesRequest{
			{}, {ID: "nope"}, {ID: ids[0], Count: 51}, {ID: ids[0], Count: -1}, {ID: ids[0], MinScore: 2},
			{ID: ids[0], Patient: &ada}, {Patient: &patient.CreateRequest{}}, {Patient: &patient.CreateRequest{DateOfBirth: "yesterday"}},
			{Patient: &patient.CreateRequest{Name: "x", Phone: "call me"}},
		} {
			_, err := s.Duplicates(ctx, bad)
			wantKind(t, err, errs.InvalidArgument)
		}
		_, err = s.Duplicates(ctx, patient.DuplicatesRequest{ID: "5f0c1c52-8a53-4c8e-9d43-6c1f0e2b7a11"})
		wantKind(t, err, errs.NotFound)
		_, err = s.Duplicates(ctx, patient.DuplicatesRequest{ID: ids[2]})
		wantKind(t, err, errs.Gone)
	})
}

// TestBackfillMatchKeys: records written before the key table (or under an older scheme)
// are keyed on start, once; afterwards they are candidates again.
func TestBackfillMatchKeys(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		store := patient.NewStore(d)
		if n, err := store.BackfillMatchKeys(context.Background()); err != nil || n != 0 {
			t.Fatalf("empty database: %d %v", n, err)
		}
		s := newDuplicateService(t, d, patient.DuplicatePolicyOff)
		ctx := ctxAs("clin1")
		first, err := s.Create(ctx, ada)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Create(ctx, stranger); err != nil {
			t.Fatal(err)
		}
		keys := count(t, d, `SELECT count(*) FROM patient_match_keys`)
		// As a database migrated from before 00028 has it.
		if _, err := d.ExecContext(context.Background(), `DELETE FROM patient_match_keys`); err != nil {
			t.Fatal(err)
		}
		if _, err := d.ExecContext(context.Background(), `UPDATE patient_match_keys_state SET version = 0`); err != nil {
			t.Fatal(err)
		}
		if r, err := s.Duplicates(ctx, patient.DuplicatesRequest{Patient: &adaAgain}); err != nil || len(r.Candidates) != 0 {
			t.Fatalf("before the back-fill: %+v %v", r, err)
		}
		if n, err := store.BackfillMatchKeys(context.Background()); err != nil || n != 2 {
			t.Fatalf("back-fill: %d %v, want 2", n, err)
		}
		if got := count(t, d, `SELECT count(*) FROM patient_match_keys`); got != keys {
			t.Fatalf("%d keys after the back-fill, want %d", got, keys)
		}
		if n, err := store.BackfillMatchKeys(context.Background()); err != nil || n != 0 {
			t.Fatalf("second back-fill: %d %v, want nothing to do", n, err)
		}
		if r, err := s.Duplicates(ctx, patient.DuplicatesRequest{Patient: &adaAgain}); err != nil || len(r.Candidates) != 1 || r.Candidates[0].ID != first.ID {
			t.Fatalf("after the back-fill: %+v %v", r, err)
		}
	})
}

// TestDuplicateCheckConcurrent: under block, eight registrations of one person at once
// (each with its own email) register exactly one record: the strict check runs in the
// create's transaction after locking the record's blocking keys, so each later one sees the
// first and is refused.
func TestDuplicateCheckConcurrent(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		s := newDuplicateService(t, d, patient.DuplicatePolicyBlock)
		var wg sync.WaitGroup
		results := make([]error, 8)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := adaAgain
				r.Email = fmt.Sprintf("ada%d@example.org", i)
				_, results[i] = s.Create(ctxAs("clin1"), r)
			}()
		}
		wg.Wait()
		ok, refused := 0, 0
		for _, err := range results {
			switch errs.KindOf(err) {
			case "":
				ok++
			case errs.PossibleDuplicate:
				refused++
			default:
				t.Errorf("unexpected %v", err)
			}
		}
		if ok != 1 || refused != 7 || count(t, d, `SELECT count(*) FROM patients`) != 1 {
			t.Fatalf("%d registered, %d refused; want 1 and 7", ok, refused)
		}
	})
}

// TestCandidatesPlanWithoutStatistics: on a bulk-seeded database whose blocking-key table
// has never been analysed (autovacuum off, as on our machines; a restore before its first
// ANALYZE), the duplicate check still looks the keys up first, and then the records by their
// primary key only. Left to the planner, it walked every patient in registration order
// probing the keys for each: 0.5 s a registration at 100,000 patients, which timed the
// soak's creates out (issue 20 item 7); and with no statistics on patients either, it read
// every live record through a partial index for each registration (issue 20 item 4).
func TestCandidatesPlanWithoutStatistics(t *testing.T) {
	d := dbtest.Open(t, db.Postgres, migrations.Patient(), patient.DatabaseOptions()...) // as the service opens it
	store := patient.NewStore(d)
	ctx := context.Background()
	if err := store.Seed(ctx, 3000, 7, nil); err != nil {
		t.Fatal(err)
	}
	// No statistics at all (a new database before autovacuum's first ANALYZE: the planner took
	// the table for a few rows and hashed every live record, through a partial index, for each
	// registration), then patients' only (as pms seed did).
	for _, analyze := range []string{"", `ANALYZE patients`} {
		if analyze != "" {
			if _, err := d.ExecContext(ctx, analyze); err != nil {
				t.Fatal(err)
			}
		}
		plan, err := patient.CandidatesPlan(ctx, store, patient.CreateRequest{Name: "Ada Lovelace", Family: "Lovelace", Given: []string{"Ada"},
			Email: "ada@example.org", Address: "1 Main St", DateOfBirth: "1990-12-10", Phone: "+1 555 123 4567"})
		if err != nil {
			t.Fatal(err)
		}
		// Every index of patients the plan reads is its primary key: a partial index (all live
		// records) in a BitmapAnd or under a hash reads the whole table.
		others := slices.DeleteFunc(regexp.MustCompile(`(?:on|using) patients_\w+`).FindAllString(plan, -1), func(s string) bool { return strings.HasSuffix(s, " patients_pkey") })
		if len(others) > 0 || strings.Contains(plan, "Seq Scan on patients") || strings.Contains(plan, "Hash Join") ||
			!strings.Contains(plan, "Index Cond: (id = ANY") || !strings.Contains(plan, "patient_match_keys_pkey") {
			t.Fatalf("after %q the candidates are not found by their keys and then their primary key:\n%s", analyze, plan)
		}
	}
}

// TestCountedPagePlanWithoutStatistics: the page of a search that counted its matches (a
// range of birth dates, a family and birth years) is looked up by the counted positions through
// patients' seq key, with no statistics and after ANALYZE. Flattened into the search's own
// condition, the planner read it through the search's index instead whenever it
// underestimated the matches, every match's heap page for the page's 51 (store.go,
// lookupFrom).
func TestCountedPagePlanWithoutStatistics(t *testing.T) {
	d := dbtest.Open(t, db.Postgres, migrations.Patient(), patient.DatabaseOptions()...) // as the service opens it
	store := patient.NewStore(d)
	ctx := context.Background()
	if err := store.Seed(ctx, 5000, 11, nil); err != nil {
		t.Fatal(err)
	}
	var from, to, family string
	if err := d.GetContext(ctx, &from, `SELECT date_of_birth FROM patients ORDER BY date_of_birth OFFSET 2000 LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	if err := d.GetContext(ctx, &to, `SELECT date_of_birth FROM patients ORDER BY date_of_birth OFFSET 2400 LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	if err := d.GetContext(ctx, &family, `SELECT family FROM patients WHERE date_of_birth BETWEEN '1950' AND '1990'
		GROUP BY 1 HAVING count(*) > 60 ORDER BY count(*) LIMIT 1`); err != nil {
		t.Fatalf("no family with more than a page's patients born 1950-1989: %v", err)
	}
	queries := map[string]patient.ListQuery{
		"birth-date range":    {BornFrom: from[:10], BornTo: to[:10], Limit: 50},
		"family, birth years": {Family: family, BornFrom: "1950-01-01", BornTo: "1989-12-31", Limit: 50},
	}
	for _, analyze := range []string{"", `ANALYZE patients`} {
		if analyze != "" {
			if _, err := d.ExecContext(ctx, analyze); err != nil {
				t.Fatal(err)
			}
		}
		for name, q := range queries {
			plan, err := patient.CountedPagePlan(ctx, store, q)
			if err != nil {
				t.Fatalf("%s after %q: %v", name, analyze, err)
			}
			others := slices.DeleteFunc(regexp.MustCompile(`(?:on|using) patients_\w+`).FindAllString(plan, -1), func(s string) bool { return strings.HasSuffix(s, " patients_seq_key") })
			if len(others) > 0 || strings.Contains(plan, "Seq Scan on patients") || !strings.Contains(plan, "Index Cond: (seq = ANY") {
				t.Fatalf("%s after %q: the page is not looked up by its counted positions:\n%s", name, analyze, plan)
			}
		}
	}
}
