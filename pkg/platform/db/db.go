// Package db opens a service's database from a URL (postgres:// through pgx's database/sql
// driver, sqlite:// through modernc.org/sqlite), applies its embedded migrations, and papers
// over the few places where the two dialects differ.
package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/platform/errs"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Dialect names a supported database.
type Dialect string

// The supported dialects; their names are also the migration folder names.
const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// DB is a sqlx handle that knows its dialect and, on PostgreSQL, the schema it lives in.
type DB struct {
	*sqlx.DB
	Dialect Dialect
	// Schema is the PostgreSQL schema holding this service's tables ("" on SQLite).
	Schema string
	// OnIssue, when set, keeps the high-water marks of the database's counters (Issued).
	OnIssue func(table string, n int64) error
	// settings are the run-time parameters every connection starts with (WithSetting).
	settings map[string]string
}

// Setting is the value run-time parameter name starts with on every connection of the pool
// (WithSetting), or "" when Open was not asked for it.
func (d *DB) Setting(name string) string { return d.settings[name] }

// DefaultMaxConns is how many PostgreSQL connections one service's pool holds at most unless
// told otherwise (`--database-max-conns`). The four services of one platform then hold at most 80,
// inside PostgreSQL's default max_connections of 100 (3 of them reserved) with room for
// migrations, psql and monitoring. Past it, requests queue in the pool; over the server's
// limit they would be refused ("too many clients") and answered 503, as the soak
// (ops/soak) met with 32 per service on a server that had other clients too.
const DefaultMaxConns = 20

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func init() { sqlx.BindDriver("sqlite", sqlx.QUESTION) }

// Open connects to rawURL. On PostgreSQL every connection's search_path is schema, which is
// created when missing, so one database can hold every service apart (API.md, "Running it").
// On SQLite the file is created (with its folder) when missing, in WAL mode with full fsync,
// and the pool is one connection: SQLite has one writer, and queuing in Go is cheaper and
// more predictable than SQLITE_BUSY retries.
func Open(ctx context.Context, rawURL, schema string, opts ...Option) (*DB, error) {
	switch {
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		return openPostgres(ctx, rawURL, schema, opts)
	case strings.HasPrefix(rawURL, "sqlite://"):
		return openSQLite(ctx, strings.TrimPrefix(rawURL, "sqlite://"))
	default:
		return nil, fmt.Errorf("db: unsupported database URL scheme (want postgres:// or sqlite://)")
	}
}

// Option configures what Open opens.
type Option func(*options)

type options struct {
	settings map[string]string
}

// WithSetting makes every PostgreSQL connection of the pool start with run-time parameter
// name set to value (a startup parameter, as search_path is): a setting a service's queries
// rely on costs no statement of their own. SQLite ignores it.
func WithSetting(name, value string) Option {
	return func(o *options) {
		if o.settings == nil {
			o.settings = map[string]string{}
		}
		o.settings[name] = value
	}
}

func openPostgres(ctx context.Context, rawURL, schema string, opts []Option) (*DB, error) {
	if !schemaName.MatchString(schema) {
		return nil, fmt.Errorf("db: invalid schema name %q", schema)
	}
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("db: parse postgres URL: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	for k, v := range o.settings {
		cfg.RuntimeParams[k] = v
	}
	cfg.RuntimeParams["search_path"] = schema
	sqldb := stdlib.OpenDB(*cfg)
	sqldb.SetConnMaxIdleTime(5 * time.Minute)
	d := &DB{DB: sqlx.NewDb(sqldb, "pgx"), Dialect: Postgres, Schema: schema, settings: o.settings}
	d.SetPoolSize(DefaultMaxConns)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// A schema that exists is not created again: CREATE SCHEMA IF NOT EXISTS needs the CREATE
	// privilege on the database even then, which a least-privilege service role (docs/audit.md)
	// does not have.
	var exists bool
	if err := d.GetContext(pctx, &exists, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, schema); err != nil {
		_ = d.Close()
		return nil, fmt.Errorf("db: create schema: %w", err)
	}
	if exists {
		return d, nil
	}
	if _, err := d.ExecContext(pctx, `CREATE SCHEMA IF NOT EXISTS `+schema); err != nil {
		_ = d.Close()
		return nil, fmt.Errorf("db: create schema: %w", err)
	}
	return d, nil
}

// SetPoolSize bounds the PostgreSQL connections this handle opens (and keeps idle) to n;
// callers beyond it wait for a free connection. On SQLite the pool stays one connection.
func (d *DB) SetPoolSize(n int) {
	if d.Dialect != Postgres || n < 1 {
		return
	}
	d.SetMaxOpenConns(n)
	d.SetMaxIdleConns(n)
}

func openSQLite(ctx context.Context, path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("db: sqlite:// needs a file path")
	}
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if path != ":memory:" {
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("db: create data folder: %w", err)
			}
		}
		// The file holds patient data or password hashes: owner only. SQLite gives its WAL
		// and shared-memory files the same permissions as the database file.
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return nil, fmt.Errorf("db: create sqlite file: %w", err)
		}
		_ = f.Close()
		if err := os.Chmod(path, 0o600); err != nil {
			return nil, fmt.Errorf("db: restrict sqlite file: %w", err)
		}
	}
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "foreign_keys(1)", "synchronous(FULL)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	dsn := "file:" + path + "?" + q.Encode()
	x, err := sqlx.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("db: open sqlite: %w", err)
	}
	x.SetMaxOpenConns(1)
	x.SetMaxIdleConns(1)
	x.SetConnMaxLifetime(0)
	x.SetConnMaxIdleTime(0)
	d := &DB{DB: x, Dialect: SQLite}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := d.PingContext(pctx); err != nil {
		_ = d.Close()
		return nil, fmt.Errorf("db: open sqlite: %w", err)
	}
	return d, nil
}

