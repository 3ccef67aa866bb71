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

// Pipeline queues statements to send together (pgx's pipeline mode): a round trip for all of
// them, where database/sql spends one on each, and on a busy machine each round trip waits for
// both processes to be scheduled. Pipelined sends them.
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
	err := r.Row.Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return sql.ErrNoRows
	}
	return err
}

type queued struct{}

var errQueued = errors.New("db: a pipelined statement's count is not known until it is sent")

func (queued) LastInsertId() (int64, error) { return 0, errQueued }
func (queued) RowsAffected() (int64, error) { return 0, errQueued }

// Pipelined runs a transaction on PostgreSQL in two round trips. first queues the statements
// sent after the begin (its QueryRow scans run as their results arrive); then, called once they
// have, queues what depends on them, sent with the commit. A statement's error, or then's,
// rolls the whole transaction back and is returned (a statement's classified, Classify). The
// second round trip runs on ctx's deadline but not its cancellation, as InTx's commit does. The
// connection is one of d's pool, used through pgx itself; one left in doubt (a failed
// rollback) is closed, never returned to the pool mid-transaction. Only PostgreSQL pipelines:
// on SQLite it is an error.
func (d *DB) Pipelined(ctx context.Context, first, then func(p *Pipeline) error) error {
	if d.Dialect != Postgres {
		return fmt.Errorf("db: pipelining needs PostgreSQL")
	}
	var p1 Pipeline
	p1.b.Queue("BEGIN")
	if err := first(&p1); err != nil {
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
		rollback := func(err error) error {
			if _, rerr := c.Exec(tctx, "ROLLBACK"); rerr != nil {
				// In doubt: the pool must not hand out a connection in a transaction.
				_ = c.Close(context.WithoutCancel(tctx))
			}
			return err
		}
		if err := c.SendBatch(ctx, &p1.b).Close(); err != nil {
			return rollback(Classify(err))
		}
		var p2 Pipeline
		if err := then(&p2); err != nil {
			return rollback(err)
		}
		// After a failed statement PostgreSQL skips the rest of the round trip, the commit too.
		p2.b.Queue("COMMIT")
		if err := c.SendBatch(tctx, &p2.b).Close(); err != nil {
			if cerr := errs.FromContext(tctx.Err(), "the database did not answer in time"); cerr != nil {
				err = cerr
			}
			return rollback(Classify(err))
		}
		return nil
	})
}
