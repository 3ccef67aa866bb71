package outbox

import (
	"context"
	"time"

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
// ids (ids.Ordered) since issue 20, so that range holds every old row of theirs. Random ids
// recorded before, or chosen by another producer, mostly sort above it and are kept
// (docs/kafka.md says how to drop them by hand).
func PruneProcessed(ctx context.Context, d *db.DB, consumer string, keep time.Duration, now time.Time) (int64, error) {
	return pruneProcessed(ctx, d, consumer, keep, now, pruneBatch)
}

func pruneProcessed(ctx context.Context, d *db.DB, consumer string, keep time.Duration, now time.Time, batch int) (int64, error) {
	newest, ok, err := newestProcessed(ctx, d, consumer, now)
	if err != nil || !ok {
		return 0, err
	}
	cutoff := newest.Add(-keep)
	stmt := d.Rebind(`DELETE FROM processed_events WHERE consumer = ? AND event_id IN (
		SELECT event_id FROM processed_events WHERE consumer = ? AND event_id < ? AND processed_at < ? ORDER BY event_id LIMIT ?)`)
	var n int64
	for {
		k, err := db.Affected(d.ExecContext(ctx, stmt, consumer, consumer, ids.Floor(cutoff), d.Time(cutoff), batch))
		n += k
		if err != nil || k < int64(batch) {
			return n, err
		}
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
