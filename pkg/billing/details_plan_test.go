package billing_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
)

// TestDetailsPlanWithoutStatistics proves that a page of invoices reads its lines and payments
// through the indexes that lead with invoice_id on PostgreSQL, whatever the tables'
// statistics: none (a new database; this machine's PostgreSQL runs no autovacuum), fresh, or
// taken when the tables were twenty times smaller. Written as an IN list, a page of 20 was
// planned as sequential scans of both tables at a thousand invoices, and grew with them for
// the whole of the soak (issue 20 item 7).
func TestDetailsPlanWithoutStatistics(t *testing.T) {
	d := dbtest.Open(t, db.Postgres, migrations.Billing())
	ctx := context.Background()
	store := billing.NewStore(d)
	exec := func(stmt string, args ...any) {
		t.Helper()
		if _, err := d.ExecContext(ctx, stmt, args...); err != nil {
			t.Fatal(err)
		}
	}
	exec(`INSERT INTO accounts (id, patient_id, status, created_at) VALUES ('00000000-0000-4000-8000-000000000001', '00000000-0000-4000-8000-000000000002', 'active', now())`)
	have := 0
	for _, step := range []struct {
		invoices int
		analyze  bool
	}{{1000, false}, {1000, true}, {20000, false}, {20000, true}} {
		if n := step.invoices - have; n > 0 {
			// Two lines and two payments an invoice, written as the store would (lines while a draft).
			exec(`WITH i AS (INSERT INTO invoices (id, patient_id, account_id, currency, status, due_date, subtotal, amount_paid, version, created_at, updated_at)
				SELECT gen_random_uuid(), '00000000-0000-4000-8000-000000000002', '00000000-0000-4000-8000-000000000001', 'EUR', 'draft', '2026-12-31', 200, 0, 1, now(), now()
				FROM generate_series(1, $1) RETURNING id)
				INSERT INTO invoice_lines (invoice_id, line_no, description, quantity, unit_amount, amount)
				SELECT id, n, 'Consultation', 1, 100, 100 FROM i, generate_series(1, 2) AS n`, n)
			exec(`INSERT INTO payments (id, invoice_id, amount, method, at, actor, request_id)
				SELECT gen_random_uuid(), id, 50, 'cash', now(), 'svc:test', 'r' FROM invoices, generate_series(1, 2) WHERE seq > $1`, have)
			have = step.invoices
		}
		if step.analyze {
			exec(`ANALYZE invoices, invoice_lines, payments`)
		}
		var ids []string
		if err := d.SelectContext(ctx, &ids, `SELECT id FROM invoices ORDER BY seq DESC LIMIT 20`); err != nil {
			t.Fatal(err)
		}
		plans, err := billing.DetailPlans(ctx, store, ids)
		if err != nil {
			t.Fatal(err)
		}
		for i, index := range []string{"invoice_lines_pkey", "payments_invoice"} {
			if strings.Contains(plans[i], "Seq Scan") || !strings.Contains(plans[i], index) {
				t.Errorf("%d invoices (analysed: %v): not looked up through %s:\n%s", step.invoices, step.analyze, index, plans[i])
			}
		}
	}
}
