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

// TestPipelined: a pipelined transaction commits what both its round trips queued, the second
// built from what the first read; any error writes nothing of either and leaves the connection
// clean for the next user. The pool holds one connection, so a connection left
// mid-transaction would fail the next step.
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
	none := func(*db.Pipeline) error { return nil }

	// The first round trip writes and reads; the second is built from what it read.
	var seen int
	err := d.Pipelined(ctx, func(p *db.Pipeline) error {
		if err := insert(1, 2)(p); err != nil {
			return err
		}
		p.QueryRow(`SELECT count(*) FROM piped`, func(row interface{ Scan(...any) error }) error { return row.Scan(&seen) })
		return nil
	}, func(p *db.Pipeline) error { return insert(seen + 1)(p) })
	if err != nil || seen != 2 || count() != 3 {
		t.Fatalf("Pipelined = %v, read %d, %d rows; want committed, read 2, 3 rows", err, seen, count())
	}

	// then refuses: nothing of either round trip is written, its error returned as it is.
	refused := errors.New("refused")
	if err := d.Pipelined(ctx, insert(4), func(*db.Pipeline) error { return refused }); !errors.Is(err, refused) || count() != 3 {
		t.Fatalf("refused Pipelined = %v, %d rows; want refused, 3 rows", err, count())
	}

	// A statement fails (a duplicate key) after one that succeeded, in either round trip:
	// nothing is written and the error is classified; a failed first round trip never asks then.
	asked := false
	err = d.Pipelined(ctx, insert(5, 1, 6), func(*db.Pipeline) error { asked = true; return nil })
	if errs.KindOf(err) != errs.Internal || asked || count() != 3 {
		t.Fatalf("failing first round trip: %v (then asked %v), %d rows; want internal, not asked, 3 rows", err, asked, count())
	}
	err = d.Pipelined(ctx, insert(7), insert(8, 2, 9))
	if errs.KindOf(err) != errs.Internal || count() != 3 {
		t.Fatalf("failing second round trip: %v, %d rows; want internal, 3 rows", err, count())
	}

	// A read with no row scans sql.ErrNoRows; an error building the first sends nothing.
	var noRow error
	err = d.Pipelined(ctx, func(p *db.Pipeline) error {
		p.QueryRow(`SELECT x FROM piped WHERE x = 99`, func(row interface{ Scan(...any) error }) error {
			var x int
			noRow = row.Scan(&x)
			return nil
		})
		return nil
	}, none)
	if err != nil || !errors.Is(noRow, sql.ErrNoRows) {
		t.Fatalf("no-row read: Pipelined = %v, scan = %v; want nil, sql.ErrNoRows", err, noRow)
	}
	if err := d.Pipelined(ctx, func(*db.Pipeline) error { return refused }, none); !errors.Is(err, refused) {
		t.Fatalf("build error: Pipelined = %v", err)
	}

	// The one connection is clean: the next pipeline commits, and no transaction is left open.
	if err := d.Pipelined(ctx, insert(10), none); err != nil || count() != 4 {
		t.Fatalf("last Pipelined = %v, %d rows; want 4", err, count())
	}
	// A transaction left open after an insert would still hold its transaction id.
	var inTx bool
	if err := d.GetContext(ctx, &inTx, `SELECT pg_current_xact_id_if_assigned() IS NOT NULL`); err != nil || inTx {
		t.Fatalf("the connection is still in a transaction (%v)", err)
	}
}

// TestPipelinedNeedsPostgres: SQLite has no pipeline; asking for one is an error, not a
// silent transaction of another kind.
func TestPipelinedNeedsPostgres(t *testing.T) {
	d := dbtest.Open(t, db.SQLite, nil)
	none := func(*db.Pipeline) error { return nil }
	if err := d.Pipelined(context.Background(), none, none); err == nil {
		t.Fatal("Pipelined on SQLite = nil; want an error")
	}
}
