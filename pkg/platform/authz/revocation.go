package authz

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pms/pms/pkg/platform/errs"
	"github.com/prometheus/client_golang/prometheus"
)

// Revocation kinds, as the auth service streams them.
const (
	// RevokeUser ends a user's access tokens of a version below MinVersion (except those of
	// ExceptSession when set).
	RevokeUser = "user"
	// RevokeSession ends the access tokens of one session (SessionID).
	RevokeSession = "session"
)

// Revocation is one entry of the auth service's revocation stream, in sequence order.
type Revocation struct {
	Seq           int64
	Kind          string
	UserID        string
	SessionID     string
	MinVersion    int64
	ExceptSession string
	// Reason is why (logout, disabled, role_changed...): for logs and metrics only.
	Reason string
	// At is when auth committed it; an entry matters for AccessTokenTTL after it (no token
	// it ends can outlive that), then the table forgets it.
	At time.Time
}

// DefaultRevocationStaleAfter is how long a verifier may go without hearing from the
// revocation stream (auth sends a heartbeat every second) before it refuses writes: long
// enough to ride out an auth restart, short enough that a revoked token cannot keep
// changing records through a partition for long. Reads go on, checked against the table as
// last known.
const DefaultRevocationStaleAfter = 15 * time.Second

// revocationMargin is kept beyond AccessTokenTTL for clock skew between auth and a verifier.
const revocationMargin = time.Minute

// ErrRevoked is the cause (for logs) of refusing a revoked token; the caller sees the usual
// unauthenticated answer.
var ErrRevoked = errors.New("authz: token revoked")

// ErrRevocationsStale refuses a write while the verifier has lost the revocation stream
// for longer than its bound: a token revoked meanwhile could otherwise keep writing.
var ErrRevocationsStale = errs.New(errs.Unavailable, "the revocation list is out of date; writes are refused until it is back")

// DenyTable is a verifier's view of the revocation stream: the small set of entries still
// able to end a live token (at most AccessTokenTTL old), folded so a check is two map
// lookups under a read lock. A table that was never told otherwise (Follow not called) is
// never stale: a process that verifies without revocations (tests, a tool) is unaffected.
type DenyTable struct {
	mu       sync.RWMutex
	users    map[string]userDeny
	sessions map[string]time.Time
	seq      int64

	followed   atomic.Bool
	base       time.Time    // heard counts from it, on the monotonic clock
	heard      atomic.Int64 // nanoseconds after base of the last message from the stream
	staleAfter time.Duration
	now        func() time.Time
	changed    chan struct{} // closed and replaced on every apply (tests and benchmarks wait on it)
}

type userDeny struct {
	minVersion int64
	except     string
	at         time.Time
}

// NewDenyTable returns an empty table that counts as stale after staleAfter without news
// (DefaultRevocationStaleAfter when ≤ 0) once something follows the stream into it.
func NewDenyTable(staleAfter time.Duration) *DenyTable {
	if staleAfter <= 0 {
		staleAfter = DefaultRevocationStaleAfter
	}
	return &DenyTable{users: map[string]userDeny{}, sessions: map[string]time.Time{}, staleAfter: staleAfter,
		now: time.Now, base: time.Now(), changed: make(chan struct{})}
}

// Follow marks the table as fed by a stream over the network: from now on it goes stale
// without news. A table fed in the auth service's own process is not: it reads the very
// database revocations are committed to, so it cannot fall behind one it could not read.
func (t *DenyTable) Follow() {
	t.Heard()
	t.followed.Store(true)
}

// Heard records a message (entries or a heartbeat) from the stream.
func (t *DenyTable) Heard() { t.heard.Store(int64(t.now().Sub(t.base))) }

// Stale reports whether the table has gone longer than its bound without news.
func (t *DenyTable) Stale() bool {
	if t == nil || !t.followed.Load() {
		return false
	}
	return t.now().Sub(t.base)-time.Duration(t.heard.Load()) > t.staleAfter
}

// Seq is the sequence number of the last entry applied: a revocation of sequence s is in
// force here once Seq() ≥ s.
func (t *DenyTable) Seq() int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.seq
}

// Changed returns a channel closed at the next Apply or Reset.
func (t *DenyTable) Changed() <-chan struct{} {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.changed
}

// Apply folds entries (in sequence order) into the table; entries at or below the current
// sequence are ignored, so a replay after a reconnect applies nothing twice.
func (t *DenyTable) Apply(entries []Revocation, head int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.apply(entries, head)
}

// Reset replaces the table with a snapshot (a first connection, or auth's sequence went
// backwards: a restored database).
func (t *DenyTable) Reset(entries []Revocation, head int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.users, t.sessions, t.seq = map[string]userDeny{}, map[string]time.Time{}, 0
	t.apply(entries, head)
}

func (t *DenyTable) apply(entries []Revocation, head int64) {
	now := t.now()
	for _, r := range entries {
		if r.Seq <= t.seq {
			continue
		}
		t.seq = r.Seq
		if now.Sub(r.At) > AccessTokenTTL+revocationMargin {
			continue
		}
		switch r.Kind {
		case RevokeUser:
			// The highest version wins: a later entry without an exception supersedes an
			// earlier one's.
			if cur, ok := t.users[r.UserID]; !ok || r.MinVersion >= cur.minVersion {
				t.users[r.UserID] = userDeny{minVersion: r.MinVersion, except: r.ExceptSession, at: r.At}
			}
		case RevokeSession:
			t.sessions[r.SessionID] = r.At
		}
	}
	if head > t.seq {
		t.seq = head
	}
	t.prune(now)
	close(t.changed)
	t.changed = make(chan struct{})
}

// prune forgets entries no live token can be subject to any more.
func (t *DenyTable) prune(now time.Time) {
	for id, d := range t.users {
		if now.Sub(d.at) > AccessTokenTTL+revocationMargin {
			delete(t.users, id)
		}
	}
	for id, at := range t.sessions {
		if now.Sub(at) > AccessTokenTTL+revocationMargin {
			delete(t.sessions, id)
		}
	}
}

// Revoked reports whether p's token has been revoked.
func (t *DenyTable) Revoked(p Principal) bool {
	if t == nil {
		return false
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if p.SessionID != "" {
		if _, ok := t.sessions[p.SessionID]; ok {
			return true
		}
	}
	d, ok := t.users[p.Subject]
	return ok && p.Version < d.minVersion && (d.except == "" || d.except != p.SessionID)
}

// Len is the number of entries held (a metric).
func (t *DenyTable) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.users) + len(t.sessions)
}

// RegisterMetrics exports the table's state on reg under pms_<service>_revocations_…: the
// last sequence applied (compare across processes: a laggard shows), the entries held, and
// whether it is stale (writes refused). Ids never become labels.
func (t *DenyTable) RegisterMetrics(reg prometheus.Registerer, service string) {
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "pms", Subsystem: service, Name: name, Help: help}, f))
	}
	gauge("revocations_seq", "The last revocation sequence this process's verifiers apply.", func() float64 { return float64(t.Seq()) })
	gauge("revocations_entries", "Revocations held that can still end a live token.", func() float64 { return float64(t.Len()) })
	gauge("revocations_stale", "1 while the revocation stream has been lost longer than its bound (writes are refused).", func() float64 {
		if t.Stale() {
			return 1
		}
		return 0
	})
}
