package patient_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
)

// TestAccessLogPlanWithoutStatistics: a patient's access log page reads each of its sources
// through its index (audit_log_subject for the entries that are their own disclosure,
// audit_disclosures_patient for the rows), never a scan of the audit log, whatever the
// statistics: none (this machine's PostgreSQL runs without autovacuum, as CI does), fresh, or
// taken when the log was a tenth of its size. The log holds 2,000 patients' entries, about
// half of them their own disclosure, as reads (migration 00032) and rows (before it) mix.
func TestAccessLogPlanWithoutStatistics(t *testing.T) {
	d := dbtest.Open(t, db.Postgres, migrations.Patient())
	ctx := context.Background()
	store := patient.NewStore(d)
	exec := func(stmt string, args ...any) {
		t.Helper()
		if _, err := d.ExecContext(ctx, stmt, args...); err != nil {
			t.Fatal(err)
		}
	}
	// subject(n) is the n-th of 2,000 patient ids.
	const subject = `'00000000-0000-4000-8000-' || lpad(((n % 2000) + 1)::text, 12, '0')`
	have := 0
	for _, step := range []struct {
		entries int
		analyze bool
	}{{20000, false}, {20000, true}, {200000, false}, {200000, true}} {
		if n := step.entries - have; n > 0 {
			exec(`INSERT INTO audit_log (seq, id, at, actor, role, action, subject_id, outcome, request_id, client_address,
				prev_hash, hash, disclosed_via, disclosed_emergency)
				SELECT n, gen_random_uuid()::text, now(), 'user-' || (n % 50), 'clinician', 'read', `+subject+`, 'success', 'r', '127.0.0.1',
					'', '', CASE WHEN n % 2 = 0 THEN 'http' END, CASE WHEN n % 2 = 0 THEN false END
				FROM generate_series($1::bigint, $2::bigint) AS n`, have+1, step.entries)
			exec(`INSERT INTO audit_disclosures (entry_seq, entry_id, patient_id, position, transport, emergency)
				SELECT seq, id::uuid, subject_id::uuid, 0, 'http', false FROM audit_log WHERE seq BETWEEN $1 AND $2 AND disclosed_via IS NULL`,
				have+1, step.entries)
			have = step.entries
		}
		if step.analyze {
			exec(`ANALYZE audit_log, audit_disclosures, audit_disclosure_pages`)
		}
		pid := "00000000-0000-4000-8000-000000000007"
		for _, before := range []int64{0, int64(step.entries / 2)} {
			plan, err := patient.AccessLogPlan(ctx, store, pid, before, patient.DefaultLimit)
			if err != nil {
				t.Fatal(err)
			}
			t.Log(plan)
			if strings.Contains(plan, "Seq Scan on audit_log") || strings.Contains(plan, "Seq Scan on audit_disclosures") ||
				!strings.Contains(plan, "audit_log_subject") || !strings.Contains(plan, "audit_disclosures_patient") {
				t.Errorf("%d entries (analysed: %v, before %d): not read through the subject indexes:\n%s", step.entries, step.analyze, before, plan)
			}
		}
	}
}
