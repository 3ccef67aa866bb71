package audit

import (
	"embed"

	"github.com/pms/pms/pkg/platform/db"
)

//go:embed migrations
var migrationFiles embed.FS

// Migrations is the audit log's table (audit_log), a migration set of its own: every service
// that audits applies it before its own set, so the table is defined once.
var Migrations = db.EmbeddedSet("goose_audit_version", migrationFiles, "migrations")
