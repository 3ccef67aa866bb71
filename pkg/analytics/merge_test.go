package analytics_test

import (
	"context"
	"testing"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/analytics"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
)

// TestFoldMerges, on PostgreSQL and SQLite: a merge takes one patient off the live count and
// an unmerge puts it back, each exactly once per event id, in a batch or alone, across
// partitions (shards).
func TestFoldMerges(t *testing.T) {
	dbtest.Each(t, migrations.Analytics(), func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		store := analytics.NewStore(d)
		p := func(id, typ string, part int32, off int64) analytics.Event {
			return analytics.Event{Topic: analytics.TopicPatient, Partition: part, Offset: off, ID: id, Type: typ, OccurredAt: day("2026-12-01", 10)}
		}
		batch := []analytics.Event{
			p("c1", analytics.PatientCreated, 0, 0), p("c2", analytics.PatientCreated, 1, 0), p("c3", analytics.PatientCreated, 2, 0),
			p("m1", analytics.PatientMerged, 1, 1),
			p("m1", analytics.PatientMerged, 1, 1), // a repeat in the batch
		}
		if _, err := store.FoldBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
		check := func(merged, live int64) {
			t.Helper()
			s, err := store.Summary(ctx, analytics.SummaryQuery{})
			if err != nil {
				t.Fatal(err)
			}
			if s.Patients.Registered != 3 || s.Patients.Merged != merged || s.Patients.Live != live {
				t.Fatalf("patients %+v, want merged %d live %d", s.Patients, merged, live)
			}
		}
		check(1, 2)
		for _, ev := range []analytics.Event{p("m1", analytics.PatientMerged, 1, 1), p("u1", analytics.PatientUnmerged, 1, 2), p("u1", analytics.PatientUnmerged, 1, 2)} {
			if _, err := store.Fold(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		check(0, 3)
		if _, err := store.Fold(ctx, p("m2", analytics.PatientMerged, 2, 1)); err != nil {
			t.Fatal(err)
		}
		check(1, 2)
	})
}
