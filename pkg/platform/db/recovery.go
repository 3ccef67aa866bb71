package db

import (
	"context"
	"database/sql"
	"time"
)

// Recovery is the WAL replay a PostgreSQL server ran when it last started: a point-in-time
// restore, a promoted standby. The events a service published on the old server after
// LastCommit are of changes the recovered database does not hold, and they were all
// published before ServerStart; a consumer on the recovered database fences them off
// (outbox.FenceRecovery, docs/operations.md).
type Recovery struct {
	// LastCommit is the commit time of the last transaction replayed: the newest change the
	// recovered database holds from the old server.
	LastCommit time.Time
	// ServerStart is when the recovering server started.
	ServerStart time.Time
}

// LastRecovery returns the recovery d's server ran when it started; ok is false when it
// replayed no transaction (a clean start, or a crash recovery, which loses nothing committed),
// and always on SQLite, whose restores (`pms restore`) fence the consumers themselves.
// PostgreSQL keeps the replay's last commit time (pg_last_xact_replay_timestamp) until the
// server restarts: a restart between the recovery and the platform's first start loses it
// (the runbook says so).
func LastRecovery(ctx context.Context, d *DB) (r Recovery, ok bool, err error) {
	if d.Dialect != Postgres {
		return Recovery{}, false, nil
	}
	var last sql.NullTime
	if err := d.QueryRowxContext(ctx, `SELECT pg_last_xact_replay_timestamp(), pg_postmaster_start_time()`).Scan(&last, &r.ServerStart); err != nil {
		return Recovery{}, false, Classify(err)
	}
	if !last.Valid {
		return Recovery{}, false, nil
	}
	r.LastCommit = last.Time.UTC()
	r.ServerStart = r.ServerStart.UTC()
	return r, r.LastCommit.Before(r.ServerStart), nil
}
