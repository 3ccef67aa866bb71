package patient_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
)

// TestSeed: a seed of several batches (inserted several at once on PostgreSQL) registers the
// generator's people in the order drawn, so the same seed twice gives the same people in
// the same order; every patient has the MRN of its registration number and a first history
// row; progress counts up to n; the largest number is reported issued. On PostgreSQL a
// trigger refuses any UPDATE of patients while seeding: the MRN goes in with the row (an
// UPDATE afterwards wrote every row and its index entries twice).
func TestSeed(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		if d.Dialect == db.Postgres {
			if _, err := d.ExecContext(ctx, `CREATE FUNCTION refuse_update() RETURNS trigger LANGUAGE plpgsql AS
				$$ BEGIN RAISE EXCEPTION 'patients updated while seeding'; END $$`); err != nil {
				t.Fatal(err)
			}
			if _, err := d.ExecContext(ctx, `CREATE TRIGGER refuse_update BEFORE UPDATE ON patients FOR EACH ROW EXECUTE FUNCTION refuse_update()`); err != nil {
				t.Fatal(err)
			}
		}
		var issued atomic.Int64
		d.OnIssue = func(table string, n int64) error {
			if table == "patients" && n > issued.Load() {
				issued.Store(n)
			}
			return nil
		}
		const n = 2537 // three batches, the last one short
		store := patient.NewStore(d)
		type person struct{ Name, DOB string }
		var runs [2][]person
		for run := range runs {
			var done []int
			if err := store.Seed(ctx, n, 42, func(k int) { done = append(done, k) }); err != nil {
				t.Fatal(err)
			}
			if len(done) != 3 || !slices.IsSorted(done) || done[2] != n {
				t.Fatalf("run %d: progress %v", run, done)
			}
			var rows []struct {
				Seq  int64  `db:"seq"`
				MRN  string `db:"mrn"`
				Name string `db:"name"`
				DOB  string `db:"date_of_birth"`
			}
			if err := d.SelectContext(ctx, &rows, d.Rebind(`SELECT seq, mrn, name, date_of_birth FROM patients ORDER BY seq LIMIT ? OFFSET ?`), n, run*n); err != nil {
				t.Fatal(err)
			}
			if len(rows) != n {
				t.Fatalf("run %d: %d rows, want %d", run, len(rows), n)
			}
			for _, r := range rows {
				if r.MRN != patient.MRN(r.Seq) {
					t.Fatalf("seq %d has MRN %q, want %q", r.Seq, r.MRN, patient.MRN(r.Seq))
				}
				runs[run] = append(runs[run], person{r.Name, r.DOB})
			}
			if last := rows[n-1].Seq; d.Dialect == db.Postgres && issued.Load() < last {
				t.Fatalf("run %d: issued %d, below the last registration number %d", run, issued.Load(), last)
			}
		}
		if !slices.Equal(runs[0], runs[1]) {
			t.Fatal("the same seed registered other people, or in another order")
		}
		var versions int
		if err := d.GetContext(ctx, &versions, `SELECT count(*) FROM patient_versions WHERE version = 1 AND mrn IS NOT NULL`); err != nil {
			t.Fatal(err)
		}
		if versions != 2*n {
			t.Fatalf("%d first history rows, want %d", versions, 2*n)
		}
	})
}
