// Package migrations embeds every service's SQL migrations, one folder per service and, inside
// it, one folder per dialect (postgres, sqlite), in goose's SQL format.
package migrations

import (
	"embed"
	"io/fs"
)

//go:embed patient
var files embed.FS

// For returns the migrations of service (e.g. "patient"), holding one folder per dialect.
func For(service string) fs.FS {
	sub, err := fs.Sub(files, service)
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return sub
}

// Patient is the patient service's migrations.
func Patient() fs.FS { return For("patient") }
