// Package migrations embeds every service's SQL migrations, one folder per service and, inside
// it, one folder per dialect (postgres, sqlite), in goose's SQL format. Each service has its
// own file here (patient.go, ...) holding its embed and accessor.
package migrations

import (
	"embed"
	"io/fs"
)

// sub returns the folder dir of an embedded tree; the tree is fixed at build time, so a
// missing folder is a programming error.
func sub(files embed.FS, dir string) fs.FS {
	s, err := fs.Sub(files, dir)
	if err != nil {
		panic(err)
	}
	return s
}
