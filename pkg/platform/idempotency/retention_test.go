package idempotency_test

import (
	"context"
	"testing"
	"time"

	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/idempotency"
	"github.com/pms/pms/pkg/platform/outbox"
)

// TestPruneKeepsOnlyTheRetentionWindow: on both databases, stored command replies older
// than the cutoff go and newer ones stay (a repeat inside the window still gets its stored
// answer); a table name that is not a plain identifier is refused.
func TestPruneKeepsOnlyTheRetentionWindow(t *testing.T) {
	dbtest.Each(t, db.Sets{outbox.Migrations}, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		now := time.Now().UTC()
		for key, at := range map[string]time.Time{"old": now.Add(-8 * 24 * time.Hour), "new": now.Add(-time.Hour)} {
			if _, err := d.ExecContext(ctx, d.Rebind(`INSERT INTO command_replies (scope, key, request_hash, status, body, created_at) VALUES (?, ?, ?, ?, ?, ?)`),
				"s", key, "h", 201, []byte(`{"name":"someone"}`), d.Time(at)); err != nil {
				t.Fatal(err)
			}
		}
		n, err := idempotency.Prune(ctx, d, now.Add(-idempotency.DefaultRetention), idempotency.RepliesTable)
		if err != nil || n != 1 {
			t.Fatalf("pruned %d %v, want 1", n, err)
		}
		replies := idempotency.NewReplies(d)
		if _, ok, err := replies.Get(ctx, "s", "old"); ok || err != nil {
			t.Fatalf("the old reply survived: %v %v", ok, err)
		}
		if _, ok, err := replies.Get(ctx, "s", "new"); !ok || err != nil {
			t.Fatalf("the new reply went: %v %v", ok, err)
		}
		if _, err := idempotency.Prune(ctx, d, now, "command_replies; DROP TABLE outbox"); err == nil {
			t.Fatal("a table name with syntax was accepted")
		}
	})
}
