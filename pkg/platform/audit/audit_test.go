package audit

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// sample returns a distinct, plausible entry.
func sample(i int) Entry {
	return Entry{
		Actor:         fmt.Sprintf("user-%d", i%2),
		Role:          "clinician",
		Action:        "patient.read",
		SubjectID:     fmt.Sprintf("patient-%d", i%3),
		Outcome:       OutcomeSuccess,
		RequestID:     fmt.Sprintf("req-%d", i),
		ClientAddress: "127.0.0.1",
	}
}

// newWriter returns a writer closed (and checked to have stopped) when the test ends.
func newWriter(t testing.TB, d *db.DB, o Options) *Writer {
	t.Helper()
	w := NewWriter(d, o)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := w.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		select {
		case <-w.done:
		default:
			t.Error("writer goroutine still running after Close")
		}
	})
	return w
}

// gate holds the writer inside its first batch's transaction (through AfterBatch) until
// released, so a test can queue entries behind it and know exactly what the next batch holds.
type gate struct {
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
	next    func(ctx context.Context, tx db.Execer, entries []Entry) error
}

func newGate() *gate {
	g := &gate{entered: make(chan struct{}), release: make(chan struct{})}
	g.armed.Store(true)
	return g
}

func (g *gate) hook(ctx context.Context, tx db.Execer, entries []Entry) error {
	if g.armed.CompareAndSwap(true, false) {
		close(g.entered)
		select {
		case <-g.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if g.next != nil {
		return g.next(ctx, tx, entries)
	}
	return nil
}

// holdFirst appends one entry in the background and returns once the writer is holding its
// batch; the returned channel yields that Append's result after release.
func (g *gate) holdFirst(t *testing.T, w *Writer) <-chan error {
	t.Helper()
	res := make(chan error, 1)
	go func() { res <- w.Append(context.Background(), sample(0)) }()
	select {
	case <-g.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("first batch never reached the hook")
	}
	return res
}

// waitQueued polls until n entries wait in the writer's queue.
func waitQueued(t *testing.T, w *Writer, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(w.reqs) < n {
		if time.Now().After(deadline) {
			t.Fatalf("queued = %d, want %d", len(w.reqs), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func mustVerify(t *testing.T, d *db.DB, table string, rows int64) Report {
	t.Helper()
	rep, err := Verify(context.Background(), d, table)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !rep.OK || rep.Rows != rows || rep.LastSeq != rows {
		t.Fatalf("Verify = %+v; want OK with %d rows", rep, rows)
	}
	return rep
}

func count(t *testing.T, d *db.DB) int {
	t.Helper()
	var n int
	if err := d.GetContext(context.Background(), &n, `SELECT COUNT(*) FROM audit_log`); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestChainVerifiesAfterManyWrites(t *testing.T) {
	dbtest.Each(t, db.Sets{Migrations}, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		if rep, err := Verify(ctx, d, ""); err != nil || !rep.OK || rep.Rows != 0 {
			t.Fatalf("empty table: Verify = %+v, %v; want OK, 0 rows", rep, err)
		}
		w := newWriter(t, d, Options{MaxBatch: 16})

		// One writer, many callers: sequential and concurrent appends interleave freely.
		var last Entry
		for i := range 40 {
			e, err := w.Write(ctx, sample(i))
			if err != nil {
				t.Fatal(err)
			}
			if e.Seq != int64(i+1) || len(e.Hash) != 64 || e.ID == "" || e.At.IsZero() {
				t.Fatalf("write %d returned %+v", i, e)
			}
			if i > 0 && e.PrevHash != last.Hash {
				t.Fatalf("write %d: prev_hash %s, want %s", i, e.PrevHash, last.Hash)
			}
			last = e
		}
		var wg sync.WaitGroup
		for g := range 20 {
			wg.Go(func() {
				for i := range 30 {
					if err := w.Append(ctx, sample(g*100+i)); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		// Verify walks more than one page (verifyPage rows) here.
		for range verifyPage - 40 - 600 + 5 {
			if err := w.Append(ctx, sample(1)); err != nil {
				t.Fatal(err)
			}
		}
		total := int64(verifyPage + 5)
		rep := mustVerify(t, d, "", total)
		got, err := List(ctx, d, "", Query{Limit: 1})
		if err != nil || len(got) != 1 || got[0].Hash != rep.LastHash {
			t.Fatalf("newest = %+v, %v; want hash %s", got, err, rep.LastHash)
		}
		if st := w.Stats(); st.Entries != total || st.Batches > st.Entries || st.Failures != 0 {
			t.Fatalf("Stats = %+v", st)
		}
	})
}

// TestVerifyDetectsTampering tampers with copies of one valid log, one way per copy.
func TestVerifyDetectsTampering(t *testing.T) {
	dbtest.Each(t, db.Sets{Migrations}, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		w := newWriter(t, d, Options{})
		rows := make([]Entry, 11) // rows[seq]
		for i := 1; i <= 10; i++ {
			e, err := w.Write(ctx, sample(i))
			if err != nil {
				t.Fatal(err)
			}
			rows[i] = e
		}
		forged := rows[5]
		forged.ID, forged.Actor = "forged", "intruder"
		forged.Hash = chainHash(forged.PrevHash, &forged) // a forger who knows the algorithm

		type stmt struct {
			sql  string
			args []any
		}
		cases := []struct {
			name  string
			edits []stmt
			bad   int64
		}{
			{"edit id", []stmt{{`UPDATE %s SET id = ? WHERE seq = 5`, []any{"other-id"}}}, 5},
			{"edit at", []stmt{{`UPDATE %s SET at = ? WHERE seq = 5`, []any{d.Time(rows[5].At.Add(time.Microsecond))}}}, 5},
			{"edit actor", []stmt{{`UPDATE %s SET actor = ? WHERE seq = 5`, []any{"someone-else"}}}, 5},
			{"edit role", []stmt{{`UPDATE %s SET role = ? WHERE seq = 5`, []any{"admin"}}}, 5},
			{"edit action", []stmt{{`UPDATE %s SET action = ? WHERE seq = 5`, []any{"patient.update"}}}, 5},
			{"edit subject_id", []stmt{{`UPDATE %s SET subject_id = ? WHERE seq = 5`, []any{"patient-9"}}}, 5},
			{"edit outcome", []stmt{{`UPDATE %s SET outcome = ? WHERE seq = 5`, []any{OutcomeDenied}}}, 5},
			{"edit request_id", []stmt{{`UPDATE %s SET request_id = ? WHERE seq = 5`, []any{"req-x"}}}, 5},
			{"edit client_address", []stmt{{`UPDATE %s SET client_address = ? WHERE seq = 5`, []any{"10.0.0.1"}}}, 5},
			{"edit prev_hash", []stmt{{`UPDATE %s SET prev_hash = ? WHERE seq = 5`, []any{rows[3].Hash}}}, 5},
			{"edit hash", []stmt{{`UPDATE %s SET hash = ? WHERE seq = 5`, []any{strings.Repeat("a", 64)}}}, 5},
			{"edit seq", []stmt{{`UPDATE %s SET seq = 50 WHERE seq = 5`, nil}}, 5},
			// Moving text between neighbouring fields keeps their concatenation: the length
			// prefixes still tell the difference.
			{"shift between fields", []stmt{{`UPDATE %s SET role = ?, action = ? WHERE seq = 5`,
				[]any{rows[5].Role + rows[5].Action[:3], rows[5].Action[3:]}}}, 5},
			{"delete middle row", []stmt{{`DELETE FROM %s WHERE seq = 5`, nil}}, 5},
			{"delete first row", []stmt{{`DELETE FROM %s WHERE seq = 1`, nil}}, 1},
			{"swap two rows' hashes", []stmt{
				{`UPDATE %s SET hash = ? WHERE seq = 3`, []any{rows[7].Hash}},
				{`UPDATE %s SET hash = ? WHERE seq = 7`, []any{rows[3].Hash}},
			}, 3},
			{"reorder two rows", []stmt{
				{`UPDATE %s SET seq = 1003 WHERE seq = 3`, nil},
				{`UPDATE %s SET seq = 3 WHERE seq = 7`, nil},
				{`UPDATE %s SET seq = 7 WHERE seq = 1003`, nil},
			}, 3},
			{"delete and renumber", []stmt{
				{`DELETE FROM %s WHERE seq = 5`, nil},
				{`UPDATE %s SET seq = seq - 1 WHERE seq > 5`, nil},
			}, 5},
			{"insert in the middle", []stmt{
				{`UPDATE %s SET seq = seq + 1 WHERE seq >= 5`, nil},
				{`INSERT INTO %s (` + columns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, []any{
					forged.Seq, forged.ID, d.Time(forged.At), forged.Actor, forged.Role, forged.Action,
					forged.SubjectID, forged.Outcome, forged.RequestID, forged.ClientAddress, forged.PrevHash, forged.Hash}},
			}, 6},
			{"append a forged row", []stmt{
				{`INSERT INTO %s (` + columns + `) VALUES (11, 'x', ?, 'a', 'r', 'act', 's', 'o', 'q', 'c', ?, ?)`,
					[]any{d.Time(time.Now()), rows[10].Hash, strings.Repeat("b", 64)}},
			}, 11},
			{"duplicate a row", []stmt{{`INSERT INTO %s SELECT * FROM %[1]s WHERE seq = 4`, nil}}, 4},
		}
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				table := fmt.Sprintf("tampered_%d", i)
				if _, err := d.ExecContext(ctx, `CREATE TABLE `+table+` AS SELECT * FROM audit_log`); err != nil {
					t.Fatal(err)
				}
				for _, s := range c.edits {
					q := d.Rebind(fmt.Sprintf(s.sql, table))
					if _, err := d.ExecContext(ctx, q, s.args...); err != nil {
						t.Fatalf("%s: %v", q, err)
					}
				}
				rep, err := Verify(ctx, d, table)
				if err != nil {
					t.Fatal(err)
				}
				if rep.OK || rep.FirstBadSeq != c.bad || rep.Problem == "" {
					t.Fatalf("Verify = %+v; want FirstBadSeq %d", rep, c.bad)
				}
			})
		}

		// Cutting rows off the end leaves a valid, shorter chain: only an anchor kept
		// elsewhere (LastHash) shows it.
		full := mustVerify(t, d, "", 10)
		if _, err := d.ExecContext(ctx, `CREATE TABLE truncated AS SELECT * FROM audit_log WHERE seq <= 8`); err != nil {
			t.Fatal(err)
		}
		short := mustVerify(t, d, "truncated", 8)
		if short.LastHash == full.LastHash || full.LastHash != rows[10].Hash {
			t.Fatalf("LastHash: full %s short %s, want them to differ", full.LastHash, short.LastHash)
		}
	})
}

func TestGroupCommit(t *testing.T) {
	dbtest.Each(t, db.Sets{Migrations}, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		reg := prometheus.NewRegistry()
		g := newGate()
		w := newWriter(t, d, Options{Service: "patient", AfterBatch: g.hook, Registerer: reg})

		first := g.holdFirst(t, w)
		// 49 more callers arrive while the first batch is being committed...
		const n = 50
		errc := make(chan error, n-1)
		for i := 1; i < n; i++ {
			go func() { errc <- w.Append(ctx, sample(i)) }()
		}
		waitQueued(t, w, n-1)
		close(g.release)
		// ...and all of them share the next transaction.
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		for range n - 1 {
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		}
		if st := w.Stats(); st.Batches != 2 || st.Entries != n || st.Failures != 0 {
			t.Fatalf("Stats = %+v; want 2 batches for %d entries", st, n)
		}
		mustVerify(t, d, "", n)
		got, err := List(ctx, d, "", Query{Limit: MaxListLimit})
		if err != nil || len(got) != n {
			t.Fatalf("List: %d entries, %v", len(got), err)
		}
		for i, e := range got {
			if e.Seq != int64(n-i) {
				t.Fatalf("entry %d has seq %d, want %d", i, e.Seq, n-i)
			}
		}

		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		metric := func(name string) *dto.Metric {
			for _, mf := range mfs {
				if mf.GetName() == name {
					return mf.GetMetric()[0]
				}
			}
			t.Fatalf("metric %s not registered", name)
			return nil
		}
		if h := metric("pms_patient_audit_batch_size").GetHistogram(); h.GetSampleCount() != 2 || h.GetSampleSum() != n {
			t.Fatalf("batch size histogram: count %d sum %v; want 2, %d", h.GetSampleCount(), h.GetSampleSum(), n)
		}
		if c := metric("pms_patient_audit_entries_written_total").GetCounter().GetValue(); c != n {
			t.Fatalf("entries written = %v, want %d", c, n)
		}
		if c := metric("pms_patient_audit_batch_failures_total").GetCounter().GetValue(); c != 0 {
			t.Fatalf("failures = %v, want 0", c)
		}
		if h := metric("pms_patient_audit_batch_duration_seconds").GetHistogram(); h.GetSampleCount() != 2 {
			t.Fatalf("duration samples = %d, want 2", h.GetSampleCount())
		}
	})
}

// TestConcurrentAppendsUnheld lets 50 callers race with no help: whatever batches form, every
// entry is committed once and the chain is one line.
func TestConcurrentAppendsUnheld(t *testing.T) {
	dbtest.Each(t, db.Sets{Migrations}, func(t *testing.T, d *db.DB) {
		w := newWriter(t, d, Options{MaxBatch: 8})
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Go(func() {
				if err := w.Append(context.Background(), sample(i)); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		mustVerify(t, d, "", 50)
		if st := w.Stats(); st.Entries != 50 || st.Batches < 7 || st.Batches > 50 {
			t.Fatalf("Stats = %+v; want 50 entries in 7..50 batches of at most 8", st)
		}
	})
}

func TestBatchSplitIntoSeveralStatements(t *testing.T) {
	dbtest.Each(t, db.Sets{Migrations}, func(t *testing.T, d *db.DB) {
		g := newGate()
		w := newWriter(t, d, Options{AfterBatch: g.hook})
		w.rowsPerStmt = 3 // set before the first Append hands anything to the goroutine
		first := g.holdFirst(t, w)
		errc := make(chan error, 10)
		for i := range 10 {
			go func() { errc <- w.Append(context.Background(), sample(i)) }()
		}
		waitQueued(t, w, 10)
		close(g.release)
		for range 11 {
			select {
			case err := <-first:
				if err != nil {
					t.Fatal(err)
				}
			case err := <-errc:
				if err != nil {
					t.Fatal(err)
				}
			}
		}
		if st := w.Stats(); st.Batches != 2 {
			t.Fatalf("Stats = %+v; want the 10 in one batch", st)
		}
		mustVerify(t, d, "", 11)
	})
}

func TestAfterBatchErrorRollsBackTheBatch(t *testing.T) {
	dbtest.Each(t, db.Sets{Migrations}, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		var hookSaw atomic.Int64
		var fail atomic.Bool
		g := newGate()
		g.next = func(ctx context.Context, tx db.Execer, entries []Entry) error {
			// The hook sees the entries as stored: numbered and chained.
			if entries[0].Seq == 0 || entries[0].Hash == "" || entries[len(entries)-1].Seq != entries[0].Seq+int64(len(entries))-1 {
				return fmt.Errorf("hook saw entries not chained: first %+v", entries[0])
			}
			hookSaw.Add(int64(len(entries)))
			if fail.Load() && len(entries) > 1 { // the held batch of one passes
				return errors.New("outbox is broken")
			}
			return nil
		}
		w := newWriter(t, d, Options{AfterBatch: g.hook})
		first := g.holdFirst(t, w) // batch 1 succeeds
		fail.Store(true)           // batch 2, five entries queued behind it, fails
		errc := make(chan error, 5)
		for i := range 5 {
			go func() { errc <- w.Append(ctx, sample(i)) }()
		}
		waitQueued(t, w, 5)
		close(g.release)
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		for range 5 {
			if err := <-errc; errs.KindOf(err) != errs.Unavailable {
				t.Fatalf("Append in failed batch = %v; want unavailable", err)
			}
		}
		if n := count(t, d); n != 1 {
			t.Fatalf("%d rows after the failed batch, want 1", n)
		}
		if st := w.Stats(); st.Failures != 1 || st.Entries != 1 || hookSaw.Load() != 6 {
			t.Fatalf("Stats = %+v, hook saw %d", st, hookSaw.Load())
		}

		fail.Store(false)
		e, err := w.Write(ctx, sample(9))
		if err != nil || e.Seq != 2 {
			t.Fatalf("Write after failure = seq %d, %v; want seq 2", e.Seq, err)
		}
		mustVerify(t, d, "", 2)
	})
}

func TestPanickingHookFailsOnlyItsBatch(t *testing.T) {
	dbtest.Each(t, db.Sets{Migrations}, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		var panicked atomic.Bool
		w := newWriter(t, d, Options{AfterBatch: func(context.Context, db.Execer, []Entry) error {
			if panicked.CompareAndSwap(false, true) {
				panic("bug in hook")
			}
			return nil
		}})
		if err := w.Append(ctx, sample(1)); errs.KindOf(err) != errs.Unavailable {
			t.Fatalf("Append with panicking hook = %v; want unavailable", err)
		}
		if err := w.Append(ctx, sample(2)); err != nil {
			t.Fatal(err)
		}
		mustVerify(t, d, "", 1)
	})
}

// twoPools opens one migrated PostgreSQL schema through two pools, as two processes would.
func twoPools(t *testing.T) (*db.DB, *db.DB) {
	t.Helper()
	d1 := dbtest.Open(t, db.Postgres, db.Sets{Migrations})
	d2, err := db.Open(context.Background(), dbtest.PostgresURL(), d1.Schema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d2.Close() })
	return d1, d2
}

// TestTwoWritersShareOneTable simulates two processes (two pools, two writers) on one
// PostgreSQL table: the advisory lock keeps them from forking or colliding on seq.
func TestTwoWritersShareOneTable(t *testing.T) {
	d1, d2 := twoPools(t)
	ctx := context.Background()
	ws := []*Writer{newWriter(t, d1, Options{MaxBatch: 4}), newWriter(t, d2, Options{MaxBatch: 4})}
	// Another table in the same schema has its own lock and chain.
	if _, err := d1.ExecContext(ctx, `CREATE TABLE audit_other AS SELECT * FROM audit_log`); err != nil {
		t.Fatal(err)
	}
	other := newWriter(t, d2, Options{Table: "audit_other"})
	if ws[0].lockKey != ws[1].lockKey || other.lockKey == ws[0].lockKey {
		t.Fatal("lock keys: writers of one table must share a key, other tables must not")
	}

	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for j := range 20 {
				if err := ws[i%2].Append(ctx, sample(i*100+j)); err != nil {
					t.Error(err)
					return
				}
				if j%5 == 0 {
					if err := other.Append(ctx, sample(j)); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	mustVerify(t, d1, "", 320)
	mustVerify(t, d2, "audit_other", 64)
	if a, b := ws[0].Stats(), ws[1].Stats(); a.Entries != 160 || b.Entries != 160 {
		t.Fatalf("Stats = %+v, %+v", a, b)
	}
}

func TestCloseFlushesAndRefusesLaterAppends(t *testing.T) {
	dbtest.Each(t, db.Sets{Migrations}, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		g := newGate()
		w := NewWriter(d, Options{AfterBatch: g.hook})
		first := g.holdFirst(t, w)
		errc := make(chan error, 5)
		for i := range 5 {
			go func() { errc <- w.Append(ctx, sample(i)) }()
		}
		waitQueued(t, w, 5)

		closed := make(chan error, 1)
		go func() { closed <- w.Close(ctx) }()
		deadline := time.Now().Add(30 * time.Second)
		for !w.isClosed() {
			if time.Now().After(deadline) {
				t.Fatal("Close never marked the writer closed")
			}
			time.Sleep(time.Millisecond)
		}
		if err := w.Append(ctx, sample(9)); errs.KindOf(err) != errs.Unavailable {
			t.Fatalf("Append after Close = %v; want unavailable", err)
		}
		select {
		case err := <-closed:
			t.Fatalf("Close returned %v before the queue was flushed", err)
		default:
		}

		close(g.release)
		if err := <-closed; err != nil {
			t.Fatalf("Close = %v", err)
		}
		<-w.done // the goroutine has exited
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		for range 5 {
			if err := <-errc; err != nil {
				t.Fatalf("queued Append = %v; want it flushed", err)
			}
		}
		mustVerify(t, d, "", 6)
		if err := w.Close(ctx); err != nil {
			t.Fatalf("second Close = %v", err)
		}
	})
}

// TestCloseGivesUpWithContext: a Close whose context ends aborts the stuck batch, fails what
// is queued, and still leaves no goroutine behind.
func TestCloseGivesUpWithContext(t *testing.T) {
	dbtest.Each(t, db.Sets{Migrations}, func(t *testing.T, d *db.DB) {
		g := newGate() // never released: only the writer's own context can end the hold
		w := NewWriter(d, Options{AfterBatch: g.hook})
		first := g.holdFirst(t, w)
		errc := make(chan error, 3)
		for i := range 3 {
			go func() { errc <- w.Append(context.Background(), sample(i)) }()
		}
		waitQueued(t, w, 3)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := w.Close(ctx); err == nil {
			t.Fatal("Close with an ended context = nil; want an error")
		}
		<-w.done
		for range 3 {
			if err := <-errc; errs.KindOf(err) != errs.Unavailable {
				t.Fatalf("queued Append = %v; want unavailable", err)
			}
		}
		if err := <-first; errs.KindOf(err) != errs.Unavailable {
			t.Fatalf("held Append = %v; want unavailable", err)
		}
		mustVerify(t, d, "", 0)
	})
}

func TestAppendContext(t *testing.T) {
	dbtest.Each(t, db.Sets{Migrations}, func(t *testing.T, d *db.DB) {
		g := newGate()
		w := newWriter(t, d, Options{AfterBatch: g.hook})
		first := g.holdFirst(t, w)

		expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel()
		if err := w.Append(expired, sample(1)); errs.KindOf(err) != errs.Timeout {
			t.Fatalf("Append with expired deadline = %v; want timeout", err)
		}

		// A caller that gives up while queued gets its context's error at once, and its entry
		// is dropped rather than written behind its back.
		ctx, cancel2 := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- w.Append(ctx, sample(2)) }()
		waitQueued(t, w, 1)
		cancel2()
		if err := <-errc; errs.KindOf(err) != errs.Canceled || !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Append = %v; want canceled wrapping context.Canceled (a caller gone is not an outage)", err)
		}

		close(g.release)
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		e, err := w.Write(context.Background(), sample(3))
		if err != nil || e.Seq != 2 {
			t.Fatalf("Write after cancellations = seq %d, %v; want seq 2", e.Seq, err)
		}
		mustVerify(t, d, "", 2)
	})
}

func TestAppendValidates(t *testing.T) {
	d := dbtest.Open(t, db.SQLite, db.Sets{Migrations})
	w := newWriter(t, d, Options{})
	for _, e := range []Entry{
		{Action: "", Outcome: OutcomeSuccess},
		{Action: "patient.read", Actor: "bad\xffutf8"},
		{Action: "patient.read", SubjectID: "nul\x00byte"},
	} {
		if err := w.Append(context.Background(), e); errs.KindOf(err) != errs.InvalidArgument {
			t.Fatalf("Append(%q) = %v; want invalid_argument", e.Actor+e.SubjectID, err)
		}
	}
	// Caller-chosen id and time are kept (time to the microsecond, in UTC).
	at := time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.FixedZone("X", 3600))
	e, err := w.Write(context.Background(), Entry{ID: "fixed-id", At: at, Action: "login", Seq: 99, Hash: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if e.ID != "fixed-id" || !e.At.Equal(at.Truncate(time.Microsecond)) || e.At.Location() != time.UTC || e.Seq != 1 {
		t.Fatalf("Write = %+v", e)
	}
	mustVerify(t, d, "", 1)
}

func TestList(t *testing.T) {
	dbtest.Each(t, db.Sets{Migrations}, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		w := newWriter(t, d, Options{})
		base := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
		var all []Entry // oldest first
		for i := range 30 {
			e := sample(i)
			e.At = base.Add(time.Duration(i)*time.Minute + 1500*time.Nanosecond) // ns are dropped
			stored, err := w.Write(ctx, e)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, stored)
		}
		want := func(keep func(i int, e Entry) bool) []Entry {
			var out []Entry
			for i := len(all) - 1; i >= 0; i-- {
				if keep(i, all[i]) {
					out = append(out, all[i])
				}
			}
			return out
		}
		check := func(name string, q Query, exp []Entry) {
			t.Helper()
			got, err := List(ctx, d, "audit_log", q)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if len(got) != len(exp) {
				t.Fatalf("%s: %d entries, want %d", name, len(got), len(exp))
			}
			for i := range got {
				g, x := got[i], exp[i]
				if !g.At.Equal(x.At) {
					t.Fatalf("%s: entry %d at %v, want %v", name, i, g.At, x.At)
				}
				g.At, x.At = time.Time{}, time.Time{}
				if !reflect.DeepEqual(g, x) {
					t.Fatalf("%s: entry %d = %+v, want %+v", name, i, g, x)
				}
			}
		}
		check("all", Query{}, want(func(int, Entry) bool { return true }))
		check("subject", Query{SubjectID: "patient-1"}, want(func(i int, _ Entry) bool { return i%3 == 1 }))
		check("actor and subject", Query{Actor: "user-0", SubjectID: "patient-0"},
			want(func(i int, _ Entry) bool { return i%2 == 0 && i%3 == 0 }))
		check("from inclusive, to exclusive", Query{From: all[10].At, To: all[20].At},
			want(func(i int, _ Entry) bool { return i >= 10 && i < 20 }))
		check("from only", Query{From: all[25].At}, want(func(i int, _ Entry) bool { return i >= 25 }))
		check("limit", Query{Limit: 7}, want(func(i int, _ Entry) bool { return i >= 23 }))
		check("unknown subject", Query{SubjectID: "nobody"}, nil)

		// Paging with BeforeSeq walks the same entries as one big page, in order.
		var paged []Entry
		q := Query{SubjectID: "patient-2", Limit: 3}
		for {
			page, err := List(ctx, d, "", q)
			if err != nil {
				t.Fatal(err)
			}
			paged = append(paged, page...)
			if len(page) < q.Limit {
				break
			}
			q.BeforeSeq = page[len(page)-1].Seq
		}
		check("paged", Query{SubjectID: "patient-2"}, paged)
		if len(paged) != 10 {
			t.Fatalf("paging found %d entries, want 10", len(paged))
		}

		if _, err := List(ctx, d, "audit_log; DROP TABLE patients", Query{}); err == nil {
			t.Fatal("List accepted an invalid table name")
		}
	})
}

// isClosed reports whether Close has begun; tests use it to know when to expect refusals.
func (w *Writer) isClosed() bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.closed
}

// TestUnavailableBatchIsRetried: a batch that fails because the database is unavailable (a
// terminated connection) is retried on a fresh one and written once, so the change it
// audits is not acknowledged without its entry.
func TestUnavailableBatchIsRetried(t *testing.T) {
	dbtest.Each(t, db.Sets{Migrations}, func(t *testing.T, d *db.DB) {
		var calls atomic.Int64
		w := newWriter(t, d, Options{AfterBatch: func(context.Context, db.Execer, []Entry) error {
			if calls.Add(1) <= 2 {
				return errs.New(errs.Unavailable, "connection terminated")
			}
			return nil
		}})
		e, err := w.Write(context.Background(), sample(1))
		if err != nil || e.Seq != 1 || calls.Load() != 3 {
			t.Fatalf("Write = seq %d, %v after %d attempts; want seq 1 on the third", e.Seq, err, calls.Load())
		}
		if n := count(t, d); n != 1 {
			t.Fatalf("%d rows, want 1", n)
		}
		mustVerify(t, d, "", 1)
	})
}

// TestChangeOutlivesTheCaller: the audit entry of a committed change is written even when
// the caller's context is already cancelled (a client that hung up right after the commit),
// and so is a refusal's; a read's audit still fails with the caller (issue 13).
func TestChangeOutlivesTheCaller(t *testing.T) {
	dbtest.Each(t, db.Sets{Migrations}, func(t *testing.T, d *db.DB) {
		w := newWriter(t, d, Options{})
		r := Recorder{W: w}
		gone, cancel := context.WithCancel(context.Background())
		cancel()
		r.Change(gone, "patient.create", "p-1", nil)
		Denied(w, map[string]string{"patient.read": "read"}, func(any) string { return "p-2" })(gone, "patient.read", nil, nil)
		if _, err := Read(r, gone, "patient.read", "p-3", 1, nil); errs.KindOf(err) != errs.Canceled {
			t.Fatalf("read audited for a caller gone = %v; want canceled", err)
		}
		var subjects []string
		if err := d.SelectContext(context.Background(), &subjects, `SELECT subject_id FROM audit_log ORDER BY seq`); err != nil {
			t.Fatal(err)
		}
		if len(subjects) != 2 || subjects[0] != "p-1" || subjects[1] != "p-2" {
			t.Fatalf("audit rows for a caller gone = %v; want [p-1 p-2] (the change and the refusal)", subjects)
		}
	})
}

// TestPipelinedBatchesFollowAnotherWriter: on PostgreSQL a batch of appended entries takes two
// round trips, the second hashed onto the tail the first read under the lock, so a writer whose
// table another process's writer appended to meanwhile chains onto that writer's entry.
func TestPipelinedBatchesFollowAnotherWriter(t *testing.T) {
	d1, d2 := twoPools(t)
	ctx := context.Background()
	w1, w2 := newWriter(t, d1, Options{}), newWriter(t, d2, Options{})
	write := func(w *Writer, i int) Entry {
		t.Helper()
		e, err := w.Write(ctx, sample(i))
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	write(w1, 0)
	write(w1, 1)
	other := write(w2, 2)
	e := write(w1, 3)
	if e.Seq != other.Seq+1 || e.PrevHash != other.Hash {
		t.Fatalf("entry chained at seq %d onto %q; want %d onto the other writer's %q", e.Seq, e.PrevHash, other.Seq+1, other.Hash)
	}
	if s1, s2 := w1.Stats(), w2.Stats(); s1.Pipelined != 3 || s2.Pipelined != 1 {
		t.Fatalf("stats %+v, %+v; want every batch pipelined", s1, s2)
	}
	mustVerify(t, d1, "", 4)
}

// TestPipelinedBatchFailureWritesNothing: a statement of a pipelined batch that fails (here a
// hook's) rolls the whole batch back, fails its callers, and leaves the connection clean: with
// a pool of one connection the next batch would otherwise fail too.
func TestPipelinedBatchFailureWritesNothing(t *testing.T) {
	d := dbtest.Open(t, db.Postgres, db.Sets{Migrations})
	d.SetPoolSize(1)
	ctx := context.Background()
	var fail atomic.Bool
	w := newWriter(t, d, Options{AfterBatch: func(ctx context.Context, tx db.Execer, entries []Entry) error {
		if fail.Load() {
			_, err := tx.ExecContext(ctx, `INSERT INTO no_such_table VALUES (1)`)
			return err
		}
		return nil
	}})
	for i := range 2 {
		if err := w.Append(ctx, sample(i)); err != nil {
			t.Fatal(err)
		}
	}
	fail.Store(true)
	if err := w.Append(ctx, sample(2)); errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("Append in a failing batch = %v; want unavailable", err)
	}
	if s := w.Stats(); s.Pipelined != 2 || s.Failures != 1 {
		t.Fatalf("stats %+v; want two pipelined batches and one failure", s)
	}
	mustVerify(t, d, "", 2)
	fail.Store(false)
	if err := w.Append(ctx, sample(3)); err != nil {
		t.Fatalf("Append after a failed batch = %v", err)
	}
	mustVerify(t, d, "", 3)
}
