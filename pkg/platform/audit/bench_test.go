package audit

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/jmoiron/sqlx"
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

// BenchmarkChange measures audited changes per second with many concurrent callers: each
// change is a transaction inserting one row, audited the way services do. "pending" is issue
// 17's way (the entry inserted by the change's own transaction, then Settle: the writer moves
// it into the chain); "after" is the earlier way (Append once the change committed), which
// could lose the entry when the database went away between the two.
func BenchmarkChange(b *testing.B) {
	for _, dialect := range dbtest.Dialects {
		for _, mode := range []string{"pending", "after"} {
			b.Run(string(dialect)+"/"+mode, func(b *testing.B) {
				d := dbtest.Open(b, dialect, db.Sets{Migrations})
				if _, err := d.Exec(`CREATE TABLE things (id TEXT PRIMARY KEY)`); err != nil {
					b.Fatal(err)
				}
				w := NewWriter(d, Options{})
				defer func() {
					if err := w.Close(context.Background()); err != nil {
						b.Error(err)
					}
				}()
				rec := Recorder{W: w}
				var n atomic.Int64
				b.SetParallelism(32)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						ctx := context.Background()
						if mode == "pending" {
							ctx = WithPending(ctx, "thing.create", "t")
						}
						id := strconv.FormatInt(n.Add(1), 10)
						err := InTx(ctx, d, func(tx *sqlx.Tx) error {
							_, err := tx.Exec(tx.Rebind(`INSERT INTO things (id) VALUES (?)`), id)
							return err
						})
						if err != nil {
							b.Error(err)
							return
						}
						rec.Change(ctx, "thing.create", "t", nil)
					}
				})
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "changes/s")
			})
		}
	}
}
