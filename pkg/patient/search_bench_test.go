package patient_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/observe"
)

// BenchmarkCountedRangeSearch is issue 20 item 1's slowest kind at a million patients: a
// birth-date range with several hundred matches, under ExactCountLimit, so the search counts
// them and looks its first page of 50 up by the counted positions. 20,000 seeded patients on
// PostgreSQL and a range holding about 800 of them stand in for a month of births at a
// million (819 there). Audited as the service audits (one chained entry a search).
func BenchmarkCountedRangeSearch(b *testing.B) {
	d := dbtest.Open(b, db.Postgres, migrations.Patient(), patient.DatabaseOptions()...)
	ctx := context.Background()
	if err := patient.NewStore(d).Seed(ctx, 20000, 3, nil); err != nil {
		b.Fatal(err)
	}
	if _, err := d.ExecContext(ctx, `VACUUM ANALYZE patients`); err != nil { // as autovacuum would
		b.Fatal(err)
	}
	// The range from the 10,000th birth date to the 10,800th, in date order.
	var from, to string
	if err := d.GetContext(ctx, &from, `SELECT date_of_birth FROM patients ORDER BY date_of_birth OFFSET 10000 LIMIT 1`); err != nil {
		b.Fatal(err)
	}
	if err := d.GetContext(ctx, &to, `SELECT date_of_birth FROM patients ORDER BY date_of_birth OFFSET 10800 LIMIT 1`); err != nil {
		b.Fatal(err)
	}
	s := newBenchService(b, d, false)
	q := patient.ListQuery{BornFrom: from[:10], BornTo: to[:10], Limit: 50}
	actx := observe.WithTransport(ctxAs("bench"), "http")
	page, err := s.List(actx, q)
	if err != nil || len(page.Patients) != 50 || page.TotalEstimated || page.Total < 700 || page.Total > patient.ExactCountLimit {
		b.Fatalf("range %s..%s: %d patients of %d (estimated %v), %v", from, to, len(page.Patients), page.Total, page.TotalEstimated, err)
	}
	b.Run(fmt.Sprintf("matches=%d", page.Total), func(b *testing.B) {
		for b.Loop() {
			if page, err := s.List(actx, q); err != nil || len(page.Patients) != 50 {
				b.Fatalf("search: %d, %v", len(page.Patients), err)
			}
		}
	})
}

// BenchmarkSearchRecentTerm is the first page of a term that only the newest records match (a
// name registered again and again of late, not among the older records): the search's count
// finds more than ExactCountLimit matches and their first page lies past the reach of a walk,
// so it is looked up through the trigram indexes within the found range, which reads every
// match. Its cost grows with the matches (docs/kafka.md, issue 20 item 7): this benchmark
// prints it for 1,100 and 4,400 of them, after 20,000 older records.
func BenchmarkSearchRecentTerm(b *testing.B) {
	d := dbtest.Open(b, db.Postgres, migrations.Patient(), patient.DatabaseOptions()...)
	ctx := context.Background()
	const older = 20000
	if err := patient.NewStore(d).Seed(ctx, older+4400, 3, nil); err != nil {
		b.Fatal(err)
	}
	s := newBenchService(b, d, false)
	actx := observe.WithTransport(ctxAs("bench"), "http")
	q := patient.ListQuery{Q: "zebedee", Limit: 20}
	for _, recent := range []int{1100, 4400} {
		if _, err := d.ExecContext(ctx, `UPDATE patients SET name = 'Zebedee Quux' WHERE seq > $1 AND seq <= $2`, older, older+recent); err != nil {
			b.Fatal(err)
		}
		if _, err := d.ExecContext(ctx, `VACUUM ANALYZE patients`); err != nil { // as autovacuum would
			b.Fatal(err)
		}
		page, err := s.List(actx, q)
		if err != nil || len(page.Patients) != 20 || !page.TotalEstimated {
			b.Fatalf("%d recent: %d patients of %d (estimated %v), %v", recent, len(page.Patients), page.Total, page.TotalEstimated, err)
		}
		b.Run(fmt.Sprintf("recent=%d", recent), func(b *testing.B) {
			for b.Loop() {
				if page, err := s.List(actx, q); err != nil || len(page.Patients) != 20 {
					b.Fatalf("search: %d, %v", len(page.Patients), err)
				}
			}
		})
	}
}
