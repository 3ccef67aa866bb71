package migrations

import (
	"embed"
	"io/fs"
)

//go:embed auth
var authFiles embed.FS

// Auth is the auth service's migrations.
func Auth() fs.FS { return sub(authFiles, "auth") }
