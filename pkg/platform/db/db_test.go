package db_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
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

// TestClassifyTextItCannotStore: a NUL in a text value is refused by PostgreSQL (SQLite
// stores it); either way a caller's bad text must never become an internal error.
func TestClassifyTextItCannotStore(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		_, err := d.ExecContext(context.Background(), d.Rebind(`INSERT INTO idempotency_keys (scope, key, request_hash, resource_id, created_at) VALUES (?, ?, ?, ?, ?)`),
			"s", "a\x00b", "h", "r", d.Time(time.Now()))
		if err == nil && d.Dialect == db.SQLite {
			return
		}
		var e *errs.Error
		if err = db.Classify(err); !errors.As(err, &e) || e.Kind != errs.InvalidArgument {
			t.Fatalf("a NUL in text: %v (%s), want invalid_argument", err, errs.KindOf(err))
		}
	})
}
