package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/pms/pms/pkg/platform/polltest"

	"github.com/pms/pms/pkg/analytics"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/platform/broker/brokertest"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/idempotency"
	"github.com/pms/pms/pkg/platform/ids"
	"github.com/pms/pms/pkg/platform/outbox"
)

// TestRetentionRuns starts each service that keeps stored replies or applied event ids on a
// database holding rows past their retention and rows within it: stored command replies and
// idempotency records older than --idempotency-retention (unit.retain), and applied event ids
// (ordered and random) older than --processed-events-retention before the consumer's newest
// (unit.retainProcessed), all pruned at start and then hourly (random ids daily). The old
// rows go, the young ones stay. It fails if a service does not prune, or prunes another table
// or consumer than its own.
func TestRetentionRuns(t *testing.T) {
	const (
		reply   = `INSERT INTO command_replies (scope, key, request_hash, status, body, created_at) VALUES ('test', ?, 'h', 200, '', ?)`
		billKey = `INSERT INTO idempotency_keys (scope, key, request_hash, response, created_at) VALUES ('test', ?, 'h', '{}', ?)`
		patKey  = `INSERT INTO idempotency_keys (scope, key, request_hash, resource_id, created_at) VALUES ('test', ?, 'h', 'r', ?)`
		replies = "command_replies"
		keys    = "idempotency_keys"
	)
	type kept struct{ table, insert string }
	services := []struct {
		name      string
		addrs     []string
		args      func(t *testing.T, dataDir, url string) []string
		kept      []kept   // tables pruned by age (created_at)
		consumers []string // processed_events pruned for these consumers
	}{
		{"billing", billingAddrs, func(t *testing.T, dataDir, url string) []string {
			return append(billingArgs(t, url), "--data-dir="+dataDir)
		}, []kept{{replies, reply}, {keys, billKey}}, []string{billing.ConsumerPatientEvents}},
		{"patient", patientAddrs, func(t *testing.T, dataDir, url string) []string {
			return append(patientArgs(t, url), "--data-dir="+dataDir)
		}, []kept{{replies, reply}, {keys, patKey}}, nil},
		{"auth", authAddrs, func(t *testing.T, dataDir, url string) []string {
			return authArgs(t, dataDir, url)
		}, []kept{{replies, reply}}, nil},
		{"analytics", analyticsAddrs, func(t *testing.T, dataDir, url string) []string {
			return analyticsArgs(t, dataDir, url, brokertest.Start(t).Addr(), "--log-level=warn")
		}, nil, []string{analytics.Consumer}},
	}
	for _, dbName := range databases(t) {
		for _, svc := range services {
			t.Run(dbName+"/"+svc.name, func(t *testing.T) {
				dataDir, url := t.TempDir(), dbURLFor(t, dbName)
				args := svc.args(t, dataDir, url)
				// The first start migrates the database; the rows go in while no process runs.
				_, stop := startPMS(t, svc.addrs, args...)
				if err := stop(); err != nil {
					t.Fatal(err)
				}
				dsn := url
				if dsn == "" {
					dsn = "sqlite://" + filepath.Join(dataDir, svc.name+".db")
				}
				d, err := db.Open(context.Background(), dsn, svc.name)
				if err != nil {
					t.Fatal(err)
				}
				defer d.Close()
				ctx := context.Background()
				exec := func(q string, args ...any) {
					t.Helper()
					if _, err := d.ExecContext(ctx, d.Rebind(q), args...); err != nil {
						t.Fatal(err)
					}
				}
				count := func(q string, args ...any) int {
					t.Helper()
					var n int
					if err := d.GetContext(ctx, &n, d.Rebind(q), args...); err != nil {
						t.Fatal(err)
					}
					return n
				}

				now := time.Now().UTC()
				for _, k := range svc.kept {
					exec(k.insert, "old", d.Time(now.Add(-idempotency.DefaultRetention-time.Hour)))
					exec(k.insert, "young", d.Time(now))
				}
				old := now.Add(-outbox.DefaultProcessedRetention - time.Hour)
				young := ids.OrderedAt(now)
				for _, c := range svc.consumers {
					for _, e := range []struct {
						id string
						at time.Time
					}{{ids.OrderedAt(old), old}, {"ffffffff-a-random-id-from-before-issue-20", old}, {young, now}} {
						exec(`INSERT INTO processed_events (consumer, event_id, processed_at) VALUES (?, ?, ?)`, c, e.id, d.Time(e.at))
					}
				}

				_, stop = startPMS(t, svc.addrs, args...)
				defer stop()
				polltest.Until(t, 30*time.Second, "the rows past their retention to be pruned", func() bool {
					for _, k := range svc.kept {
						if count(`SELECT count(*) FROM `+k.table+` WHERE scope = 'test'`) != 1 {
							return false
						}
					}
					for _, c := range svc.consumers {
						if count(`SELECT count(*) FROM processed_events WHERE consumer = ?`, c) != 1 {
							return false
						}
					}
					return true
				})
				for _, k := range svc.kept {
					if count(`SELECT count(*) FROM `+k.table+` WHERE scope = 'test' AND key = 'young'`) != 1 {
						t.Fatalf("%s: the young row went too", k.table)
					}
				}
				for _, c := range svc.consumers {
					if count(`SELECT count(*) FROM processed_events WHERE consumer = ? AND event_id = ?`, c, young) != 1 {
						t.Fatalf("%s: the young event id went too", c)
					}
				}
			})
		}
	}
}
