package audit

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/ids"
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

// grownRows is how many entries BenchmarkAppendGrownLog's logs hold before it appends: enough
// that the id index spans more pages than one run's appends (a year of a clinic's reads is
// millions). PMS_BENCH_GROWN_ROWS sets another number.
var grownRows = 200_000

func init() {
	if n, err := strconv.Atoi(os.Getenv("PMS_BENCH_GROWN_ROWS")); err == nil && n > 0 {
		grownRows = n
	}
}

// BenchmarkAppendGrownLog measures appends to a log that already holds grownRows entries, with
// random (version 4) entry ids against the writer's own time-ordered ones (ids.Ordered), and
// reports the write-ahead log per entry: after a checkpoint the first change to each index
// page writes the whole page to the log, and a random id dirties a different page of the
// unique index on id with nearly every append. PostgreSQL only; the log is counted
// server-wide, so run it alone. The subjects are random in both, as a million patients' are.
func BenchmarkAppendGrownLog(b *testing.B) {
	kinds := []struct {
		name string
		id   func() string
	}{{"random", uuid.NewString}, {"ordered", ids.Ordered}}
	logs := make([]*db.DB, len(kinds))
	for i, k := range kinds {
		logs[i] = dbtest.Open(b, db.Postgres, db.Sets{Migrations})
		grow(b, logs[i], k.id)
	}
	for i, k := range kinds {
		b.Run(k.name, func(b *testing.B) {
			d := logs[i]
			ctx := context.Background()
			w := NewWriter(d, Options{})
			defer func() {
				if err := w.Close(context.Background()); err != nil {
					b.Error(err)
				}
			}()
			var wal0 string
			if _, err := d.ExecContext(ctx, `CHECKPOINT`); err != nil {
				b.Fatal(err)
			}
			if err := d.GetContext(ctx, &wal0, `SELECT pg_current_wal_lsn()::text`); err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(32)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				e := sample(1)
				for pb.Next() {
					e.ID, e.SubjectID = k.id(), uuid.NewString()
					if err := w.Append(ctx, e); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			var wal float64
			if err := d.GetContext(ctx, &wal, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)`, wal0); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
			b.ReportMetric(wal/float64(b.N), "WAL-bytes/entry")
		})
	}
}

// grow fills d's empty audit log with grownRows chained-looking entries (seq from 1; the
// hashes are not a real chain, which only Verify would notice), ids from id.
func grow(b *testing.B, d *db.DB, id func() string) {
	const page = 5000
	for start := 1; start <= grownRows; start += page {
		n := min(page, grownRows-start+1)
		seqs, idv := make([]int64, n), make([]string, n)
		for i := range seqs {
			seqs[i], idv[i] = int64(start+i), id()
		}
		if _, err := d.Exec(`INSERT INTO `+DefaultTable+` (seq, id, at, actor, role, action, subject_id, outcome,
			request_id, client_address, prev_hash, hash)
			SELECT s, i, now(), 'user-1', 'clinician', 'patient.read', gen_random_uuid()::text, 'success', '', '', '', md5(s::text)
			FROM unnest($1::bigint[], $2::text[]) AS t(s, i)`, seqs, idv); err != nil {
			b.Fatal(fmt.Errorf("growing the log: %w", err))
		}
	}
}
