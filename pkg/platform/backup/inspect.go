package backup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/db"
)

// ErrNewerSchema is a backup taken by a release whose migrations this one does not have:
// restoring it would run this release on tables it does not know.
var ErrNewerSchema = errors.New("backup: the backup's schema is newer than this release")

// versionTable is the table goose keeps set's applied versions in.
func versionTable(set db.Set) string {
	if set.Table == "" {
		return "goose_db_version"
	}
	return set.Table
}

// knownVersion is the highest migration version of set for SQLite in this build.
func knownVersion(set db.Set) (int64, error) {
	entries, err := fs.ReadDir(set.Files, string(db.SQLite))
	if err != nil {
		return 0, err
	}
	var top int64
	for _, e := range entries {
		digits, _, ok := strings.Cut(e.Name(), "_")
		if v, err := strconv.ParseInt(digits, 10, 64); ok && err == nil && v > top {
			top = v
		}
	}
	return top, nil
}

// Inspect describes the SQLite database at path, service's, migrated with sets: each set's
// applied version, each table's row count, the AUTOINCREMENT counters and the audit chain's
// head. Run on a snapshot, it describes exactly what the backup holds.
func Inspect(ctx context.Context, service, path string, sets db.Sets) (Database, error) {
	d, err := db.Open(ctx, "sqlite://"+path, "")
	if err != nil {
		return Database{}, err
	}
	defer d.Close()
	return inspect(ctx, d, service, sets)
}

func inspect(ctx context.Context, d *db.DB, service string, sets db.Sets) (Database, error) {
	out := Database{Service: service, Schema: map[string]int64{}, Rows: map[string]int64{}, Sequences: map[string]int64{}}
	for _, set := range sets {
		var v int64
		t := versionTable(set)
		if err := d.GetContext(ctx, &v, `SELECT COALESCE(MAX(version_id), 0) FROM `+t+` WHERE is_applied`); err != nil {
			return out, fmt.Errorf("backup: %s: %s: %w", service, t, err)
		}
		out.Schema[t] = v
	}
	var tables []string
	if err := d.SelectContext(ctx, &tables, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`); err != nil {
		return out, err
	}
	for _, t := range tables {
		var n int64
		if err := d.GetContext(ctx, &n, `SELECT count(*) FROM "`+t+`"`); err != nil {
			return out, err
		}
		out.Rows[t] = n
	}
	var seqs []struct {
		Name string `db:"name"`
		Seq  int64  `db:"seq"`
	}
	if err := d.SelectContext(ctx, &seqs, `SELECT name, seq FROM sqlite_sequence`); err != nil && !strings.Contains(err.Error(), "no such table") {
		return out, err
	}
	for _, s := range seqs {
		out.Sequences[s.Name] = s.Seq
	}
	if _, ok := out.Rows[audit.DefaultTable]; ok {
		var h []Head
		if err := d.SelectContext(ctx, &h, `SELECT seq, hash FROM `+audit.DefaultTable+` ORDER BY seq DESC LIMIT 1`); err != nil {
			return out, err
		}
		if len(h) == 1 {
			out.AuditHead = &h[0]
		}
	}
	return out, nil
}

// Check opens the extracted database at path and checks it against want, its manifest entry,
// and against this release: SQLite's integrity check, no migration set newer than this build
// knows (ErrNewerSchema), the same schema versions, row counts and counters, and an audit
// chain that verifies and ends at the recorded head.
func Check(ctx context.Context, path string, want Database, sets db.Sets) error {
	d, err := db.Open(ctx, "sqlite://"+path, "")
	if err != nil {
		return err
	}
	defer d.Close()
	var ok []string
	if err := d.SelectContext(ctx, &ok, `PRAGMA integrity_check`); err != nil {
		return corrupt(fmt.Errorf("%s: %v", want.Service, err))
	}
	if len(ok) != 1 || ok[0] != "ok" {
		return corrupt(fmt.Errorf("%s: SQLite integrity check: %s", want.Service, strings.Join(ok, "; ")))
	}
	for _, set := range sets {
		top, err := knownVersion(set)
		if err != nil {
			return err
		}
		if v := want.Schema[versionTable(set)]; v > top {
			return fmt.Errorf("%w: %s %s is at version %d, this release knows up to %d", ErrNewerSchema, want.Service, versionTable(set), v, top)
		}
	}
	got, err := inspect(ctx, d, want.Service, sets)
	if err != nil {
		return corrupt(err)
	}
	if diff := differ("schema version", want.Schema, got.Schema) + differ("rows", want.Rows, got.Rows) + differ("sequence", want.Sequences, got.Sequences); diff != "" {
		return corrupt(fmt.Errorf("%s does not match its manifest:%s", want.Service, diff))
	}
	if _, ok := got.Rows[audit.DefaultTable]; ok {
		rep, err := audit.VerifyTable(ctx, d, audit.DefaultTable, want.Service)
		if err != nil {
			return corrupt(err)
		}
		if !rep.OK {
			return corrupt(fmt.Errorf("%s: the audit chain breaks at seq %d: %s", want.Service, rep.FirstBadSeq, rep.Problem))
		}
		if (want.AuditHead == nil) != (got.AuditHead == nil) || (want.AuditHead != nil && *want.AuditHead != *got.AuditHead) {
			return corrupt(fmt.Errorf("%s: the audit chain's head is not the manifest's", want.Service))
		}
	}
	return nil
}

// differ lists, sorted, the keys whose values in a and b differ.
func differ(what string, a, b map[string]int64) string {
	var out []string
	for k, v := range a {
		if b[k] != v {
			out = append(out, fmt.Sprintf(" %s %s: %d, manifest %d", what, k, b[k], v))
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			out = append(out, fmt.Sprintf(" %s %s: %d, manifest none", what, k, v))
		}
	}
	sort.Strings(out)
	return strings.Join(out, "")
}
