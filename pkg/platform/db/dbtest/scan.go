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
	var tables []string
	q := `SELECT name FROM sqlite_master WHERE type = 'table'`
	if d.Dialect == db.Postgres {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`
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
		rows, err := d.QueryxContext(ctx, `SELECT * FROM "`+strings.ReplaceAll(t, `"`, `""`)+`"`)
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
