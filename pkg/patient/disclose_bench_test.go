package patient_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/observe"
)

// BenchmarkSearch500 is issue 17's budget: a search returning a 500-row page on PostgreSQL,
// as before (one chained audit entry: "plain") and with a disclosure row per record returned
// and the query's fingerprint ("disclosures"), written in the same batch transaction. The
// target is disclosures at most 20% slower than plain (benchstat over -count 6).
func BenchmarkSearch500(b *testing.B) {
	d := dbtest.Open(b, db.Postgres, migrations.Patient())
	seed := newBenchService(b, d, false)
	ctx := observe.WithTransport(ctxAs("bench"), "http")
	for i := range 500 {
		r := req(i)
		r.Name = fmt.Sprintf("Bench Person %d", i)
		if _, err := seed.Create(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	for _, mode := range []struct {
		name     string
		disclose bool
	}{{"plain", false}, {"disclosures", true}} {
		b.Run(mode.name, func(b *testing.B) {
			s := newBenchService(b, d, mode.disclose)
			for b.Loop() {
				page, err := s.List(ctx, patient.ListQuery{Q: "Bench", Limit: 500})
				if err != nil || len(page.Patients) != 500 {
					b.Fatalf("search: %d, %v", len(page.Patients), err)
				}
			}
		})
		// Throughput: 8 callers at once, as a busy clinic's searches arrive; the audit writer
		// chains their entries (and writes their pages) in shared batches.
		b.Run(mode.name+"/parallel", func(b *testing.B) {
			s := newBenchService(b, d, mode.disclose)
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					page, err := s.List(ctx, patient.ListQuery{Q: "Bench", Limit: 500})
					if err != nil || len(page.Patients) != 500 {
						b.Errorf("search: %d, %v", len(page.Patients), err)
						return
					}
				}
			})
		})
	}
}

func newBenchService(b *testing.B, d *db.DB, disclose bool) patient.Service {
	o := audit.Options{Table: patient.AuditTable}
	var po patient.Options
	if disclose {
		disc := patient.NewDisclosures(d)
		o.AfterBatch = disc.Hook(nil)
		po = patient.Options{Disclosures: disc, SearchKey: make([]byte, patient.SearchKeySize)}
	}
	w := audit.NewWriter(d, o)
	b.Cleanup(func() { _ = w.Close(context.Background()) })
	return patient.NewService(patient.NewStore(d), w, po)
}
