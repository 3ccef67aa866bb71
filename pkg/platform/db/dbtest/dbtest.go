// Package dbtest gives each test its own database: a fresh PostgreSQL schema with a random
// name (dropped afterwards) or a SQLite file in the test's temporary folder, migrated.
//
// PostgreSQL comes from PMS_TEST_DATABASE_URL (default the local trust-auth server). When it
// cannot be reached the test is skipped with a message, except under CI=true, where it fails.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pms/pms/pkg/platform/db"
)

// DefaultPostgresURL is the local server every developer machine and CI has, spoken to over
// TLS (sslmode=require; Debian's server runs ssl=on with its snakeoil certificate), as a
// production database would be.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=require"

// PostgresURL returns the URL tests use for PostgreSQL.
func PostgresURL() string {
	if u := os.Getenv("PMS_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultPostgresURL
}

// Dialects are the dialects every store test runs on.
var Dialects = []db.Dialect{db.Postgres, db.SQLite}

// Each runs fn as a subtest once per dialect, each with its own migrated database.
func Each(t *testing.T, migrations db.Sets, fn func(t *testing.T, d *db.DB)) {
	t.Helper()
	for _, dialect := range Dialects {
		t.Run(string(dialect), func(t *testing.T) {
			fn(t, Open(t, dialect, migrations))
		})
	}
}

// SkipShort skips a test whose length comes from the volume of data it checks, not from
// goroutines meeting, when go test runs with -short. make test's race pass runs -short: the
// race detector makes such a test five to ten times slower and finds nothing in it, and the
// plain pass runs it in full. why says what the test checks.
func SkipShort(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short (the race pass): " + why + "; the plain pass of make test runs it")
	}
}

// Open returns a migrated database of the given dialect that lives as long as the test, opened
// with opts. migrations may be nil for an empty database.
func Open(t testing.TB, dialect db.Dialect, migrations db.Sets, opts ...db.Option) *db.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var (
		d   *db.DB
		err error
	)
	switch dialect {
	case db.Postgres:
		RequirePostgres(t)
		schema := "t_" + randomName()
		d, err = db.Open(ctx, PostgresURL(), schema, opts...)
		if err != nil {
			t.Fatalf("dbtest: open postgres: %v", err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := d.ExecContext(ctx, `DROP SCHEMA IF EXISTS `+schema+` CASCADE`); err != nil {
				t.Logf("dbtest: drop schema %s: %v", schema, err)
			}
			_ = d.Close()
		})
	case db.SQLite:
		d, err = db.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "test.db"), "")
		if err != nil {
			t.Fatalf("dbtest: open sqlite: %v", err)
		}
		t.Cleanup(func() { _ = d.Close() })
	default:
		t.Fatalf("dbtest: unknown dialect %q", dialect)
	}
	migrate(ctx, t, d, migrations)
	return d
}

// OpenOwnPostgres is Open on PostgreSQL in a database of the test's own (PostgresDatabase)
// rather than a schema of the shared one. A test that needs VACUUM to mark its pages
// all-visible needs it: the oldest snapshot of any session in the same database holds that
// back, and in the shared database other packages' tests run transactions of their own.
func OpenOwnPostgres(t testing.TB, migrations db.Sets, opts ...db.Option) *db.DB {
	t.Helper()
	url := PostgresDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := db.Open(ctx, url, "public", opts...)
	if err != nil {
		t.Fatalf("dbtest: open postgres: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	migrate(ctx, t, d, migrations)
	return d
}

// migrate applies migrations (nil: none) to d, or fails t.
func migrate(ctx context.Context, t testing.TB, d *db.DB, migrations db.Sets) {
	t.Helper()
	if migrations != nil {
		if _, err := db.Migrate(ctx, d, migrations); err != nil {
			t.Fatalf("dbtest: migrate: %v", err)
		}
	}
}

var (
	pgOnce sync.Once
	pgErr  error
)

// RequirePostgres skips the test when PostgreSQL is unreachable, or fails it under CI=true.
func RequirePostgres(t testing.TB) {
	t.Helper()
	pgOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d, err := db.Open(ctx, PostgresURL(), "public")
		if err == nil {
			err = d.PingContext(ctx)
			_ = d.Close()
		}
		pgErr = err
	})
	if pgErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("dbtest: PostgreSQL is required under CI=true but unreachable at %s: %v", PostgresURL(), pgErr)
		}
		t.Skipf("dbtest: PostgreSQL unreachable (%v); set PMS_TEST_DATABASE_URL or start it", pgErr)
	}
}

func randomName() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// PostgresDatabase creates an empty PostgreSQL database with a random name for a test that
// runs whole processes (which pick their own schemas), drops it afterwards (terminating any
// connection the test left), and returns its URL.
func PostgresDatabase(t testing.TB) string {
	t.Helper()
	RequirePostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := db.Open(ctx, PostgresURL(), "public")
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	name := "t_" + randomName()
	if _, err := admin.ExecContext(ctx, `CREATE DATABASE `+name); err != nil {
		_ = admin.Close()
		t.Fatalf("dbtest: create database: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Logf("dbtest: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(PostgresURL())
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}
