package patient

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pms/pms/pkg/platform/polltest"

	"github.com/google/uuid"
	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/prometheus/client_golang/prometheus"
)

// seededIDs seeds n patients into s and returns their ids in registration order.
func seededIDs(t *testing.T, s *Store, n int) []string {
	t.Helper()
	ctx := context.Background()
	if err := s.Seed(ctx, n, 7, nil); err != nil {
		t.Fatal(err)
	}
	var ids []string
	if err := s.db.SelectContext(ctx, &ids, `SELECT id FROM patients ORDER BY seq`); err != nil {
		t.Fatal(err)
	}
	if len(ids) != n {
		t.Fatalf("seeded %d, want %d", len(ids), n)
	}
	return ids
}

// TestGetBatchServesEachItsOwn: reads queued behind busy runners are served by one statement,
// and each gets its own answer: its own row, the same row for a repeated id, not found for an
// unknown id, gone for a deleted record, and a non-canonical id read on its own, all on both
// databases. It would fail if the batch mixed rows up, dropped one, or ran one statement per read.
func TestGetBatchServesEachItsOwn(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		s := NewStore(d)
		ids := seededIDs(t, s, 40)
		ctx := context.Background()
		if _, err := d.ExecContext(ctx, d.Rebind(`UPDATE patients SET deleted_at = ? WHERE id = ?`), d.Time(time.Now()), ids[3]); err != nil {
			t.Fatal(err)
		}
		b := s.reads
		b.mu.Lock()
		b.running = b.runners // every runner busy: reads queue
		b.mu.Unlock()
		unknown := uuid.NewString()
		asked := append(append(append([]string(nil), ids...), ids[5], ids[5], unknown), ids[:4]...)
		type answer struct {
			p   Patient
			err error
		}
		answers := make([]answer, len(asked))
		var wg sync.WaitGroup
		for i, id := range asked {
			wg.Add(1)
			go func() {
				defer wg.Done()
				answers[i].p, answers[i].err = s.get(ctx, id)
			}()
		}
		polltest.Until(t, 10*time.Second, "the reads queued", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.queue) == len(asked) })
		// An id in another spelling is read on its own, as before batching: it answers while
		// the queue is still held (joining it would wait, and on PostgreSQL fail the batch).
		short, cancelShort := context.WithTimeout(ctx, 5*time.Second)
		_, err := s.get(short, "not-a-uuid")
		cancelShort()
		if err == nil || errs.KindOf(err) == errs.Timeout || errs.KindOf(err) == errs.Canceled {
			t.Fatalf("a malformed id: %v (%s), want an answer of its own", err, errs.KindOf(err))
		}
		before := b.statements.Load()
		b.mu.Lock()
		b.running = 1 // the one runner started below; the rest were never there
		b.mu.Unlock()
		go b.run()
		wg.Wait()
		if n := b.statements.Load() - before; n != 1 {
			t.Fatalf("%d reads took %d statements, want 1", len(asked), n)
		}
		for i, id := range asked {
			a := answers[i]
			switch {
			case id == unknown:
				if !errors.Is(a.err, ErrNotFound) {
					t.Fatalf("unknown id: %+v, %v", a.p, a.err)
				}
			case id == ids[3]:
				if !errors.Is(a.err, ErrGone) {
					t.Fatalf("deleted id: %+v, %v", a.p, a.err)
				}
			case a.err != nil || a.p.ID != id || a.p.MRN == "" || a.p.Name == "":
				t.Fatalf("read %d (%s): %+v, %v", i, id, a.p, a.err)
			}
		}
		// The runner stops once it finds the queue empty (it may still be finishing).
		polltest.Until(t, 10*time.Second, "the batcher idle", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.running == 0 && len(b.queue) == 0 })
	})
}

// TestGetBatchReadsItsOwnWrites: under a stream of concurrent reads keeping the batcher busy,
// every read started after a write was acknowledged sees that write (a later version), on
// both databases. It would fail if a read joined a statement that started before it arrived,
// or if rows were kept between statements.
func TestGetBatchReadsItsOwnWrites(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		s := NewStore(d)
		ids := seededIDs(t, s, 20)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var wg sync.WaitGroup
		var readErr error
		var once sync.Once
		var reads atomic.Int64
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ctx.Err() == nil; i++ {
					if _, err := s.get(ctx, ids[(g+i)%len(ids)]); err != nil && ctx.Err() == nil {
						once.Do(func() { readErr = err })
					}
					reads.Add(1)
				}
			}()
		}
		bump := d.Rebind(`UPDATE patients SET version = version + 1 WHERE id = ?`)
		for v := int64(2); v <= 60; v++ {
			id := ids[int(v)%len(ids)]
			if _, err := d.ExecContext(ctx, bump, id); err != nil {
				t.Fatal(err)
			}
			var want int64
			if err := d.GetContext(ctx, &want, d.Rebind(`SELECT version FROM patients WHERE id = ?`), id); err != nil {
				t.Fatal(err)
			}
			p, err := s.get(ctx, id)
			if err != nil || p.Version != want {
				t.Fatalf("read after write %d: version %d, %v; want %d", v, p.Version, err, want)
			}
		}
		cancel()
		wg.Wait()
		if readErr != nil {
			t.Fatal(readErr)
		}
		if n, r := s.reads.statements.Load(), reads.Load(); n == 0 || n >= r {
			t.Fatalf("%d statements for %d reads: the reads were not batched", n, r)
		}
		// The same figures on the service's registry: every read asked for (the workers'
		// and the 59 checked ones), and the statements that served them, once the reads
		// their callers gave up on have been served too.
		b := s.reads
		polltest.Until(t, 10*time.Second, "the batcher idle", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.running == 0 && len(b.queue) == 0 })
		reg := prometheus.NewRegistry()
		s.RegisterReadMetrics(reg)
		got := map[string]float64{}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			got[mf.GetName()] = mf.GetMetric()[0].GetCounter().GetValue()
		}
		if got["pms_patient_reads_by_id_total"] != float64(reads.Load()+59) ||
			got["pms_patient_read_statements_total"] != float64(s.reads.statements.Load()) {
			t.Fatalf("metrics %v; want %d reads, %d statements", got, reads.Load()+59, s.reads.statements.Load())
		}
	})
}

