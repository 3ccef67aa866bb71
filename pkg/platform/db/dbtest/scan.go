package dbtest

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/pms/pms/pkg/platform/db"
)

// FindText scans every column of every table of d (its current schema on PostgreSQL) for
// any of needles, case-insensitively, and returns where each was found as "table.column:
// needle", sorted. Erasure tests use it to prove no copy of a patient's data is left behind,
// wherever a future migration may have put one.
func FindText(ctx context.Context, d *db.DB, needles ...string) ([]string, error) {
	return findText(ctx, d, `table_schema = current_schema()`, needles)
}

// FindTextEverywhere is FindText over every schema of d's PostgreSQL database but the
// system's (a `pms all` database: a schema per service), naming hits "schema.table.column".
func FindTextEverywhere(ctx context.Context, d *db.DB, needles ...string) ([]string, error) {
	return findText(ctx, d, `table_schema NOT IN ('pg_catalog', 'information_schema') AND table_schema NOT LIKE 'pg_toast%'`, needles)
}

func findText(ctx context.Context, d *db.DB, schemas string, needles []string) ([]string, error) {
	var tables []string
	q := `SELECT name FROM sqlite_master WHERE type = 'table'`
	if d.Dialect == db.Postgres {
		q = `SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM information_schema.tables WHERE ` + schemas + ` AND table_type = 'BASE TABLE'`
	}
	if err := d.SelectContext(ctx, &tables, q); err != nil {
		return nil, err
	}
	lower := make([][]byte, len(needles))
	for i, n := range needles {
		lower[i] = bytes.ToLower([]byte(n))
	}
	found := map[string]bool{}
	for _, t := range tables {
		from := t // already quoted on PostgreSQL
		if d.Dialect != db.Postgres {
			from = `"` + strings.ReplaceAll(t, `"`, `""`) + `"`
		}
		rows, err := d.QueryxContext(ctx, `SELECT * FROM `+from)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			row := map[string]any{}
			if err := rows.MapScan(row); err != nil {
				_ = rows.Close()
				return nil, err
			}
			for col, v := range row {
				var b []byte
				switch v := v.(type) {
				case []byte:
					b = v
				case string:
					b = []byte(v)
				default:
					b = []byte(fmt.Sprint(v))
				}
				b = bytes.ToLower(b)
				for i, n := range lower {
					if len(n) > 0 && bytes.Contains(b, n) {
						found[t+"."+col+": "+needles[i]] = true
					}
				}
			}
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
	}
	out := make([]string, 0, len(found))
	for k := range found {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}
