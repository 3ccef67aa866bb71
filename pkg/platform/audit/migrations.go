package audit

import (
	"embed"
	"io/fs"

	"github.com/pms/pms/pkg/platform/db"
)

//go:embed migrations
var migrationFiles embed.FS

// Migrations is the audit log's table (audit_log), a migration set of its own: every service
// that audits applies it before its own set, so the table is defined once.
var Migrations = db.Set{Table: "goose_audit_version", Files: mustSub(migrationFiles, "migrations")}

func mustSub(f embed.FS, dir string) fs.FS {
	s, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return s
}