// TestGetBatchCallerGivesUp: a read whose caller has gone returns Canceled at once, and the
// others queued with it are still served.
func TestGetBatchCallerGivesUp(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		s := NewStore(d)
		ids := seededIDs(t, s, 3)
		b := s.reads
		b.mu.Lock()
		b.running = b.runners
		b.mu.Unlock()
		gone, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { _, err := s.get(gone, ids[0]); errc <- err }()
		polltest.Until(t, 10*time.Second, "one read queued", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.queue) == 1 })
		cancel()
		if err := <-errc; errs.KindOf(err) != errs.Canceled {
			t.Fatalf("a gone caller: %v (%s)", err, errs.KindOf(err))
		}
		type answer struct {
			p   Patient
			err error
		}
		okc := make(chan answer, 1)
		go func() {
			p, err := s.get(context.Background(), ids[1])
			okc <- answer{p, err}
		}()
		polltest.Until(t, 10*time.Second, "two reads queued", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.queue) == 2 })
		b.mu.Lock()
		b.running = 1
		b.mu.Unlock()
		go b.run()
		if a := <-okc; a.err != nil || a.p.ID != ids[1] {
			t.Fatalf("the read queued beside it: %+v, %v", a.p, a.err)
		}
	})
}

// TestGetBatchLoneReadHandsOver: reads that queue behind a lone read (one run at once on its
// caller's goroutine) are served by a runner when it ends. SQLite only: its one connection
// lets the test hold the lone read mid-statement (an open transaction has the connection).
// It would fail (the queued reads never answered) if the lone read's turn were not handed on.
func TestGetBatchLoneReadHandsOver(t *testing.T) {
	d := dbtest.Open(t, db.SQLite, migrations.Patient())
	s := NewStore(d)
	ids := seededIDs(t, s, 4)
	b := s.reads
	tx, err := d.Beginx() // holds the only connection
	if err != nil {
		t.Fatal(err)
	}
	type answer struct {
		p   Patient
		err error
	}
	answers := make(chan answer, len(ids))
	ask := func(id string) {
		go func() { p, err := s.get(context.Background(), id); answers <- answer{p, err} }()
	}
	ask(ids[0]) // the lone read: it waits for the connection
	polltest.Until(t, 10*time.Second, "the lone read running", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.running == 1 })
	for _, id := range ids[1:] {
		ask(id)
	}
	polltest.Until(t, 10*time.Second, "the other reads queued", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.queue) == len(ids)-1 })
	_ = tx.Rollback()
	seen := map[string]bool{}
	for range ids {
		select {
		case a := <-answers:
			if a.err != nil {
				t.Fatal(a.err)
			}
			seen[a.p.ID] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d reads answered", len(seen), len(ids))
		}
	}
	if len(seen) != len(ids) {
		t.Fatalf("answered %v, want each of %v", seen, ids)
	}
}

// TestGetBatchKeepsGenericPlan: on PostgreSQL, batches of one to nine distinct ids (what a
// busy replica mostly runs) share one prepared statement that keeps a generic plan instead of
// being planned again on every call (genericPlanIDs). It would fail without the padding: the
// planner costs such a batch below its ten-row generic plan and plans it for its values each
// time (custom plans only).
func TestGetBatchKeepsGenericPlan(t *testing.T) {
	ctx := context.Background()
	d := dbtest.Open(t, db.Postgres, migrations.Patient(), DatabaseOptions()...)
	s := NewStore(d)
	ids := seededIDs(t, s, 2000)
	if _, err := d.ExecContext(ctx, `ANALYZE patients`); err != nil { // as a production server's statistics would be
		t.Fatal(err)
	}
	d.SetMaxOpenConns(1) // one session, whose pg_prepared_statements sees the statement
	b := s.reads
	for i := range 20 {
		n := 1 + i%9 // wrk asking for one record makes batches of one id, repeated
		batch := make([]*getCall, n)
		for j := range batch {
			batch[j] = &getCall{id: ids[(i+j)%len(ids)], done: make(chan struct{})}
		}
		b.fetch(batch)
		for j, c := range batch {
			if c.err != nil || c.row.ID != c.id {
				t.Fatalf("batch %d, read %d: %+v %v", i, j, c.row.ID, c.err)
			}
		}
	}
	var plans struct {
		Generic int64 `db:"generic_plans"`
		Custom  int64 `db:"custom_plans"`
	}
	if err := d.GetContext(ctx, &plans, `SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1`, b.anySQL); err != nil {
		t.Fatal(err)
	}
	if plans.Generic == 0 || plans.Custom > 5 {
		t.Fatalf("the batch statement: %d generic and %d custom plans in 20 calls, want a generic plan after at most 5 custom", plans.Generic, plans.Custom)
	}
}
