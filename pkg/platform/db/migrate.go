package db

import (
	"context"
	"fmt"
	"hash/fnv"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Set is one owner's migrations — goose SQL files, one folder per dialect (postgres, sqlite) —
// with a version table of its own, so several owners keep their histories apart in one
// schema: a service (Table empty: goose's default, goose_db_version, as before sets existed)
// and each platform package whose tables the service uses (the outbox, the audit log).
type Set struct {
	Table string
	Files fs.FS
}

// Sets are migration sets applied in order: the platform packages' first, then the service's.
type Sets []Set

// Migrate applies every set's pending migrations and returns how many it applied.
func Migrate(ctx context.Context, d *DB, sets Sets) (int, error) {
	n := 0
	for _, set := range sets {
		applied, err := migrate(ctx, d, set)
		if err != nil {
			return n, err
		}
		n += applied
	}
	return n, nil
}

func migrate(ctx context.Context, d *DB, set Set) (int, error) {
	sub, err := fs.Sub(set.Files, string(d.Dialect))
	if err != nil {
		return 0, fmt.Errorf("db: migrations for %s: %w", d.Dialect, err)
	}
	dialect := goose.DialectPostgres
	if d.Dialect == SQLite {
		dialect = goose.DialectSQLite3
	}
	var opts []goose.ProviderOption
	if set.Table != "" {
		opts = append(opts, goose.WithTableName(set.Table))
	}
	if d.Dialect == Postgres {
		// Replicas starting together take turns: without the lock both would run the same
		// migration, and the second fail on what the first created, or, in a migration
		// that builds an index CONCURRENTLY outside a transaction, drop the index the
		// first is building. The lock is the session's, on the connection goose runs every
		// migration on, so it covers migrations without a transaction too; a process that
		// dies releases it with its connection.
		l, err := lock.NewPostgresSessionLocker(
			lock.WithLockID(LockKey("pms/migrate", d.Schema, set.Table)),
			lock.WithLockTimeout(1, migrateLockWait))
		if err != nil {
			return 0, fmt.Errorf("db: migrations: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(l))
	}
	p, err := goose.NewProvider(dialect, d.DB.DB, sub, opts...)
	if err != nil {
		return 0, fmt.Errorf("db: migrations: %w", err)
	}
	res, err := p.Up(ctx)
	if err != nil {
		return 0, fmt.Errorf("db: migrate: %w", err)
	}
	return len(res), nil
}

// EmbeddedSet is the set in folder dir of an embedded tree, versioned in table (empty: the
// service's own). The tree is fixed at build time, so a missing folder is a programming error
// and panics.
func EmbeddedSet(table string, files fs.FS, dir string) Set {
	sub, err := fs.Sub(files, dir)
	if err != nil {
		panic(err)
	}
	return Set{Table: table, Files: sub}
}

// migrateLockWait is how many seconds a starting replica waits for another's migrations to
// finish: an index built CONCURRENTLY on a table of millions of rows takes minutes.
const migrateLockWait = 30 * 60

// LockKey is a PostgreSQL advisory-lock key named by name and parts (a schema, a table): the
// same everywhere for the same names, so every process guarding the same thing takes the same
// lock, and locks of other schemas or tables in the same database never meet.
func LockKey(name string, parts ...string) int64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	return int64(h.Sum64())
}
