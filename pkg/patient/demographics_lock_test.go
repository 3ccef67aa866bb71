package patient

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
)

// TestEmailCheckLocks: on PostgreSQL a second transaction checking the same email waits for
// the first (the advisory lock: seen waiting in pg_locks, polled with a deadline), and once
// the first committed its patient with that email the second sees the holder and is refused.
// Without the lock both would pass the check (READ COMMITTED reads no uncommitted row).
func TestEmailCheckLocks(t *testing.T) {
	dbtest.RequirePostgres(t)
	d := dbtest.Open(t, db.Postgres, migrations.Patient())
	s := NewStore(d)
	ctx := context.Background()
	tx1, err := d.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx1.Rollback() }()
	if _, err := s.checkEmail(ctx, tx1, "00000000-0000-4000-8000-000000000001", "Same@Example.org", nil); err != nil {
		t.Fatal(err)
	}
	second := make(chan error, 1)
	go func() {
		tx2, err := d.BeginTxx(ctx, nil)
		if err != nil {
			second <- err
			return
		}
		defer func() { _ = tx2.Rollback() }()
		_, err = s.checkEmail(ctx, tx2, "00000000-0000-4000-8000-000000000002", "same@example.org", nil)
		second <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); ; {
		var waiting int
		key := uint64(emailLockKey("same@example.org"))
		if err := d.GetContext(ctx, &waiting, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
			AND classid = $1 AND objid = $2 AND objsubid = 1`, int64(key>>32), int64(key&0xffffffff)); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		select {
		case err := <-second:
			t.Fatalf("the second check did not wait for the first: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the second check never waited on the lock")
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
	if _, err := tx1.ExecContext(ctx, `INSERT INTO patients (id, name, email, address, date_of_birth, registered_date, version, created_at, updated_at)
		VALUES ('00000000-0000-4000-8000-000000000001', 'A', 'same@example.org', 'x', '1990-01-01', '2026-01-01', 1, now(), now())`); err != nil {
		t.Fatal(err)
	}
	if err := tx1.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-second; !errors.Is(err, ErrEmailTaken) {
		t.Fatalf("second check after the first committed: %v, want ErrEmailTaken", err)
	}
}
