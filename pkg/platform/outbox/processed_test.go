package outbox_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/ids"
	"github.com/pms/pms/pkg/platform/outbox"
)

// TestPruneProcessed: PruneProcessed deletes, a batch at a time, exactly the ordered ids the
// consumer applied more than keep before its newest one and the ids sorting below them that
// are as old, and PruneRandomProcessed the ids above every ordered id (random ones) that are
// as old, one a batch (several batches; that each starts after the last, which keeps a pass
// linear, is a cost no assertion here sees); they keep the younger ones,
// another consumer's ids and any row whose processed_at is recent; a pruned id is new
// again to MarkProcessed and a kept one is still a repeat. In a database whose newest event
// is older than keep (restored from an old backup) it counts from that event, not from now.
func TestPruneProcessed(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Millisecond)
		const keep = 35 * 24 * time.Hour
		day := 24 * time.Hour
		put := func(consumer, id string, at time.Time) string {
			t.Helper()
			if _, err := d.ExecContext(ctx, d.Rebind(`INSERT INTO processed_events (consumer, event_id, processed_at) VALUES (?, ?, ?)`),
				consumer, id, d.Time(at)); err != nil {
				t.Fatal(err)
			}
			return id
		}
		var old, kept []string
		for i := range 6 { // 6 old ordered ids and 1 old low id: batches of 3 (3 + 3 + 1)
			at := now.Add(-keep - day - time.Duration(i)*time.Hour)
			old = append(old, put("c1", ids.OrderedAt(at), at))
		}
		old = append(old,
			put("c1", "00000000-client-chosen-old", now.Add(-keep-day)),        // below the range, applied long ago
			put("c1", "ffffffff-random-before-issue-20", now.Add(-keep-2*day)), // above every ordered id, applied long ago
			put("c1", randomAbove(now), now.Add(-keep-day)),                    // a random id applied long ago
		)
		kept = append(kept,
			put("c1", ids.OrderedAt(now.Add(-keep+day)), now.Add(-keep+day)), // younger than keep
			put("c1", ids.OrderedAt(now), now),                               // the newest
			put("c1", ids.OrderedAt(now.Add(-keep-day)), now.Add(-day)),      // processed recently (a replay)
			put("c1", randomAbove(now), now.Add(-day)),                       // a random id applied recently
			put("c1", "00000000-client-chosen-new", now.Add(-day)),           // below the range, applied recently
		)
		other := put("c2", ids.OrderedAt(now.Add(-keep-day)), now.Add(-keep-day)) // another consumer's
		// The ordered range (and what sorts below it), then the random ids above it.
		if n, err := outbox.PruneProcessedBatch(ctx, d, "c1", keep, now, 3); err != nil || n != 7 {
			t.Fatalf("pruned %d, %v; want 7", n, err)
		}
		if n, err := outbox.PruneRandomProcessedBatch(ctx, d, "c1", keep, now, 1); err != nil || n != 2 {
			t.Fatalf("pruned %d random ids, %v; want 2", n, err)
		}
		left := func(consumer string) []string {
			var got []string
			if err := d.SelectContext(ctx, &got, d.Rebind(`SELECT event_id FROM processed_events WHERE consumer = ? ORDER BY event_id`), consumer); err != nil {
				t.Fatal(err)
			}
			return got
		}
		slices.Sort(kept)
		if got := left("c1"); !slices.Equal(got, kept) {
			t.Fatalf("kept %v, want %v", got, kept)
		}
		if got := left("c2"); !slices.Equal(got, []string{other}) {
			t.Fatalf("another consumer's ids: %v", got)
		}
		mark := func(id string) bool {
			return markInTx(t, d, true, func(tx *sqlx.Tx) (bool, error) { return outbox.MarkProcessed(ctx, tx, d, "c1", id) })
		}
		if !mark(old[0]) || !mark(old[6]) || !mark(old[8]) || mark(kept[0]) || mark(kept[3]) || mark(kept[4]) {
			t.Fatal("a pruned id must be new again, a kept one still a repeat")
		}

		// A database restored from a backup 100 days old: its newest event is then, and the
		// ids just before it (a restore publishes their events again) stay.
		then := now.Add(-100 * day)
		recent := put("c3", ids.OrderedAt(then.Add(-5*time.Minute)), then.Add(-5*time.Minute))
		put("c3", ids.OrderedAt(then), then)
		gone := put("c3", ids.OrderedAt(then.Add(-keep-day)), then.Add(-keep-day))
		if n, err := outbox.PruneProcessed(ctx, d, "c3", keep, now); err != nil || n != 1 {
			t.Fatalf("restored database: pruned %d, %v; want 1 (%s)", n, err, gone)
		}
		if got := left("c3"); len(got) != 2 || got[0] != recent {
			t.Fatalf("restored database kept %v", got)
		}
		// A consumer holding no ordered id prunes nothing.
		if n, err := outbox.PruneProcessed(ctx, d, "c4", keep, now); err != nil || n != 0 {
			t.Fatalf("empty consumer: %d, %v", n, err)
		}
	})
}

