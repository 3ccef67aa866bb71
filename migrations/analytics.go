package migrations

import (
	"embed"
	"io/fs"
)

//go:embed analytics
var analyticsFiles embed.FS

// Analytics is the analytics service's migrations.
func Analytics() fs.FS { return sub(analyticsFiles, "analytics") }
