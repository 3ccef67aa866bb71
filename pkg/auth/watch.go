package auth

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
)

// RevocationPoll is how often a RevocationFeed looks for new revocations. Polling (one
// indexed max() a tenth of a second) is what lets every auth replica serve revocations
// committed by any other: their latency is this interval at worst, plus the network. A
// revocation committed in the feed's own process wakes it at once (Store.inTx).
const RevocationPoll = 100 * time.Millisecond

// RevocationHeartbeat is how often a watcher hears from its stream when nothing is revoked:
// what keeps its table from going stale (authz.DefaultRevocationStaleAfter).
const RevocationHeartbeat = time.Second

// revocationWindow is how far back a snapshot reaches: no access token outlives it.
const revocationWindow = authz.AccessTokenTTL + time.Minute

// RevocationFeed serves the revocations table to watchers: the auth service's gRPC
// RevocationService streams, and in-process verifiers (`pms all`, auth's own guard). One
// poller per process follows the table's head; each watcher reads what is new for it.
type RevocationFeed struct {
	store     *Store
	poll      time.Duration
	heartbeat time.Duration
	now       func() time.Time

	wake chan struct{}

	mu      sync.Mutex
	head    int64
	changed chan struct{}
}

// NewRevocationFeed returns a feed over store; Run must be running for watchers to learn of
// new revocations. Zero durations take RevocationPoll and RevocationHeartbeat.
func NewRevocationFeed(store *Store, poll, heartbeat time.Duration) *RevocationFeed {
	if poll <= 0 {
		poll = RevocationPoll
	}
	if heartbeat <= 0 {
		heartbeat = RevocationHeartbeat
	}
	f := &RevocationFeed{store: store, poll: poll, heartbeat: heartbeat, now: time.Now, wake: make(chan struct{}, 1), changed: make(chan struct{})}
	wake := f.Wake
	store.revoked.Store(&wake)
	return f
}

// Wake makes Run read the head now: a revocation committed in this process.
func (f *RevocationFeed) Wake() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Run follows the table's head until ctx ends. A failed read is retried at the next tick
// (watchers keep their heartbeats meanwhile: the table they hold is still right as of
// its sequence).
func (f *RevocationFeed) Run(ctx context.Context) {
	t := time.NewTicker(f.poll)
	defer t.Stop()
	for {
		if h, err := f.store.revocationHead(ctx); err == nil {
			f.advance(h)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-f.wake:
		}
	}
}

func (f *RevocationFeed) advance(h int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if h != f.head {
		f.head = h
		close(f.changed)
		f.changed = make(chan struct{})
	}
}

// state is the head as last polled and the channel closed when it next moves.
func (f *RevocationFeed) state() (int64, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.head, f.changed
}

// Update is one message to a watcher: apply Entries (or, with Reset, replace the table with
// them); Head is the sequence the watcher stands at afterwards.
type Update struct {
	Reset   bool
	Entries []authz.Revocation
	Head    int64
}

// Watch sends the watcher standing at after (0: nothing yet) its first update — what came
// after, or a snapshot of the last revocationWindow when it is new or ahead of this
// database (restored from a backup) — then each later batch and a heartbeat
// (an update without entries) every heartbeat interval, until ctx ends or send fails.
func (f *RevocationFeed) Watch(ctx context.Context, after int64, send func(Update) error) error {
	dbHead, err := f.store.revocationHead(ctx)
	if err != nil {
		return err
	}
	u := Update{Head: after}
	if after <= 0 || after > dbHead {
		u = Update{Reset: true, Head: dbHead}
		after = 0
	}
	// Rows read after the head: a row committed in between is in them (sequence numbers are
	// handed out in commit order), and Head never passes a row not sent.
	rows, err := f.store.revocationsAfter(ctx, after, f.now().Add(-revocationWindow))
	if err != nil {
		return err
	}
	u.Entries = rows
	for _, r := range rows {
		u.Head = max(u.Head, r.Seq)
	}
	if err := send(u); err != nil {
		return err
	}
	last := u.Head
	beat := time.NewTicker(f.heartbeat)
	defer beat.Stop()
	for {
		head, changed := f.state()
		if head <= last {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-beat.C:
				if err := send(Update{Head: last}); err != nil {
					return err
				}
				continue
			case <-changed:
			}
		}
		rows, err := f.store.revocationsAfter(ctx, last, time.Time{})
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			if head < last {
				// The head went backwards (a restored database): the watcher reconnects
				// with its sequence, which is then ahead, and gets a snapshot.
				return errHeadBehind
			}
			// The poller saw a head this read does not yet: wait for the next change.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-beat.C:
				if err := send(Update{Head: last}); err != nil {
					return err
				}
			}
			continue
		}
		last = rows[len(rows)-1].Seq
		if err := send(Update{Entries: rows, Head: last}); err != nil {
			return err
		}
	}
}

