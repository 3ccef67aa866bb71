package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
)

// TestSeedCommand: `pms seed --patients N` twice adds 2N live patients, each with a valid MRN
// and its first history row, no outbox event and no audit entry; a bad count is refused.
func TestSeedCommand(t *testing.T) {
	url := dbtest.PostgresDatabase(t)
	for range 2 { // the same seed twice: the emails stay unique
		var out bytes.Buffer
		if err := dispatch(context.Background(), []string{"seed", "--patients=150", "--database-url=" + url, "--data-dir=" + t.TempDir()}, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "seed: 150 patients") {
			t.Fatalf("output %q", out.String())
		}
	}
	d, err := db.Open(context.Background(), url, "patient")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var mrns []string
	if err := d.Select(&mrns, `SELECT mrn FROM patients WHERE deleted_at IS NULL`); err != nil {
		t.Fatal(err)
	}
	for _, m := range mrns {
		if !patient.ValidMRN(m) {
			t.Fatalf("seeded MRN %q", m)
		}
	}
	var versions, outbox, audits int
	for q, n := range map[string]*int{`SELECT count(*) FROM patient_versions WHERE version = 1 AND changed_by = 'pms-seed'`: &versions,
		`SELECT count(*) FROM outbox`: &outbox, `SELECT count(*) FROM audit_log`: &audits} {
		if err := d.Get(n, q); err != nil {
			t.Fatal(err)
		}
	}
	if len(mrns) != 300 || versions != 300 || outbox != 0 || audits != 0 {
		t.Fatalf("%d patients, %d history rows, %d outbox rows, %d audit entries; want 300, 300, 0, 0", len(mrns), versions, outbox, audits)
	}
	if err := dispatch(context.Background(), []string{"seed", "--patients=0", "--database-url=" + url}, io.Discard, io.Discard); err == nil {
		t.Fatal("--patients=0 accepted")
	}
}
