package migrations_test

import (
	"context"
	"errors"
	"io/fs"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/polltest"
)

var (
	gooseBlock  = regexp.MustCompile(`(?s)-- \+goose StatementBegin.*?-- \+goose StatementEnd`)
	lineComment = regexp.MustCompile(`--[^\n]*`)
	createTable = regexp.MustCompile(`(?i)^CREATE TABLE (?:IF NOT EXISTS )?(\w+)`)
	createIndex = regexp.MustCompile(`(?i)^CREATE (?:UNIQUE )?INDEX (CONCURRENTLY )?(IF NOT EXISTS )?(\w+) ON (?:ONLY )?(\w+)`)
	dropIndex   = regexp.MustCompile(`(?i)^DROP INDEX (CONCURRENTLY )?(?:IF EXISTS )?(\w+)`)
	addKey      = regexp.MustCompile(`(?i)^ALTER TABLE (\w+) ADD (?:CONSTRAINT \w+ )?(?:PRIMARY KEY|UNIQUE)`)
	xactLock    = regexp.MustCompile(`(?i)pg_advisory_xact_lock`)
)

// TestIndexesBuiltOnline: on PostgreSQL no migration holds a table's writes while it builds
// or drops an index of a table it did not create (a table that may already hold millions of
// rows): it runs outside a transaction (goose's NO TRANSACTION), builds and drops
// CONCURRENTLY, and drops an interrupted build's invalid leftover before building again (IF
// NOT EXISTS would keep it for ever). A transaction-scoped advisory lock as a statement of its
// own would be released at once outside a transaction, so it only appears in a DO block.
func TestIndexesBuiltOnline(t *testing.T) {
	sets := map[string]db.Sets{"patient": migrations.Patient(), "billing": migrations.Billing(),
		"auth": migrations.Auth(), "analytics": migrations.Analytics(), "gateway": migrations.Gateway()}
	checked := 0
	for service, ss := range sets {
		for _, set := range ss {
			files, err := fs.Glob(set.Files, "postgres/*.sql")
			if err != nil || len(files) == 0 {
				t.Fatalf("%s: no PostgreSQL migrations (%v)", service, err)
			}
			for _, name := range files {
				raw, err := fs.ReadFile(set.Files, name)
				if err != nil {
					t.Fatal(err)
				}
				for _, problem := range onlineProblems(string(raw)) {
					t.Errorf("%s %s: %s", service, name, problem)
				}
				checked++
			}
		}
	}
	if checked < 40 {
		t.Fatalf("checked only %d migration files", checked)
	}
}

// onlineProblems lists what in one goose file's Up section would hold a table's writes.
func onlineProblems(file string) []string {
	up, _, _ := strings.Cut(file, "-- +goose Down")
	noTx := strings.Contains(file, "-- +goose NO TRANSACTION")
	var problems []string
	created := map[string]bool{}
	dropped := map[string]bool{}
	for _, stmt := range strings.Split(lineComment.ReplaceAllString(gooseBlock.ReplaceAllString(up, "DO;"), ""), ";") {
		stmt = strings.Join(strings.Fields(stmt), " ")
		if m := createTable.FindStringSubmatch(stmt); m != nil {
			created[strings.ToLower(m[1])] = true
		}
		if m := createIndex.FindStringSubmatch(stmt); m != nil && !created[strings.ToLower(m[4])] {
			switch {
			case m[1] == "":
				problems = append(problems, "builds "+m[3]+" on the existing table "+m[4]+" without CONCURRENTLY")
			case m[2] != "":
				problems = append(problems, "builds "+m[3]+" CONCURRENTLY IF NOT EXISTS, which keeps an interrupted build's invalid index")
			case !dropped[strings.ToLower(m[3])]:
				problems = append(problems, "builds "+m[3]+" CONCURRENTLY without first dropping an interrupted build's leftover")
			}
		}
		if m := dropIndex.FindStringSubmatch(stmt); m != nil {
			if m[1] == "" {
				problems = append(problems, "drops "+m[2]+" without CONCURRENTLY")
			}
			dropped[strings.ToLower(m[2])] = true
		}
		if m := addKey.FindStringSubmatch(stmt); m != nil && !created[strings.ToLower(m[1])] {
			problems = append(problems, "adds a key to the existing table "+m[1]+" (build its index CONCURRENTLY, then ADD ... USING INDEX)")
		}
		if noTx && xactLock.MatchString(stmt) {
			problems = append(problems, "takes a transaction-scoped advisory lock outside a transaction (put it in a DO block)")
		}
	}
	if !noTx && strings.Contains(strings.ToUpper(up), "CONCURRENTLY") {
		problems = append(problems, "uses CONCURRENTLY inside a transaction (mark the file -- +goose NO TRANSACTION)")
	}
	return problems
}

