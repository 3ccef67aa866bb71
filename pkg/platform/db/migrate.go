package db

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
)

// Migrate applies the migrations in fsys/<dialect> (one folder per dialect, goose SQL files)
// and returns how many were applied. It is safe to run on every start: goose keeps its
// version table in the service's own schema.
func Migrate(ctx context.Context, d *DB, fsys fs.FS) (int, error) {
	sub, err := fs.Sub(fsys, string(d.Dialect))
	if err != nil {
		return 0, fmt.Errorf("db: migrations for %s: %w", d.Dialect, err)
	}
	dialect := goose.DialectPostgres
	if d.Dialect == SQLite {
		dialect = goose.DialectSQLite3
	}
	p, err := goose.NewProvider(dialect, d.DB.DB, sub)
	if err != nil {
		return 0, fmt.Errorf("db: migrations: %w", err)
	}
	res, err := p.Up(ctx)
	if err != nil {
		return 0, fmt.Errorf("db: migrate: %w", err)
	}
	return len(res), nil
}
