package outbox_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/outbox"
)

// TestAuditHookBreakGlass: a successful break-glass entry goes to the audit topic with
// event-type BREAK_GLASS, so alerting consumers can pick it by header; a refused one, and
// every other entry, stays AUDIT_ENTRY.
func TestAuditHookBreakGlass(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		ob := outbox.New(d, outbox.Options{})
		w := audit.NewWriter(d, audit.Options{AfterBatch: audit.OutboxHook(ob, "patient")})
		defer w.Close(ctx)
		for _, e := range []audit.Entry{
			{Actor: "u1", Action: audit.ActionBreakGlass, SubjectID: "p1", Outcome: audit.OutcomeSuccess},
			{Actor: "u1", Action: audit.ActionBreakGlass, SubjectID: "p1", Outcome: audit.OutcomeRejected},
			{Actor: "u1", Action: "read", SubjectID: "p1", Outcome: audit.OutcomeSuccess},
		} {
			if _, err := w.Write(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		var headers []string
		if err := d.SelectContext(ctx, &headers, `SELECT headers FROM outbox ORDER BY id`); err != nil {
			t.Fatal(err)
		}
		want := []string{audit.BreakGlassEventType, audit.EventType, audit.EventType}
		if len(headers) != len(want) {
			t.Fatalf("outbox rows: %q", headers)
		}
		for i, h := range headers {
			if !strings.Contains(h, `"event-type":"`+want[i]+`"`) {
				t.Fatalf("row %d headers %s, want event-type %s", i, h, want[i])
			}
		}
	})
}
