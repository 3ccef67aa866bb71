package shred_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/shred"
)

// TestSealOpenDestroy: a value sealed for a subject opens for that subject and field only;
// the key commits with its transaction; another key-encryption key opens nothing; once the
// key is destroyed the value never opens again (ErrShredded).
func TestSealOpenDestroy(t *testing.T) {
	for _, dialect := range dbtest.Dialects {
		t.Run(string(dialect), func(t *testing.T) {
			d := dbtest.Open(t, dialect, nil)
			blob := "BYTEA"
			if dialect == db.SQLite {
				blob = "BLOB"
			}
			if _, err := d.Exec(`CREATE TABLE data_keys (subject TEXT PRIMARY KEY, wrapped ` + blob + ` NOT NULL, created_at TEXT NOT NULL)`); err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			kek, err := shred.LoadKEK(filepath.Join(t.TempDir(), "kek"))
			if err != nil {
				t.Fatal(err)
			}
			keys, err := shred.New(d, kek)
			if err != nil {
				t.Fatal(err)
			}
			var sealed string
			if err := db.InTx(ctx, d, func(tx *sqlx.Tx) error {
				s, err := keys.ForWrite(ctx, tx, "p-1")
				sealed = s.Seal("name", "Ada Lovelace")
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if !shred.IsSealed(sealed) || strings.Contains(sealed, "Ada") || shred.IsSealed("Ada") {
				t.Fatalf("sealed value %q", sealed)
			}
			s, err := keys.ForRead(ctx, "p-1")
			if err != nil {
				t.Fatal(err)
			}
			if got, err := s.Open("name", sealed); err != nil || got != "Ada Lovelace" {
				t.Fatalf("open: %q %v", got, err)
			}
			if _, err := s.Open("email", sealed); err == nil {
				t.Fatal("a sealed name opened as another field")
			}
			if got, err := s.Open("name", ""); err != nil || got != "" || s.Seal("name", "") != "" {
				t.Fatal("the empty value is not kept empty")
			}
			// Another subject's key does not open it.
			_ = db.InTx(ctx, d, func(tx *sqlx.Tx) error { _, err := keys.ForWrite(ctx, tx, "p-2"); return err })
			if other, err := keys.ForRead(ctx, "p-2"); err != nil {
				t.Fatal(err)
			} else if _, err := other.Open("name", sealed); err == nil {
				t.Fatal("another subject's key opened the value")
			}
			// Another key-encryption key opens no data key.
			otherKEK, _ := shred.LoadKEK(filepath.Join(t.TempDir(), "kek2"))
			stranger, _ := shred.New(d, otherKEK)
			if _, err := stranger.ForRead(ctx, "p-1"); err == nil || errors.Is(err, shred.ErrShredded) {
				t.Fatalf("a foreign KEK: %v", err)
			}
			if err := stranger.Check(ctx); err == nil {
				t.Fatal("Check passed with a foreign key-encryption key")
			}
			if err := keys.Check(ctx); err != nil {
				t.Fatalf("Check with the right key: %v", err)
			}
			if err := db.InTx(ctx, d, func(tx *sqlx.Tx) error { return keys.Destroy(ctx, tx, "p-1") }); err != nil {
				t.Fatal(err)
			}
			if _, err := keys.ForRead(ctx, "p-1"); !errors.Is(err, shred.ErrShredded) {
				t.Fatalf("after destroy: %v", err)
			}
		})
	}
}

// TestLoadKEK: created 0600 on first use, the same key on the next, a damaged file refused.
func TestLoadKEK(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "kek")
	a, err := shred.LoadKEK(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode: %v %v", fi, err)
	}
	b, err := shred.LoadKEK(path)
	if err != nil || string(a) != string(b) || len(a) != shred.KeySize {
		t.Fatalf("reload: %v", err)
	}
	if err := os.WriteFile(path, []byte("not hex\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := shred.LoadKEK(path); err == nil {
		t.Fatal("a damaged key file was accepted")
	}
}
