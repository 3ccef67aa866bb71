package db_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
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

// TestRefusedConnectIsUnavailable: a database that refuses new connections (ALLOW_CONNECTIONS
// false, as during a failover; the server answers FATAL 55000 at connect) is a 503, not a 500.
func TestRefusedConnectIsUnavailable(t *testing.T) {
	dbURL := dbtest.PostgresDatabase(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	admin := *u
	admin.Path = "/postgres"
	ctx := context.Background()
	a, err := sqlx.Open("pgx", admin.String())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	d, err := db.Open(ctx, dbURL, "refused")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := a.Exec(`ALTER DATABASE "` + name + `" WITH ALLOW_CONNECTIONS false`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = a.Exec(`ALTER DATABASE "` + name + `" WITH ALLOW_CONNECTIONS true`) })
	if _, err := a.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, name); err != nil {
		t.Fatal(err)
	}
	for range 3 { // the first may meet the terminated connection, the next must connect anew
		_, err = d.ExecContext(ctx, `SELECT 1`)
		if got := errs.KindOf(db.Classify(err)); got != errs.Unavailable {
			t.Fatalf("classified %v as %s, want unavailable", err, got)
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

// TestClassifyCallerGone: a caller that goes away is Canceled, never Unavailable (issue 13:
// clients hanging up opened the gateway's breaker), a deadline stays Timeout and a refused
// connection Unavailable; on both databases, with a query in flight and with a transaction
// whose commit meets the cancellation.
func TestClassifyCallerGone(t *testing.T) {
	for _, c := range []struct {
		err  error
		want errs.Kind
	}{
		{context.Canceled, errs.Canceled},
		{context.DeadlineExceeded, errs.Timeout},
		{fmt.Errorf("query: %w", context.Canceled), errs.Canceled},
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, errs.Unavailable},
		{syscall.ECONNREFUSED, errs.Unavailable},
	} {
		if got := errs.KindOf(db.Classify(c.err)); got != c.want {
			t.Errorf("Classify(%v) = %s; want %s", c.err, got, c.want)
		}
	}
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		// A query in flight when the caller goes away.
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			q := `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 100000000) SELECT count(*) FROM n`
			var n int64
			errc <- d.GetContext(ctx, &n, q)
		}()
		cancel()
		if err := <-errc; errs.KindOf(db.Classify(err)) != errs.Canceled {
			t.Fatalf("query cancelled in flight: %v classified %s; want canceled", err, errs.KindOf(db.Classify(err)))
		}
		insert := func(ctx context.Context, tx *sqlx.Tx, key string) error {
			_, err := tx.ExecContext(ctx, d.Rebind(`INSERT INTO idempotency_keys (scope, key, request_hash, resource_id, created_at) VALUES (?, ?, ?, ?, ?)`),
				"s", key, "h", "r", d.Time(time.Now()))
			return db.Classify(err)
		}
		count := func(key string) int {
			var n int
			if err := d.GetContext(context.Background(), &n, d.Rebind(`SELECT count(*) FROM idempotency_keys WHERE key = ?`), key); err != nil {
				t.Fatal(err)
			}
			return n
		}
		// A caller that goes away while the transaction's statements run: the next statement
		// fails Canceled and nothing of it is stored.
		ctx, cancel = context.WithCancel(context.Background())
		err := db.InTx(ctx, d, func(tx *sqlx.Tx) error {
			if err := insert(ctx, tx, "gone-early"); err != nil {
				return err
			}
			cancel()
			return insert(ctx, tx, "gone-early-2")
		})
		if errs.KindOf(err) != errs.Canceled || count("gone-early") != 0 {
			t.Fatalf("InTx whose caller left mid-way = %v (%s), %d rows; want canceled, rolled back", err, errs.KindOf(err), count("gone-early"))
		}
		// A caller that goes away once every statement succeeded: the commit is not cut short,
		// and the answer says what happened (committed), never an error for a stored change.
		ctx, cancel = context.WithCancel(context.Background())
		err = db.InTx(ctx, d, func(tx *sqlx.Tx) error {
			err := insert(ctx, tx, "gone-late")
			cancel()
			return err
		})
		if err != nil || count("gone-late") != 1 {
			t.Fatalf("InTx whose caller left before the commit = %v, %d rows; want nil and the row committed", err, count("gone-late"))
		}
		// A deadline that passes is Timeout.
		ctx, cancel = context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
		<-ctx.Done()
		if _, err := d.ExecContext(ctx, `SELECT 1`); errs.KindOf(db.Classify(err)) != errs.Timeout {
			t.Fatalf("expired deadline: %v classified %s; want timeout", err, errs.KindOf(db.Classify(err)))
		}
	})
}

func TestGenericPlanArray(t *testing.T) {
	backing := []int64{1, 2, 3, 4}
	if got := db.GenericPlanArray(backing[:2]); len(got) != db.GenericPlanArrayLen || got[0] != 1 || got[1] != 2 || got[db.GenericPlanArrayLen-1] != 2 {
		t.Fatalf("padded: %v", got)
	}
	if backing[2] != 3 || backing[3] != 4 {
		t.Fatalf("padding wrote past the slice into its backing array: %v", backing)
	}
	long := make([]string, 12)
	if got := db.GenericPlanArray(long); len(got) != 12 {
		t.Fatalf("a long array changed: %d", len(got))
	}
}
