package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/platform/errs"
)

// Execer runs a statement without reading its rows. *sqlx.Tx and *sqlx.DB are Execers, and
// so is a Pipeline, which only queues the statement. A hook that writes inside a transaction
// someone else runs (the audit writer's AfterBatch and Checkpoint) takes an Execer, so that
// transaction may send the hook's statements together with its own.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	Rebind(query string) string
}

// Pipeline is a PostgreSQL transaction whose statements are queued and then sent together
// (pgx's pipeline mode): the begin, every statement and the reading of their results cost one
// round trip, and the commit a second. database/sql spends a round trip on each, and on a
// busy machine each round trip waits for both processes to be scheduled: a group commit that
// every waiting request depends on is then mostly waiting. Build one with Pipelined.
type Pipeline struct {
	b pgx.Batch
}

// ExecContext queues query (placeholders already $n). Its result is known only when the
// pipeline is sent, so the sql.Result answers no count; an error is the pipeline's.
func (p *Pipeline) ExecContext(_ context.Context, query string, args ...any) (sql.Result, error) {
	p.b.Queue(query, args...)
	return queued{}, nil
}

// Rebind turns ? placeholders into PostgreSQL's $n.
func (p *Pipeline) Rebind(query string) string { return sqlx.Rebind(sqlx.DOLLAR, query) }

// QueryRow queues query, whose first row scan reads when the results arrive; a query that
// returns no row calls scan with a row whose Scan answers sql.ErrNoRows.
func (p *Pipeline) QueryRow(query string, scan func(row interface{ Scan(dest ...any) error }) error, args ...any) {
	p.b.Queue(query, args...).QueryRow(func(row pgx.Row) error { return scan(noRows{row}) })
}

// noRows reports pgx's "no rows" as database/sql's, so callers test one error.
type noRows struct{ pgx.Row }

func (r noRows) Scan(dest ...any) error {
	if err := r.Row.Scan(dest...); errors.Is(err, pgx.ErrNoRows) {
		return sql.ErrNoRows
	} else {
		return err
	}
}

type queued struct{}

var errQueued = errors.New("db: a pipelined statement's count is not known until it is sent")

func (queued) LastInsertId() (int64, error) { return 0, errQueued }
func (queued) RowsAffected() (int64, error) { return 0, errQueued }

// Pipelined runs a transaction on PostgreSQL in two round trips: build queues its statements
// on p; they are sent after a begin, and once the results are in (the QueryRow scans that
// could run have run) check decides: nil commits, an error rolls back and is returned as it
// is. check runs even when a statement failed, so it can name what its scans saw as the
// cause; when it returns nil the statement's error is returned, classified (Classify). The
// connection is one of d's pool, used through pgx itself; one left in doubt (a failed
// rollback) is closed, never returned to the pool mid-transaction. Only PostgreSQL
// pipelines: on SQLite it is an error.
func (d *DB) Pipelined(ctx context.Context, build func(p *Pipeline) error, check func() error) error {
	if d.Dialect != Postgres {
		return fmt.Errorf("db: pipelining needs PostgreSQL")
	}
	var p Pipeline
	p.b.BeginTx(pgx.TxOptions{})
	if err := build(&p); err != nil {
		return err
	}
	tctx, cancel := detach(ctx)
	defer cancel()
	conn, err := d.Conn(tctx)
	if err != nil {
		return Classify(err)
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		c := dc.(*stdlib.Conn).Conn()
		br := c.SendBatch(ctx, &p.b)
		tx := br.Tx()
		err := br.Close()
		if cerr := check(); cerr != nil {
			err = cerr
		} else if err != nil {
			err = Classify(err)
		} else {
			if err := tx.Commit(tctx); err != nil {
				if cerr := errs.FromContext(ctx.Err(), "the database did not answer in time"); cerr != nil {
					return cerr
				}
				return Classify(err)
			}
			return nil
		}
		if rerr := tx.Rollback(tctx); rerr != nil && !errors.Is(rerr, pgx.ErrTxClosed) {
			// In doubt: the pool must not hand out a connection in a transaction.
			_ = c.Close(context.WithoutCancel(tctx))
		}
		return err
	})
}
