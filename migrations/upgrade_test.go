package migrations_test

import (
	"context"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
)

// TestUpgradeFromSharedTables: a database migrated by the layout before issue 14 (each service's
// set created audit_log and, as version 00002, the outbox tables; frozen in testdata/v0)
// upgrades cleanly to the layout where the audit and outbox packages own their tables: its
// rows survive, a second start changes nothing, and its schema is exactly a fresh database's.
func TestUpgradeFromSharedTables(t *testing.T) {
	services := map[string]func() db.Sets{
		"patient": migrations.Patient, "billing": migrations.Billing, "auth": migrations.Auth, "analytics": migrations.Analytics,
	}
	for name, sets := range services {
		t.Run(name, func(t *testing.T) {
			for _, dialect := range dbtest.Dialects {
				t.Run(string(dialect), func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					defer cancel()
					old := dbtest.Open(t, dialect, db.Sets{{Files: os.DirFS("testdata/v0/" + name)}})
					seed(t, old, name != "analytics")
					for range 2 { // the upgrade, then a restart
						if _, err := db.Migrate(ctx, old, sets()); err != nil {
							t.Fatalf("upgrade: %v", err)
						}
					}
					var audits, events int
					if err := old.GetContext(ctx, &audits, `SELECT count(*) FROM audit_log`); err != nil || audits != 1 {
						t.Fatalf("audit rows after the upgrade: %d, %v", audits, err)
					}
					if name != "analytics" {
						if err := old.GetContext(ctx, &events, `SELECT count(*) FROM outbox`); err != nil || events != 1 {
							t.Fatalf("outbox rows after the upgrade: %d, %v", events, err)
						}
					}
					fresh := dbtest.Open(t, dialect, sets())
					if got, want := schemaOf(t, old), schemaOf(t, fresh); !reflect.DeepEqual(got, want) {
						t.Fatalf("upgraded schema differs from a fresh one:\nupgraded %q\nfresh    %q", got, want)
					}
				})
			}
		})
	}
}

// seed writes an audit row and, for a service with an outbox, an outbox row, as the old
// layout's tables hold them.
func seed(t *testing.T, d *db.DB, outbox bool) {
	t.Helper()
	ctx := context.Background()
	now := d.Time(time.Now())
	if _, err := d.ExecContext(ctx, d.Rebind(`INSERT INTO audit_log (seq, id, at, actor, role, action, subject_id, outcome,
		request_id, client_address, prev_hash, hash) VALUES (1, 'a1', ?, 'u', 'admin', 'read', 's', 'success', 'r', '', 'p', 'h')`), now); err != nil {
		t.Fatal(err)
	}
	if outbox {
		if _, err := d.ExecContext(ctx, d.Rebind(`INSERT INTO outbox (topic, msg_key, value, headers, created_at) VALUES ('t', 'k', ?, '{}', ?)`),
			[]byte("v"), now); err != nil {
			t.Fatal(err)
		}
	}
}

// schemaOf describes d's tables, columns, indexes and triggers (goose's version tables left
// out), in a form that does not depend on the schema's name.
func schemaOf(t *testing.T, d *db.DB) []string {
	t.Helper()
	var queries []string
	if d.Dialect == db.Postgres {
		queries = []string{
			`SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '')
			   FROM information_schema.columns WHERE table_schema = current_schema() AND table_name NOT LIKE 'goose%'`,
			`SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename NOT LIKE 'goose%'`,
			`SELECT event_object_table || ' ' || trigger_name || ' ' || event_manipulation || ' ' || action_statement
			   FROM information_schema.triggers WHERE trigger_schema = current_schema()`,
		}
	} else {
		queries = []string{
			`SELECT m.name || '.' || p.name || ' ' || p.type || ' ' || p."notnull" || ' ' || coalesce(p.dflt_value, '') || ' ' || p.pk
			   FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type = 'table' AND m.name NOT LIKE 'goose%' AND m.name NOT LIKE 'sqlite%'`,
			`SELECT replace(coalesce(sql, name), 'IF NOT EXISTS ', '') FROM sqlite_master WHERE type IN ('index', 'trigger')
			   AND tbl_name NOT LIKE 'goose%' AND tbl_name NOT LIKE 'sqlite%'`,
		}
	}
	var out []string
	for _, q := range queries {
		var rows []string
		if err := d.SelectContext(context.Background(), &rows, q+` ORDER BY 1`); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		for _, r := range rows {
			if d.Schema != "" {
				r = strings.ReplaceAll(r, d.Schema+".", "S.")
			}
			out = append(out, r)
		}
	}
	return out
}
