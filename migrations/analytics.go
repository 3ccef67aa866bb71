package migrations

import (
	"embed"

	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/db"
)

//go:embed analytics
var analyticsFiles embed.FS

// Analytics is the analytics service's migrations: the platform sets it uses (audit), then its own.
func Analytics() db.Sets {
	return db.Sets{audit.Migrations, db.EmbeddedSet("", analyticsFiles, "analytics")}
}
