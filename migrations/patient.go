package migrations

import (
	"embed"
	"io/fs"
)

//go:embed patient
var patientFiles embed.FS

// Patient is the patient service's migrations.
func Patient() fs.FS { return sub(patientFiles, "patient") }