// CommitTimeout bounds a transaction's begin and commit when the caller set no deadline.
const CommitTimeout = 30 * time.Second

// InTx runs fn in a transaction and commits it when fn returns nil; any error (or panic)
// rolls it back, so a failed request never leaves a half-written record.
//
// The transaction itself (its begin and its commit) runs on a context detached from the
// caller's cancellation, keeping the caller's deadline (else CommitTimeout). fn's statements
// still use the caller's context: a caller that goes away while they run makes them fail and
// the transaction roll back. But once fn has succeeded the commit is not cut short: a
// cancellation arriving during COMMIT used to make the caller see an error for a change
// PostgreSQL had committed (pgx cancels the commit's round trip, not the commit), and the
// change was then audited as failed (TestClientsHangingUp found it, issue 13).
func InTx(ctx context.Context, d *DB, fn func(tx *sqlx.Tx) error) (err error) {
	tctx, cancel := detach(ctx)
	defer cancel()
	tx, err := d.BeginTxx(tctx, nil)
	if err != nil {
		return Classify(err)
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback()
			panic(p)
		}
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if err = fn(tx); err != nil {
		return err
	}
	if err = tx.Commit(); err != nil {
		// database/sql answers a commit whose context ended with sql.ErrTxDone (it rolled
		// back on its own): that is the caller's cancellation or deadline, not a fault.
		if cerr := errs.FromContext(ctx.Err(), "the database did not answer in time"); cerr != nil {
			return cerr
		}
		return Classify(err)
	}
	return nil
}

// detach returns a context without ctx's cancellation but with its values and its deadline
// (else CommitTimeout).
func detach(ctx context.Context) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok {
		return context.WithDeadline(context.WithoutCancel(ctx), dl)
	}
	return context.WithTimeout(context.WithoutCancel(ctx), CommitTimeout)
}

// Issued tells the database's high-water marks (OnIssue, when set: pkg/platform/seqmark)
// that n was handed out from table's counter; a store calls it in the transaction that hands
// n out, and an error rolls that transaction back.
func (d *DB) Issued(table string, n int64) error {
	if d.OnIssue == nil {
		return nil
	}
	return d.OnIssue(table, n)
}

// RaiseSequences raises the counter of every table named in floors to at least its floor, so
// the next number handed out is above it: on SQLite its AUTOINCREMENT counter (a counter whose
// table has no row yet gets one), on PostgreSQL the sequence of its identity column. A restore
// and a start on a restored database (a `pms restore`, or a PostgreSQL point-in-time recovery)
// use it with the high-water marks (pkg/platform/seqmark).
func RaiseSequences(ctx context.Context, d *DB, floors map[string]int64) error {
	if len(floors) == 0 {
		return nil
	}
	if d.Dialect == Postgres {
		return raisePostgresSequences(ctx, d, floors)
	}
	return InTx(ctx, d, func(tx *sqlx.Tx) error {
		for table, floor := range floors {
			var auto int
			if err := tx.GetContext(ctx, &auto, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ? AND sql LIKE '%AUTOINCREMENT%'`, table); err != nil {
				return err
			}
			if auto == 0 {
				continue
			}
			res, err := tx.ExecContext(ctx, `UPDATE sqlite_sequence SET seq = ? WHERE name = ? AND seq < ?`, floor, table, floor)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n > 0 {
				continue
			}
			var have int
			if err := tx.GetContext(ctx, &have, `SELECT count(*) FROM sqlite_sequence WHERE name = ?`, table); err != nil {
				return err
			}
			if have == 0 {
				if _, err := tx.ExecContext(ctx, `INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)`, table, floor); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// raisePostgresSequences is RaiseSequences on PostgreSQL: each table's identity sequence (in
// the connection's schema) is set so that its next value is above the floor; a sequence
// already past it, or a table with no identity column, is left alone.
func raisePostgresSequences(ctx context.Context, d *DB, floors map[string]int64) error {
	for table, floor := range floors {
		var seq sql.NullString
		err := d.GetContext(ctx, &seq, `SELECT pg_get_serial_sequence(quote_ident(current_schema()) || '.' || quote_ident(c.relname), a.attname)
			FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = current_schema() AND c.relname = $1 AND a.attidentity <> '' LIMIT 1`, table)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && !seq.Valid) {
			continue
		}
		if err != nil {
			return err
		}
		// The name comes from the catalog (pg_get_serial_sequence quotes it).
		var last int64
		var called bool
		if err := d.QueryRowxContext(ctx, `SELECT last_value, is_called FROM `+seq.String).Scan(&last, &called); err != nil {
			return err
		}
		if !called {
			last-- // nothing handed out yet: the next value is last_value itself
		}
		if last >= floor {
			continue
		}
		// setval(s, n, true) makes n the last value handed out: the next is n + 1.
		if _, err := d.ExecContext(ctx, `SELECT setval($1::regclass, $2, true)`, seq.String, floor); err != nil {
			return err
		}
	}
	return nil
}
