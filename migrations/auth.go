package migrations

import (
	"embed"

	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/outbox"
)

//go:embed auth
var authFiles embed.FS

// Auth is the auth service's migrations: the platform sets it uses (outbox, audit), then its own.
func Auth() db.Sets {
	return db.Sets{outbox.Migrations, audit.Migrations, db.EmbeddedSet("", authFiles, "auth")}
}
