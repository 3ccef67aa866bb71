package outbox

import (
	"embed"

	"github.com/pms/pms/pkg/platform/db"
)

//go:embed migrations
var migrationFiles embed.FS

// Migrations is the outbox's tables (outbox, processed_events, command_replies), a migration
// set of its own: every service that publishes applies it before its own set, so the tables
// are defined once.
var Migrations = db.EmbeddedSet("goose_outbox_version", migrationFiles, "migrations")

//go:embed fences
var fenceFiles embed.FS

// FenceMigrations is the consumer_fences table (AddFence, Fences), a migration set of its own:
// every service that consumes another's topic applies it (billing, analytics), whether or not
// it publishes.
var FenceMigrations = db.EmbeddedSet("goose_fence_version", fenceFiles, "fences")
