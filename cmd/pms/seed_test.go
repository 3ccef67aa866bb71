package main

import (
	"bytes"
	"context"
	"errors"
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

// TestSeedDuplicates: `pms seed --patients N --duplicates 10%` seeds match.Generate's
// population with its blocking keys, so the injected duplicates are candidates of their
// originals at once; a bad percentage is refused.
func TestSeedDuplicates(t *testing.T) {
	url := dbtest.PostgresDatabase(t)
	var out bytes.Buffer
	if err := dispatch(context.Background(), []string{"seed", "--patients=300", "--duplicates=10%", "--database-url=" + url, "--data-dir=" + t.TempDir()}, &out, io.Discard); err != nil {
		t.Fatalf("%v (%+v)", err, errors.Unwrap(err))
	}
	d, err := db.Open(context.Background(), url, "patient")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var patients, keyed, cyrillic, version int
	for q, n := range map[string]*int{`SELECT count(*) FROM patients WHERE deleted_at IS NULL`: &patients,
		`SELECT count(DISTINCT patient_id) FROM patient_match_keys`: &keyed,
		`SELECT count(*) FROM patients WHERE family ~ '[А-Яа-я]'`:   &cyrillic,
		`SELECT version FROM patient_match_keys_state`:              &version} {
		if err := d.Get(n, q); err != nil {
			t.Fatal(err)
		}
	}
	if patients != 300 || keyed < 290 || cyrillic == 0 || version != 1 {
		t.Fatalf("%d patients, %d keyed, %d in Cyrillic, key scheme %d", patients, keyed, cyrillic, version)
	}
	// Records sharing a key: the 30 injected duplicates (and households) make blocks.
	var shared int
	if err := d.Get(&shared, `SELECT count(*) FROM (SELECT key FROM patient_match_keys GROUP BY key HAVING count(*) > 1) AS k`); err != nil || shared < 30 {
		t.Fatalf("%d shared keys, %v", shared, err)
	}
	for _, bad := range []string{"--duplicates=x", "--duplicates=-1%", "--duplicates=90%"} {
		if err := dispatch(context.Background(), []string{"seed", "--patients=1", bad, "--database-url=" + url}, io.Discard, io.Discard); err == nil {
			t.Fatalf("%s accepted", bad)
		}
	}
}
