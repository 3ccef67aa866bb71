package migrations_test

import (
	"context"
	"io/fs"
	"path"
	"testing"
	"testing/fstest"
	"time"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
)

// TestIdentifiersColumnFilledIn: a database at patient migration 00024 (identifiers only in
// patient_identifiers) upgrades to 00025 with each record's identifiers copied onto its row,
// sorted by system and value, deleted ones included, and "[]" for a record with none.
func TestIdentifiersColumnFilledIn(t *testing.T) {
	sets := migrations.Patient()
	own := sets[len(sets)-1]
	before := fstest.MapFS{}
	err := fs.WalkDir(own.Files, ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || path.Base(p) >= "00025" {
			return err
		}
		b, err := fs.ReadFile(own.Files, p)
		before[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	old := append(db.Sets{}, sets[:len(sets)-1]...)
	old = append(old, db.Set{Table: own.Table, Files: before})
	for _, dialect := range dbtest.Dialects {
		t.Run(string(dialect), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			d := dbtest.Open(t, dialect, old)
			now := d.Time(time.Now())
			for _, id := range []string{"6f1c1f8e-3c1a-4a53-9d0e-2b8f5f1e7a10", "0b7e3a52-5c55-4d8e-9b64-1f3c0a0b9c21"} {
				if _, err := d.ExecContext(ctx, d.Rebind(`INSERT INTO patients (id, name, email, address, date_of_birth, registered_date, version, created_at, updated_at)
					VALUES (?, 'A', '', 'x', '1990-01-01', '2026-01-01', 1, ?, ?)`), id, now, now); err != nil {
					t.Fatal(err)
				}
			}
			for _, r := range [][3]any{
				{"6f1c1f8e-3c1a-4a53-9d0e-2b8f5f1e7a10", "urn:b", "2"},
				{"6f1c1f8e-3c1a-4a53-9d0e-2b8f5f1e7a10", "urn:a", "9"},
				{"6f1c1f8e-3c1a-4a53-9d0e-2b8f5f1e7a10", "urn:b", "1"},
			} {
				if _, err := d.ExecContext(ctx, d.Rebind(`INSERT INTO patient_identifiers (patient_id, system, value) VALUES (?, ?, ?)`), r[:]...); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := d.ExecContext(ctx, d.Rebind(`UPDATE patient_identifiers SET deleted_at = ? WHERE value = '9'`), now); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Migrate(ctx, d, sets); err != nil {
				t.Fatalf("upgrade: %v", err)
			}
			want := map[string]string{
				"6f1c1f8e-3c1a-4a53-9d0e-2b8f5f1e7a10": `[{"system":"urn:a","value":"9"},{"system":"urn:b","value":"1"},{"system":"urn:b","value":"2"}]`,
				"0b7e3a52-5c55-4d8e-9b64-1f3c0a0b9c21": `[]`,
			}
			for id, w := range want {
				var got string
				if err := d.GetContext(ctx, &got, d.Rebind(`SELECT identifiers FROM patients WHERE id = ?`), id); err != nil {
					t.Fatal(err)
				}
				if compact(got) != w {
					t.Errorf("identifiers of %s = %s, want %s", id, got, w)
				}
			}
		})
	}
}

// compact drops the blanks PostgreSQL's json_agg puts between elements and keys.
func compact(s string) string {
	out := make([]byte, 0, len(s))
	in := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '"' && (i == 0 || s[i-1] != '\\') {
			in = !in
		}
		if !in && (c == ' ' || c == '\n') {
			continue
		}
		out = append(out, c)
	}
	return string(out)
}
