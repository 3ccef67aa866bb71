package audit

import (
	"context"
	"testing"

	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
)

// BenchmarkAppend measures audited requests per second with many concurrent callers, as a
// burst of patient reads produces them. "batched" is the writer as services use it; "unbatched"
// is the same writer with MaxBatch 1, one transaction (one commit, one fsync) per entry, which
// is what group commit saves.
func BenchmarkAppend(b *testing.B) {
	modes := []struct {
		name     string
		maxBatch int
	}{{"batched", 256}, {"unbatched", 1}}
	for _, dialect := range dbtest.Dialects {
		for _, m := range modes {
			b.Run(string(dialect)+"/"+m.name, func(b *testing.B) {
				d := dbtest.Open(b, dialect, db.Sets{Migrations})
				w := NewWriter(d, Options{MaxBatch: m.maxBatch})
				defer func() {
					if err := w.Close(context.Background()); err != nil {
						b.Error(err)
					}
				}()
				ctx := context.Background()
				b.SetParallelism(32) // 32 callers per CPU: a server under load, not a loop
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					e := sample(1)
					for pb.Next() {
						if err := w.Append(ctx, e); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
				if st := w.Stats(); st.Batches > 0 {
					b.ReportMetric(float64(st.Entries)/float64(st.Batches), "entries/batch")
				}
			})
		}
	}
}