func TestOnlineProblemsFindsBlockingBuilds(t *testing.T) {
	for file, want := range map[string]int{
		"-- +goose Up\nCREATE INDEX x ON patients (a);\n":                                                                                                   1,
		"-- +goose Up\nDROP INDEX IF EXISTS x;\n":                                                                                                           1,
		"-- +goose Up\nCREATE TABLE t (a int);\nCREATE INDEX x ON t (a);\n":                                                                                 0,
		"-- +goose NO TRANSACTION\n-- +goose Up\nCREATE INDEX CONCURRENTLY x ON patients (a);\n":                                                            1,
		"-- +goose NO TRANSACTION\n-- +goose Up\nCREATE INDEX CONCURRENTLY IF NOT EXISTS x ON patients (a);\n":                                              1,
		"-- +goose NO TRANSACTION\n-- +goose Up\nDROP INDEX CONCURRENTLY IF EXISTS x;\nCREATE INDEX CONCURRENTLY x ON p (a);":                               0,
		"-- +goose Up\nDROP INDEX CONCURRENTLY IF EXISTS x;\nCREATE INDEX CONCURRENTLY x ON p (a);":                                                         1,
		"-- +goose NO TRANSACTION\n-- +goose Up\nSELECT pg_advisory_xact_lock(1);\n":                                                                        1,
		"-- +goose NO TRANSACTION\n-- +goose Up\n-- +goose StatementBegin\nDO $$ BEGIN PERFORM pg_advisory_xact_lock(1); END $$;\n-- +goose StatementEnd\n": 0,
		"-- +goose Up\nALTER TABLE patients ADD CONSTRAINT k UNIQUE (a);\n":                                                                                 1,
		"-- +goose Up\nSELECT 1;\n-- +goose Down\nDROP INDEX x;\n":                                                                                          0,
	} {
		if got := onlineProblems(file); len(got) != want {
			t.Errorf("%q: %d problems %q, want %d", file, len(got), got, want)
		}
	}
}