// randomAbove returns a random (version 4) id that sorts above every ordered id made before
// tomorrow, as all but about one in 160 do.
func randomAbove(now time.Time) string {
	for {
		if id := uuid.NewString(); id > ids.Floor(now.Add(24*time.Hour)) {
			return id
		}
	}
}

// TestPruneRangeReadsEachRowOnce: a pass over random ids, old and young interleaved (the
// young ones stay), reads the primary key in linear time: every batch starts after the last
// id of the one before. A walk that began each batch at the range's start would read the
// young rows again in every batch, quadratic in the range: doubling the rows would about
// quadruple the reads, where here they double (allowed 2.5), and about 500,000 index entries
// would be read for 20,000 rows (measured about 40,000; allowed 10 a row). PostgreSQL only: it counts the index's reads in pg_stat_user_indexes, on one
// connection so that its statistics are flushed when asked.
func TestPruneRangeReadsEachRowOnce(t *testing.T) {
	ctx := context.Background()
	d := dbtest.Open(t, db.Postgres, migrations.Patient())
	d.SetMaxOpenConns(1)
	now := time.Now().UTC().Truncate(time.Millisecond)
	const keep = 35 * 24 * time.Hour
	reads := func() int64 {
		t.Helper()
		var n int64
		if _, err := d.ExecContext(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
			t.Fatal(err)
		}
		// The flush happens once the session is idle, between the two statements.
		if err := d.GetContext(ctx, &n, `SELECT idx_tup_read FROM pg_stat_user_indexes
			WHERE relname = 'processed_events' AND schemaname = current_schema()`); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// pass prunes consumer's rows random ids above every ordered id, every other one applied
	// long ago, plus the newest ordered id the pass counts from, and returns the index
	// entries it read.
	pass := func(consumer string, rows int64) int64 {
		t.Helper()
		if _, err := d.ExecContext(ctx, `INSERT INTO processed_events (consumer, event_id, processed_at)
			SELECT $1, 'ffffffff-' || lpad(i::text, 12, '0'), CASE WHEN i % 2 = 0 THEN $2::timestamptz ELSE $3::timestamptz END
			FROM generate_series(1, $4::int) AS i`, consumer, now.Add(-keep-24*time.Hour), now, rows); err != nil {
			t.Fatal(err)
		}
		if _, err := d.ExecContext(ctx, `INSERT INTO processed_events (consumer, event_id, processed_at) VALUES ($1, $2, $3)`,
			consumer, ids.OrderedAt(now), now); err != nil {
			t.Fatal(err)
		}
		before := reads()
		if n, err := outbox.PruneRandomProcessedBatch(ctx, d, consumer, keep, now, 100); err != nil || n != rows/2 {
			t.Fatalf("pruned %d, %v; want %d", n, err, rows/2)
		}
		n := reads() - before
		t.Logf("the pass read %d index entries for %d rows", n, rows)
		return n
	}
	// A first pass settles the statements' plans (a prepared statement's first five runs are
	// planned for their values), so the two measured passes run the same ones.
	pass("c0", 2000)
	small, large := pass("c1", 10000), pass("c2", 20000)
	if large > 10*20000 || float64(large)/float64(small) > 2.5 {
		t.Fatalf("%d and %d index entries read for 10,000 and 20,000 rows: a batch read again what an earlier one passed", small, large)
	}
}
