package migrations

import (
	"embed"
	"io/fs"
)

//go:embed billing
var billingFiles embed.FS

// Billing is the billing service's migrations.
func Billing() fs.FS { return sub(billingFiles, "billing") }
