package db_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
)

// TestPipelined: a pipelined transaction commits when its statements and its check pass, and
// otherwise writes nothing and leaves its connection clean for the next user. The pool holds
// one connection, so a connection left mid-transaction would fail the next step.
func TestPipelined(t *testing.T) {
	d := dbtest.Open(t, db.Postgres, nil)
	d.SetPoolSize(1)
	ctx := context.Background()
	if _, err := d.ExecContext(ctx, `CREATE TABLE piped (x INT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	count := func() (n int) {
		t.Helper()
		if err := d.GetContext(ctx, &n, `SELECT count(*) FROM piped`); err != nil {
			t.Fatal(err)
		}
		return n
	}
	insert := func(xs ...int) func(p *db.Pipeline) error {
		return func(p *db.Pipeline) error {
			for _, x := range xs {
				if res, err := p.ExecContext(ctx, p.Rebind(`INSERT INTO piped (x) VALUES (?)`), x); err != nil {
					return err
				} else if _, err := res.RowsAffected(); err == nil {
					t.Error("a queued statement's count is known before it is sent")
				}
			}
			return nil
		}
	}

	// Statements and a read, then the check over what the read saw: committed.
	var seen int
	err := d.Pipelined(ctx, func(p *db.Pipeline) error {
		if err := insert(1, 2)(p); err != nil {
			return err
		}
		p.QueryRow(`SELECT count(*) FROM piped`, func(row interface{ Scan(...any) error }) error { return row.Scan(&seen) })
		return nil
	}, func() error {
		if seen != 2 {
			return errors.New("the read did not see the pipeline's own rows")
		}
		return nil
	})
	if err != nil || count() != 2 {
		t.Fatalf("Pipelined = %v, %d rows; want committed, 2 rows", err, count())
	}

	// The check refuses: rolled back, its error returned as it is.
	refused := errors.New("refused")
	if err := d.Pipelined(ctx, insert(3), func() error { return refused }); !errors.Is(err, refused) || count() != 2 {
		t.Fatalf("refused Pipelined = %v, %d rows; want refused, 2 rows", err, count())
	}

	// A statement fails (a duplicate key) after one that succeeded: nothing of it is written,
	// the error is classified, and the check still runs.
	checked := false
	err = d.Pipelined(ctx, insert(4, 1, 5), func() error { checked = true; return nil })
	if errs.KindOf(err) != errs.Internal || !checked || count() != 2 {
		t.Fatalf("failing Pipelined = %v (checked %v), %d rows; want internal, checked, 2 rows", err, checked, count())
	}

	// A read with no row scans sql.ErrNoRows; a build error sends nothing.
	var noRow error
	err = d.Pipelined(ctx, func(p *db.Pipeline) error {
		p.QueryRow(`SELECT x FROM piped WHERE x = 99`, func(row interface{ Scan(...any) error }) error {
			var x int
			noRow = row.Scan(&x)
			return nil
		})
		return nil
	}, func() error { return nil })
	if err != nil || !errors.Is(noRow, sql.ErrNoRows) {
		t.Fatalf("no-row read: Pipelined = %v, scan = %v; want nil, sql.ErrNoRows", err, noRow)
	}
	if err := d.Pipelined(ctx, func(*db.Pipeline) error { return refused }, func() error { return nil }); !errors.Is(err, refused) {
		t.Fatalf("build error: Pipelined = %v", err)
	}

	// The one connection is clean: an ordinary transaction works on it.
	if err := d.Pipelined(ctx, insert(6), func() error { return nil }); err != nil || count() != 3 {
		t.Fatalf("last Pipelined = %v, %d rows; want 3", err, count())
	}
	// A transaction left open after its insert would still hold its transaction id.
	var inTx bool
	if err := d.GetContext(ctx, &inTx, `SELECT pg_current_xact_id_if_assigned() IS NOT NULL`); err != nil || inTx {
		t.Fatalf("the connection is still in a transaction (%v)", err)
	}
}

// TestPipelinedNeedsPostgres: SQLite has no pipeline; asking for one is an error, not a
// silent transaction of another kind.
func TestPipelinedNeedsPostgres(t *testing.T) {
	d := dbtest.Open(t, db.SQLite, nil)
	if err := d.Pipelined(context.Background(), func(*db.Pipeline) error { return nil }, func() error { return nil }); err == nil {
		t.Fatal("Pipelined on SQLite = nil; want an error")
	}
}
