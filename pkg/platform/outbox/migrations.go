package outbox

import (
	"embed"
	"io/fs"

	"github.com/pms/pms/pkg/platform/db"
)

//go:embed migrations
var migrationFiles embed.FS

// Migrations is the outbox's tables (outbox, processed_events, command_replies), a migration
// set of its own: every service that publishes applies it before its own set, so the tables
// are defined once.
var Migrations = db.Set{Table: "goose_outbox_version", Files: mustSub(migrationFiles, "migrations")}

func mustSub(f embed.FS, dir string) fs.FS {
	s, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return s
}
