package outbox

import (
	"context"
	"time"
)

// Prune runs one pruning pass of r as if at now (Relay.prune), for TestPruneByID.
func (r *Relay) Prune(ctx context.Context, now time.Time) (int64, error) { return r.prune(ctx, now) }
