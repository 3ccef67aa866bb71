package db_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
)

func TestMigrateAndTimestampRoundTrip(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		// A second run applies nothing: migrations are safe on every start.
		n, err := db.Migrate(ctx, d, migrations.Patient())
		if err != nil || n != 0 {
			t.Fatalf("second migrate = %d, %v; want 0, nil", n, err)
		}
		at := time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC)
		if _, err := d.ExecContext(ctx, d.Rebind(`INSERT INTO idempotency_keys (scope, key, request_hash, resource_id, created_at) VALUES (?, ?, ?, ?, ?)`),
			"s", "k", "h", "r", d.Time(at)); err != nil {
			t.Fatal(err)
		}
		var got db.Timestamp
		if err := d.GetContext(ctx, &got, `SELECT created_at FROM idempotency_keys`); err != nil {
			t.Fatal(err)
		}
		if !got.Equal(at) {
			t.Fatalf("timestamp round trip: got %v want %v", got.Time, at)
		}
		_, err = d.ExecContext(ctx, d.Rebind(`INSERT INTO idempotency_keys (scope, key, request_hash, resource_id, created_at) VALUES (?, ?, ?, ?, ?)`),
			"s", "k", "h", "r", d.Time(at))
		if !db.IsUniqueViolation(err, "") {
			t.Fatalf("duplicate key: got %v, want a unique violation", err)
		}
	})
}

// TestSQLiteFileIsOwnerOnly: the embedded database holds patient data and password hashes.
func TestSQLiteFileIsOwnerOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "x.db")
	d, err := db.Open(context.Background(), "sqlite://"+path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.ExecContext(context.Background(), `CREATE TABLE t (x INTEGER)`); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{path, path + "-wal"} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
}

// TestPoolSizeQueuesInsteadOfOpening: past its pool size a PostgreSQL handle makes callers
// wait for a connection instead of opening more (which the server could refuse with "too
// many clients"); SQLite's pool stays one connection whatever is asked.
func TestPoolSizeQueuesInsteadOfOpening(t *testing.T) {
	d := dbtest.Open(t, db.Postgres, migrations.Patient())
	if got := d.Stats().MaxOpenConnections; got != db.DefaultMaxConns {
		t.Fatalf("default pool size %d, want %d", got, db.DefaultMaxConns)
	}
	d.SetPoolSize(3)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for range 12 {
		wg.Go(func() {
			_, err := d.ExecContext(ctx, `SELECT pg_sleep(0.05)`)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if st := d.Stats(); st.MaxOpenConnections != 3 || st.OpenConnections > 3 || st.WaitCount == 0 {
		t.Fatalf("pool stats %+v: want at most 3 connections and callers that waited", st)
	}

	s, err := db.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "x.db"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetPoolSize(8)
	if got := s.Stats().MaxOpenConnections; got != 1 {
		t.Fatalf("SQLite pool size %d after SetPoolSize(8), want 1", got)
	}
}
