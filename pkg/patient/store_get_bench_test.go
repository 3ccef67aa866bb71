package patient

import (
	"context"
	"testing"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
)

// BenchmarkStoreGet is the read by id alone (no token, no audit) on PostgreSQL: one caller,
// and 32 at once (SetParallelism(16) on 2 cores), as GET /patients/{id} under wrk -c64 is.
// The parallel case is what getBatcher serves with one statement per queue (store_get.go).
func BenchmarkStoreGet(b *testing.B) {
	d := dbtest.Open(b, db.Postgres, migrations.Patient())
	s := NewStore(d)
	ctx := context.Background()
	if err := s.Seed(ctx, 1000, 7, nil); err != nil {
		b.Fatal(err)
	}
	var ids []string
	if err := d.SelectContext(ctx, &ids, `SELECT id FROM patients ORDER BY seq`); err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, err := s.get(ctx, ids[i%len(ids)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, err := s.get(ctx, ids[i%len(ids)]); err != nil {
					b.Error(err)
					return
				}
				i += 7
			}
		})
	})
}
