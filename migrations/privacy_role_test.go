package migrations_test

import (
	"context"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
)

// TestPrivacyRoleMigration: auth's 00007 lets users have the privacy role on a database that
// already has users with sessions, tokens and factors (SQLite rebuilds the users table under
// deferred foreign keys): the rows survive, the children still point at their users, the
// foreign keys still hold, and unknown roles are still refused.
func TestPrivacyRoleMigration(t *testing.T) {
	ctx := context.Background()
	full := migrations.Auth()
	// before is the auth sets without 00007.
	before := make(db.Sets, len(full))
	copy(before, full)
	own := fstest.MapFS{}
	last := len(full) - 1
	if err := fs.WalkDir(full[last].Files, ".", func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || strings.Contains(path, "00007_") {
			return err
		}
		b, err := fs.ReadFile(full[last].Files, path)
		own[path] = &fstest.MapFile{Data: b}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	before[last] = db.Set{Table: full[last].Table, Files: own}
	for _, dialect := range dbtest.Dialects {
		t.Run(string(dialect), func(t *testing.T) {
			d := dbtest.Open(t, dialect, before)
			now := d.Time(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
			exec := func(q string, args ...any) error {
				_, err := d.ExecContext(ctx, d.Rebind(q), args...)
				return err
			}
			const uid = "6f1c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f"
			if err := exec(`INSERT INTO users (id, email, role, password_hash, created_at, updated_at, token_version) VALUES (?, 'a@example.org', 'clinician', 'h', ?, ?, 3)`, uid, now, now); err != nil {
				t.Fatal(err)
			}
			if err := exec(`INSERT INTO refresh_tokens (token_hash, family_id, user_id, issued_at, expires_at) VALUES ('t1', 'b1c1d2e3-3a4b-4c5d-8e6f-7a8b9c0d1e2f', ?, ?, ?)`, uid, now, now); err != nil {
				t.Fatal(err)
			}
			if err := exec(`INSERT INTO users (id, email, role, password_hash, created_at, updated_at) VALUES ('7f1c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f', 'p@example.org', 'privacy', 'h', ?, ?)`, now, now); err == nil {
				t.Fatal("privacy accepted before 00007")
			}
			if _, err := db.Migrate(ctx, d, full); err != nil {
				t.Fatalf("migrate: %v", err)
			}
			if err := exec(`INSERT INTO users (id, email, role, password_hash, created_at, updated_at) VALUES ('7f1c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f', 'p@example.org', 'privacy', 'h', ?, ?)`, now, now); err != nil {
				t.Fatalf("privacy refused after 00007: %v", err)
			}
			if err := exec(`INSERT INTO users (id, email, role, password_hash, created_at, updated_at) VALUES ('8f1c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f', 'x@example.org', 'root', 'h', ?, ?)`, now, now); err == nil {
				t.Fatal("unknown role accepted")
			}
			if err := exec(`INSERT INTO users (id, email, role, password_hash, created_at, updated_at) VALUES ('9f1c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f', 'A@example.org', 'admin', 'h', ?, ?)`, now, now); err == nil {
				t.Fatal("the case-insensitive email index is gone")
			}
			if err := exec(`INSERT INTO refresh_tokens (token_hash, family_id, user_id, issued_at, expires_at) VALUES ('t2', 'c1c1d2e3-3a4b-4c5d-8e6f-7a8b9c0d1e2f', 'af1c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f', ?, ?)`, now, now); err == nil {
				t.Fatal("foreign key not enforced after 00007")
			}
			var n int
			if err := d.GetContext(ctx, &n, d.Rebind(`SELECT count(*) FROM users u JOIN refresh_tokens r ON r.user_id = u.id WHERE u.token_version = 3 AND u.role = 'clinician'`)); err != nil || n != 1 {
				t.Fatalf("rows after 00007: %d, %v", n, err)
			}
		})
	}
}
