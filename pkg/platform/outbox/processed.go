package outbox

import (
	"context"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/ids"
)

// DefaultProcessedRetention is how long a consumer keeps the id of an event it applied
// (processed_events) before PruneProcessed may delete it: far longer than the gap between
// two deliveries of one event (the relay publishes again what it published just before a
// crash; a restore republishes minutes before its backup, into consumers restored to the
// same point, whose newest id PruneProcessed counts from).
const DefaultProcessedRetention = 35 * 24 * time.Hour

// pruneBatch is how many ids one DELETE of PruneProcessed removes, so that no statement
// holds its locks or its write-ahead log for long on a table of millions.
const pruneBatch = 5000

// PruneProcessed deletes the ids consumer applied more than keep before the newest event it
// applied, and returns how many went. Without it processed_events grows by a row per event
// for ever: every audited read is an event for analytics.
//
// It counts from the newest ordered id the consumer holds, not from the clock: a database
// restored from an old backup, or a consumer back after a long stop, keeps the ids around its
// own last events, so the copies a restore publishes again still find theirs. The rows go by
// a range of the primary key (consumer, event_id) up to ids.Floor of the cutoff, and only
// those whose processed_at is as old: every service's events and audit entries carry ordered
// ids (ids.Ordered) since issue 20, so that range holds every old row of theirs, and a pass
// reads little more than what it deletes. Random ids sort below that range (one in 160, and
// go with it) or above it: PruneRandomProcessed deletes those.
func PruneProcessed(ctx context.Context, d *db.DB, consumer string, keep time.Duration, now time.Time) (int64, error) {
	return pruneProcessed(ctx, d, consumer, keep, now, pruneBatch, false)
}

// PruneRandomProcessed deletes, as PruneProcessed counts, the old ids of consumer that sort
// above every ordered id there can be yet (ids.Floor of tomorrow): random ids, recorded before
// issue 20 or chosen by another producer. One between the two ranges (about one in 90,000)
// waits until PruneProcessed's range has risen past it. A pass reads every id of that range,
// young or old (random ids of every age are interleaved there, and no index on time helps),
// so it is for a daily pass, not an hourly one; the range is empty once the random ids of an
// upgraded database have aged out, and the pass then costs one index probe.
func PruneRandomProcessed(ctx context.Context, d *db.DB, consumer string, keep time.Duration, now time.Time) (int64, error) {
	return pruneProcessed(ctx, d, consumer, keep, now, pruneBatch, true)
}

func pruneProcessed(ctx context.Context, d *db.DB, consumer string, keep time.Duration, now time.Time, batch int, random bool) (int64, error) {
	newest, ok, err := newestProcessed(ctx, d, consumer, now)
	if err != nil || !ok {
		return 0, err
	}
	cutoff := newest.Add(-keep)
	if random {
		return pruneRange(ctx, d, consumer, ids.Floor(now.Add(24*time.Hour)), "", cutoff, batch)
	}
	return pruneRange(ctx, d, consumer, "", ids.Floor(cutoff), cutoff, batch)
}

// pruneRange deletes consumer's ids after after (and before before, unless empty) that were
// processed before cutoff, walking the range batch ids at a time in key order, young and old
// alike: each step reads the next batch ids of the primary key after the last one it read
// (an ordered index scan that stops at the limit), and deletes the old ones among them by
// that key range. So every id of the range is read about twice, whatever the plan. Its first
// form asked for the next batch *old* ids (`AND processed_at < ?` in the ordered query), which
// a plan without statistics served as a bitmap scan of the whole rest of the range and a sort,
// in every batch: quadratic in the range, 1,030,000 index entries read for 20,000 rows
// (TestPruneRangeReadsEachRowOnce). On PostgreSQL the step runs with sorts disabled, so that
// only the key's order can serve it, and with its limit in the statement's text, so that a
// plan made without the values still knows how few rows it needs.
func pruneRange(ctx context.Context, d *db.DB, consumer, after, before string, cutoff time.Time, batch int) (int64, error) {
	bounds, args := `event_id > ?`, []any{after}
	if before != "" {
		bounds, args = bounds+` AND event_id < ?`, append(args, before)
	}
	find := d.Rebind(`SELECT count(*), coalesce(max(event_id), ''), coalesce(sum(CASE WHEN processed_at < ? THEN 1 ELSE 0 END), 0)
		FROM (SELECT event_id, processed_at FROM processed_events WHERE consumer = ? AND ` + bounds + `
		ORDER BY event_id LIMIT ` + strconv.Itoa(batch) + `) b`)
	drop := d.Rebind(`DELETE FROM processed_events WHERE consumer = ? AND event_id > ? AND event_id <= ? AND processed_at < ?`)
	var n int64
	for {
		var found, old int
		var last string
		step := func(q sqlx.QueryerContext) error {
			return q.QueryRowxContext(ctx, find, append([]any{d.Time(cutoff), consumer}, args...)...).Scan(&found, &last, &old)
		}
		var err error
		if d.Dialect == db.Postgres {
			err = db.InTx(ctx, d, func(tx *sqlx.Tx) error {
				// Without statistics the planner takes the range for a few rows and reads all of
				// it, sorted, to find the first ones (a bitmap scan): with no sort allowed, only
				// the primary key's own order serves the walk, and it stops at the limit.
				if _, err := tx.ExecContext(ctx, `SET LOCAL enable_sort = off`); err != nil {
					return err
				}
				return step(tx)
			})
		} else {
			err = step(d)
		}
		if err != nil || found == 0 {
			return n, db.Classify(err)
		}
		if old > 0 {
			k, err := db.Affected(d.ExecContext(ctx, drop, consumer, args[0], last, d.Time(cutoff)))
			n += k
			if err != nil {
				return n, err
			}
		}
		if found < batch {
			return n, nil
		}
		args[0] = last
	}
}

// newestProcessed returns when the newest ordered id consumer applied was made (no later
// than now), and false when it holds none: the last ids below now's in key order, the first
// that is an ordered id. A random id can sort among them only by chance; it is skipped.
func newestProcessed(ctx context.Context, d *db.DB, consumer string, now time.Time) (time.Time, bool, error) {
	var last []string
	err := d.SelectContext(ctx, &last, d.Rebind(`SELECT event_id FROM processed_events WHERE consumer = ? AND event_id < ?
		ORDER BY event_id DESC LIMIT 64`), consumer, ids.Floor(now.Add(time.Millisecond)))
	if err != nil {
		return time.Time{}, false, db.Classify(err)
	}
	for _, id := range last {
		if at, ok := ids.At(id); ok {
			return at, true, nil
		}
	}
	return time.Time{}, false, nil
}