// Follow keeps table in step with the feed in this process (no network), until ctx ends:
// how `pms all` and the auth service's own guard watch. It does not mark the table followed
// (authz.DenyTable.Follow): reading the database revocations are committed to, it cannot
// lag behind one it could not read, so it never refuses writes as stale.
func (f *RevocationFeed) Follow(ctx context.Context, table *authz.DenyTable, logger log.Logger) {
	for ctx.Err() == nil {
		err := f.Watch(ctx, table.Seq(), func(u Update) error {
			ApplyUpdate(table, u)
			return nil
		})
		if ctx.Err() == nil {
			_ = level.Warn(logger).Log("msg", "revocation feed interrupted; resuming", "seq", table.Seq(), "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(f.poll):
		}
	}
}

// ApplyUpdate folds u into table and marks the stream heard.
func ApplyUpdate(table *authz.DenyTable, u Update) {
	if u.Reset {
		table.Reset(u.Entries, u.Head)
	} else if len(u.Entries) > 0 || u.Head > table.Seq() {
		table.Apply(u.Entries, u.Head)
	}
	table.Heard()
}

// errHeadBehind ends a watch whose watcher is ahead of the database.
var errHeadBehind = errors.New("auth: the revocation list went backwards")

// maxRevocationBatch bounds one read of the table (a burst is sent in several updates).
const maxRevocationBatch = 1000

// revocationHead is the table's last sequence (0 when empty).
func (s *Store) revocationHead(ctx context.Context) (int64, error) {
	var h int64
	err := s.db.GetContext(ctx, &h, `SELECT COALESCE(MAX(seq), 0) FROM revocations`)
	return h, db.Classify(err)
}

// revocationsAfter reads the revocations after sequence after, created at or after since,
// in sequence order, at most maxRevocationBatch of them.
func (s *Store) revocationsAfter(ctx context.Context, after int64, since time.Time) ([]authz.Revocation, error) {
	var rows []Revocation
	err := s.db.SelectContext(ctx, &rows, s.db.Rebind(`SELECT seq, kind, user_id, COALESCE(CAST(session_id AS TEXT), '') AS session_id, min_version,
		COALESCE(CAST(except_session AS TEXT), '') AS except_session, reason, created_at FROM revocations
		WHERE seq > ? AND created_at >= ? ORDER BY seq LIMIT ?`), after, s.db.Time(since), maxRevocationBatch)
	if err != nil {
		return nil, db.Classify(err)
	}
	out := make([]authz.Revocation, len(rows))
	for i, r := range rows {
		out[i] = r.entry()
	}
	return out, nil
}

// entry is r as verifiers hold it.
func (r Revocation) entry() authz.Revocation {
	return authz.Revocation{Seq: r.Seq, Kind: r.Kind, UserID: r.UserID, SessionID: r.SessionID, MinVersion: r.MinVersion,
		ExceptSession: r.ExceptSession, Reason: r.Reason, At: r.CreatedAt.Time}
}

// pruneRevocations deletes revocations older than cutoff but the last (which keeps the
// sequence's head for watchers comparing theirs).
func (s *Store) pruneRevocations(ctx context.Context, cutoff time.Time) error {
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM revocations WHERE created_at < ? AND seq < (SELECT MAX(seq) FROM revocations)`),
		s.db.Time(cutoff))
	return db.Classify(err)
}
