package migrations

import (
	"embed"

	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/outbox"
)

//go:embed patient
var patientFiles embed.FS

// Patient is the patient service's migrations: the platform sets it uses (outbox, audit), then its own.
func Patient() db.Sets {
	return db.Sets{outbox.Migrations, audit.Migrations, db.EmbeddedSet("", patientFiles, "patient")}
}
