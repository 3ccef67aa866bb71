package patient

import "context"

// StallAfterCommit makes every change of s run f after its transaction committed, before
// the service settles the change's audit entry.
func StallAfterCommit(s *Store, f func(ctx context.Context)) { s.afterCommit = f }
