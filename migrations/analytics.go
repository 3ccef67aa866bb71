package migrations

import (
	"embed"

	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/outbox"
)

//go:embed analytics
var analyticsFiles embed.FS

// Analytics is the analytics service's migrations: the platform sets it uses (audit, the consumer fences), then its own.
func Analytics() db.Sets {
	return db.Sets{audit.Migrations, outbox.FenceMigrations, db.EmbeddedSet("", analyticsFiles, "analytics")}
}
