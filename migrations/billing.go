package migrations

import (
	"embed"

	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/outbox"
)

//go:embed billing
var billingFiles embed.FS

// Billing is the billing service's migrations: the platform sets it uses (outbox, the consumer fences, audit), then its own.
func Billing() db.Sets {
	return db.Sets{outbox.Migrations, outbox.FenceMigrations, audit.Migrations, db.EmbeddedSet("", billingFiles, "billing")}
}