// TestIndexMigrationLetsWritesThrough: patient migration 00030 rebuilds the date-of-birth
// index of a table that has rows. While it waits for a transaction that is writing to the
// table, other writes and reads still go through (a plain DROP INDEX or CREATE INDEX would
// queue them behind its lock until that transaction ends). Cancelled while it waits, it leaves
// an invalid index behind, and the next start (db.Migrate again) finishes it cleanly.
func TestIndexMigrationLetsWritesThrough(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, _, all := patientBefore30(ctx, t)
	insert := `INSERT INTO patients (id, name, email, address, date_of_birth, registered_date, version, created_at, updated_at)
		VALUES (gen_random_uuid(), 'Ada', 'ada@example.org', 'x', '1990-01-01', '2026-01-01', 1, now(), now())`
	if _, err := d.ExecContext(ctx, insert); err != nil {
		t.Fatal(err)
	}
	writer, err := d.BeginTxx(ctx, nil) // a registration in flight
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = writer.Rollback() }()
	if _, err := writer.ExecContext(ctx, insert); err != nil {
		t.Fatal(err)
	}

	// The migration runs on a pool of its own, named, so that the backend found (and
	// cancelled) below is this test's: other packages' tests migrate schemas of the same
	// database at the same time.
	name := "pms-test-" + d.Schema
	m, err := db.Open(ctx, dbtest.PostgresURL(), d.Schema, db.WithSetting("application_name", name))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	migrated := make(chan error, 1)
	go func() { _, err := db.Migrate(ctx, m, all); migrated <- err }()
	var pid int
	polltest.Until(t, 30*time.Second, "the migration waiting on the open write", func() bool {
		err := d.GetContext(ctx, &pid, `SELECT pid FROM pg_stat_activity WHERE datname = current_database()
			AND application_name = $1 AND query ILIKE '%INDEX%patients_dob_live%' AND wait_event_type = 'Lock'`, name)
		return err == nil
	})

	other, err := d.Connx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.ExecContext(ctx, `SET lock_timeout = '10s'`); err != nil {
		t.Fatal(err)
	}
	if _, err := other.ExecContext(ctx, strings.ReplaceAll(insert, "ada@", "bob@")); err != nil {
		t.Fatalf("a write while the index migration runs: %v", err)
	}
	var n int
	if err := other.GetContext(ctx, &n, `SELECT count(*) FROM patients WHERE date_of_birth = '1990-01-01'`); err != nil || n != 2 {
		t.Fatalf("a read while the index migration runs: %d, %v", n, err)
	}

	// An interrupted build (a replica killed, a deploy cancelled) leaves an invalid index.
	if _, err := d.ExecContext(ctx, `SELECT pg_cancel_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	if err := <-migrated; err == nil {
		t.Fatal("the cancelled migration reported success")
	}
	var invalid []string
	if err := d.SelectContext(ctx, &invalid, `SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		WHERE c.relnamespace = current_schema()::regnamespace AND NOT i.indisvalid`); err != nil || len(invalid) != 1 {
		t.Fatalf("invalid indexes after the cancelled build: %q, %v", invalid, err)
	}
	if err := writer.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Migrate(ctx, d, all); err != nil {
		t.Fatalf("the next start: %v", err)
	}
	var defs []string
	if err := d.SelectContext(ctx, &defs, `SELECT c.relname || CASE WHEN i.indisvalid THEN '' ELSE ' INVALID' END
		FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
		WHERE t.relname = 'patients' AND t.relnamespace = current_schema()::regnamespace ORDER BY 1`); err != nil {
		t.Fatal(err)
	}
	if joined := strings.Join(defs, " "); strings.Contains(joined, "INVALID") || strings.Contains(joined, "_next") ||
		!strings.Contains(joined, "patients_dob_live") {
		t.Fatalf("patients' indexes after the next start: %s", joined)
	}
	var def string
	if err := d.GetContext(ctx, &def, `SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = 'patients_dob_live'`); err != nil ||
		!strings.Contains(def, "INCLUDE (seq)") {
		t.Fatalf("patients_dob_live: %q, %v", def, err)
	}
}

// TestReplicasMigrateTogether: two replicas of a new release starting at once on a database
// of the release before it both come up, and each pending migration is applied once, by one
// of them (db.Migrate's session lock makes them take turns; without it both run patient
// migration 00030, and one drops the index the other is building, or fails on it).
func TestReplicasMigrateTogether(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	first, before, all := patientBefore30(ctx, t)
	second, err := db.Open(ctx, dbtest.PostgresURL(), first.Schema)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	applied := make([]int, 2)
	for i, d := range []*db.DB{first, second} {
		wg.Go(func() { applied[i], errs[i] = db.Migrate(ctx, d, all) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("replicas migrating together: %v", err)
	}
	pending := 0
	for _, set := range all {
		files, _ := fs.Glob(set.Files, "postgres/*.sql")
		pending += len(files)
	}
	for _, set := range before {
		files, _ := fs.Glob(set.Files, "postgres/*.sql")
		pending -= len(files)
	}
	if applied[0]+applied[1] != pending || pending == 0 {
		t.Fatalf("migrations applied by the two replicas: %v, want %d in all", applied, pending)
	}
}

// patientBefore30 is a PostgreSQL schema migrated as the release before patient migration
// 00030 left it (the sets it applied: before), and every patient set (all).
func patientBefore30(ctx context.Context, t *testing.T) (d *db.DB, before, all db.Sets) {
	t.Helper()
	d = dbtest.Open(t, db.Postgres, nil)
	all = migrations.Patient()
	before = append(db.Sets{}, all...)
	before[len(before)-1] = db.Set{Files: upTo(t, all[len(all)-1].Files, 29)}
	if _, err := db.Migrate(ctx, d, before); err != nil {
		t.Fatal(err)
	}
	return d, before, all
}

// upTo is the migration tree files (a set's postgres and sqlite folders) without the versions
// after last.
func upTo(t *testing.T, files fs.FS, last int) fs.FS {
	t.Helper()
	out := fstest.MapFS{}
	err := fs.WalkDir(files, ".", func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		base := path[strings.LastIndex(path, "/")+1:]
		var v int
		for _, c := range base {
			if c < '0' || c > '9' {
				break
			}
			v = v*10 + int(c-'0')
		}
		if v <= last {
			raw, err := fs.ReadFile(files, path)
			if err != nil {
				return err
			}
			out[path] = &fstest.MapFile{Data: raw}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
