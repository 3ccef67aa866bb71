package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pms/pms/pkg/platform/polltest"

	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
)

// rowsIn returns the number of rows of table.
func rowsIn(t *testing.T, d *db.DB, table string) int {
	t.Helper()
	var n int
	if err := d.Get(&n, `SELECT count(*) FROM `+table); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestChangeRecordsItsOwnEntry: a change's transaction (InTx under WithPending) records its
// entry in audit_pending; a rolled-back change records nothing; Settle chains the entry (and
// empties audit_pending) and the chain verifies; Recorder.Change of the committed change adds
// no second entry.
func TestChangeRecordsItsOwnEntry(t *testing.T) {
	dbtest.Each(t, db.Sets{Migrations}, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		if _, err := d.Exec(`CREATE TABLE things (id TEXT PRIMARY KEY)`); err != nil {
			t.Fatal(err)
		}
		w := newWriter(t, d, Options{MoveInterval: time.Hour})
		rec := Recorder{W: w}
		if _, err := w.Write(ctx, sample(1)); err != nil { // the chain has a head before
			t.Fatal(err)
		}

		failed := WithPending(ctx, "thing.create", "t-0")
		boom := errors.New("boom")
		if err := InTx(failed, d, func(tx *sqlx.Tx) error { return boom }); !errors.Is(err, boom) {
			t.Fatalf("InTx = %v", err)
		}
		if n := rowsIn(t, d, PendingTable); n != 0 {
			t.Fatalf("a rolled-back change left %d pending entries", n)
		}

		cctx := WithPending(ctx, "thing.create", "t-1")
		err := InTx(cctx, d, func(tx *sqlx.Tx) error {
			_, err := tx.Exec(tx.Rebind(`INSERT INTO things (id) VALUES (?)`), "t-1")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if n := rowsIn(t, d, PendingTable); n != 1 {
			t.Fatalf("pending after the change: %d, want 1", n)
		}
		if n := rowsIn(t, d, DefaultTable); n != 1 {
			t.Fatalf("audit_log before the settle: %d rows, want 1", n)
		}
		rec.Change(cctx, "thing.create", "t-1", nil)
		if n := rowsIn(t, d, PendingTable); n != 0 {
			t.Fatalf("pending after the settle: %d", n)
		}
		got, err := List(ctx, d, "", Query{})
		if err != nil || len(got) != 2 || got[0].Action != "thing.create" || got[0].SubjectID != "t-1" || got[0].Outcome != OutcomeSuccess {
			t.Fatalf("log = %+v, %v", got, err)
		}
		mustVerify(t, d, "", 2)
		// A refused change (no commit) is audited after the fact, as before.
		rec.Change(failed, "thing.create", "t-0", boom)
		mustVerify(t, d, "", 3)
	})
}

// TestPendingMovedByTheWriter: entries whose recorder never settled them (a process that
// stopped after the commit, an outage outlasting the settle) are chained by the writer's
// own round, by a writer started later, in a chain that verifies.
func TestPendingMovedByTheWriter(t *testing.T) {
	dbtest.Each(t, db.Sets{Migrations}, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		for i := range 30 {
			if err := InTx(WithPending(ctx, "thing.update", "t"), d, func(*sqlx.Tx) error { return nil }); err != nil {
				t.Fatal(i, err)
			}
		}
		newWriter(t, d, Options{MoveInterval: 10 * time.Millisecond})
		polltest.Until(t, 10*time.Second, "the pending entries to be chained", func() bool { return rowsIn(t, d, DefaultTable) == 30 })
		if n := rowsIn(t, d, PendingTable); n != 0 {
			t.Fatalf("%d entries still pending", n)
		}
		mustVerify(t, d, "", 30)
	})
}

// TestConcurrentChangesAndReads: changes recording their entries in their own transactions
// while reads append, all through one writer: every entry is chained once, in a valid chain.
func TestConcurrentChangesAndReads(t *testing.T) {
	dbtest.Each(t, db.Sets{Migrations}, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		w := newWriter(t, d, Options{})
		rec := Recorder{W: w}
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range 10 {
					c := WithPending(ctx, "thing.update", "t")
					err := InTx(c, d, func(*sqlx.Tx) error { return nil })
					rec.Change(c, "thing.update", "t", err)
					if err := w.Append(ctx, sample(i*10+j)); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		mustVerify(t, d, "", 160)
		if n := rowsIn(t, d, PendingTable); n != 0 {
			t.Fatalf("%d entries still pending", n)
		}
	})
}

// TestAuditLogRefusesChanges: on PostgreSQL triggers refuse UPDATE, DELETE and TRUNCATE on
// audit_log, for its owner too (SQLite has no triggers here: docs/audit.md).
func TestAuditLogRefusesChanges(t *testing.T) {
	d := dbtest.Open(t, db.Postgres, db.Sets{Migrations})
	w := newWriter(t, d, Options{})
	if _, err := w.Write(context.Background(), sample(1)); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE audit_log SET actor = 'intruder' WHERE seq = 1`,
		`DELETE FROM audit_log WHERE seq = 1`,
		`TRUNCATE audit_log`,
	} {
		_, err := d.Exec(q)
		if err == nil || !strings.Contains(err.Error(), "insert-only") {
			t.Errorf("%s: %v, want refused", q, err)
		}
	}
	mustVerify(t, d, "", 1)
}

// published collects what the writer would put on the audit topic: every entry's hash and
// every signed checkpoint.
type published struct {
	mu  sync.Mutex
	pub Published
}

func (p *published) hooks(t *testing.T, keys *CheckpointKeys, service string) Options {
	return Options{
		CheckpointEvery: 7, CheckpointInterval: time.Hour,
		AfterBatch: func(_ context.Context, _ db.Execer, entries []Entry) error {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.pub.Entries == nil {
				p.pub.Entries = map[int64]string{}
			}
			for _, e := range entries {
				p.pub.Entries[e.Seq] = e.Hash
			}
			return nil
		},
		Checkpoint: func(_ context.Context, _ db.Execer, seq int64, hash string) error {
			c, err := SignCheckpoint(keys, service, seq, hash, time.Now())
			if err != nil {
				return err
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			p.pub.Checkpoints = append(p.pub.Checkpoints, c)
			return nil
		},
	}
}

// rewrite edits the actor of seq from and recomputes the hashes of every row from there on,
// with the insert-only triggers disabled: a forger with the database's owner rights who knows
// the algorithm. Verify alone then finds nothing.
func rewrite(t *testing.T, d *db.DB, from int64) {
	t.Helper()
	ctx := context.Background()
	if d.Dialect == db.Postgres {
		if _, err := d.Exec(`ALTER TABLE audit_log DISABLE TRIGGER USER`); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if _, err := d.Exec(`ALTER TABLE audit_log ENABLE TRIGGER USER`); err != nil {
				t.Fatal(err)
			}
		}()
	}
	var rows []row
	if err := d.Select(&rows, `SELECT `+columns+` FROM audit_log ORDER BY seq`); err != nil {
		t.Fatal(err)
	}
	prev := genesisHash
	for i := range rows {
		e := rows[i].entry()
		if e.Seq == from {
			e.Actor = "intruder"
		}
		if e.Seq >= from {
			e.PrevHash = prev
			e.Hash = chainHash(prev, &e)
			if _, err := d.ExecContext(ctx, d.Rebind(`UPDATE audit_log SET actor = ?, prev_hash = ?, hash = ? WHERE seq = ?`),
				e.Actor, e.PrevHash, e.Hash, e.Seq); err != nil {
				t.Fatal(err)
			}
		}
		prev = e.Hash
	}
	if rep, err := Verify(ctx, d, ""); err != nil || !rep.OK {
		t.Fatalf("the rewrite should pass the chain check: %+v %v", rep, err)
	}
}

// TestVerifyAgainstTopicCatchesARecomputedChain: a rewrite that recomputes the whole chain
// passes Verify but not VerifyAgainst, which names the rewritten seq (from the published
// entries), or the first checkpoint after it (from the signed checkpoints alone); a cut tail
// is caught; a forged or unknown-key checkpoint is refused; old checkpoints still verify after
// a key rotation.
func TestVerifyAgainstTopicCatchesARecomputedChain(t *testing.T) {
	dbtest.Each(t, db.Sets{Migrations}, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "keys.json")
		keys, created, err := OpenCheckpointKeys(path)
		if err != nil || !created {
			t.Fatal(created, err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("key file mode: %v %v", fi.Mode(), err)
		}
		var p published
		w := newWriter(t, d, p.hooks(t, keys, "patient"))
		for i := 1; i <= 10; i++ {
			if _, err := w.Write(ctx, sample(i)); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := RotateCheckpointKeyFile(path, time.Now()); err != nil {
			t.Fatal(err)
		}
		for i := 11; i <= 20; i++ {
			if _, err := w.Write(ctx, sample(i)); err != nil {
				t.Fatal(err)
			}
		}
		pubKeys, err := CheckpointPublicKeys(path)
		if err != nil || len(pubKeys) != 2 {
			t.Fatalf("public keys: %d %v", len(pubKeys), err)
		}
		p.mu.Lock()
		pub := p.pub
		p.mu.Unlock()
		kids := map[string]bool{}
		for _, c := range pub.Checkpoints {
			kids[c.KeyID] = true
		}
		if len(pub.Checkpoints) < 2 || len(kids) != 2 {
			t.Fatalf("checkpoints %d by %d keys; want several by both keys", len(pub.Checkpoints), len(kids))
		}
		if rep, err := VerifyAgainst(ctx, d, "", "patient", pub, pubKeys); err != nil || !rep.OK || rep.LastSeq != 20 {
			t.Fatalf("untouched log: %+v %v", rep, err)
		}
		// Another service's key does not verify this service's checkpoints.
		other, _, _ := OpenCheckpointKeys(filepath.Join(t.TempDir(), "other.json"))
		if rep, _ := VerifyAgainst(ctx, d, "", "patient", pub, other.PublicKeys()); rep.OK || !strings.Contains(rep.Problem, "unknown key") {
			t.Fatalf("checkpoints under unknown keys: %+v", rep)
		}
		forged := pub
		forged.Checkpoints = append([]Checkpoint{}, pub.Checkpoints...)
		forged.Checkpoints[0].Hash = strings.Repeat("f", 64)
		if rep, _ := VerifyAgainst(ctx, d, "", "patient", forged, pubKeys); rep.OK || rep.FirstBadSeq != forged.Checkpoints[0].Seq {
			t.Fatalf("forged checkpoint: %+v", rep)
		}

		rewrite(t, d, 9)
		rep, err := VerifyAgainst(ctx, d, "", "patient", pub, pubKeys)
		if err != nil || rep.OK || rep.FirstBadSeq != 9 {
			t.Fatalf("recomputed chain against the topic: %+v %v; want first bad seq 9", rep, err)
		}
		onlyCheckpoints := Published{Checkpoints: pub.Checkpoints}
		rep, err = VerifyAgainst(ctx, d, "", "patient", onlyCheckpoints, pubKeys)
		firstAfter := int64(0)
		for _, c := range pub.Checkpoints {
			if c.Seq >= 9 && (firstAfter == 0 || c.Seq < firstAfter) {
				firstAfter = c.Seq
			}
		}
		if err != nil || rep.OK || rep.FirstBadSeq != firstAfter {
			t.Fatalf("recomputed chain against the checkpoints: %+v %v; want first bad seq %d", rep, err, firstAfter)
		}

		// A cut tail: the topic names entries the table no longer has.
		if d.Dialect == db.Postgres {
			if _, err := d.Exec(`ALTER TABLE audit_log DISABLE TRIGGER USER`); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := d.Exec(`DELETE FROM audit_log WHERE seq > 15`); err != nil {
			t.Fatal(err)
		}
		rep, _ = VerifyAgainst(ctx, d, "", "patient", Published{Entries: map[int64]string{20: pub.Entries[20]}}, pubKeys)
		if rep.OK || rep.FirstBadSeq != 16 {
			t.Fatalf("cut tail: %+v; want first bad seq 16", rep)
		}
		_ = ed25519.PublicKeySize
	})
}
