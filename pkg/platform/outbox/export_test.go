package outbox

import (
	"context"
	"time"

	"github.com/pms/pms/pkg/platform/db"
)

// Prune runs one pruning pass of r as if at now (Relay.prune), for TestPruneByID.
func (r *Relay) Prune(ctx context.Context, now time.Time) (int64, error) { return r.prune(ctx, now) }

// Floor returns the id at or below which the relay takes every row to be published.
func (r *Relay) Floor() int64 { return r.floor.Load() }

// PruneProcessedBatch is PruneProcessed deleting batch ids a statement, for TestPruneProcessed.
func PruneProcessedBatch(ctx context.Context, d *db.DB, consumer string, keep time.Duration, now time.Time, batch int) (int64, error) {
	return pruneProcessed(ctx, d, consumer, keep, now, batch, false)
}

// PruneRandomProcessedBatch is PruneRandomProcessed deleting batch ids a statement.
func PruneRandomProcessedBatch(ctx context.Context, d *db.DB, consumer string, keep time.Duration, now time.Time, batch int) (int64, error) {
	return pruneProcessed(ctx, d, consumer, keep, now, batch, true)
}

// MarkSent is Relay.markSent, for TestMarkSentKeepsGenericPlan.
func (r *Relay) MarkSent(ctx context.Context, q Queryer, ids []int64) error {
	return r.markSent(ctx, q, ids)
}
