package auth

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/platform/db"
)

// ThrottleOptions are the login throttle's limits. Zero values take the defaults.
type ThrottleOptions struct {
	// AccountAttempts is how many unproven attempts one account (email) gets per Window
	// from unknown devices before they are locked out, and one known device of the account
	// the same for itself (devices.go); default 5.
	AccountAttempts int
	// AddressAttempts is the same for one client address, for attempts from unknown devices;
	// default DefaultAddressAttempts.
	AddressAttempts int
	// Window is how long attempts are remembered; default 15 minutes.
	Window time.Duration
	// Lockout is the first lock-out; each further one in a row doubles it, up to
	// MaxLockout. Defaults 1 minute and 1 hour: growing, never permanent.
	Lockout    time.Duration
	MaxLockout time.Duration
}

// DefaultAddressAttempts is the default per-address limit: 200 per 15 minutes. A clinic's
// staff often share one NAT address, and at a shift change a hundred people signing in, a
// few mistyping, must not lock each other out; guessing one password stays bounded by the
// per-account limit, so the address limit only has to slow spraying across many accounts,
// and 200 in 15 minutes (one every 4.5 s, before the gateway's own per-address rate limit)
// does.
const DefaultAddressAttempts = 200

func (o ThrottleOptions) withDefaults() ThrottleOptions {
	if o.AccountAttempts <= 0 {
		o.AccountAttempts = 5
	}
	if o.AddressAttempts <= 0 {
		o.AddressAttempts = DefaultAddressAttempts
	}
	if o.Window <= 0 {
		o.Window = 15 * time.Minute
	}
	if o.Lockout <= 0 {
		o.Lockout = time.Minute
	}
	if o.MaxLockout < o.Lockout {
		o.MaxLockout = max(time.Hour, o.Lockout)
	}
	return o
}

// throttleState is one key's row: the attempts counted in the current window, the lock-out
// and how many lock-outs came in a row (which sets the next one's length).
type throttleState struct {
	Failures    int
	WindowStart time.Time
	LockedUntil time.Time
	Level       int
}

// admit decides one login attempt against a key allowed limit attempts per window. Every
// admitted attempt counts as a failure until the password is proven right (so concurrent
// guesses cannot all slip in before the first failure is recorded); the attempt after the
// limit is refused and starts a lock-out, and attempts during a lock-out are refused
// without changing anything. Lock-outs grow (Lockout, 2×, 4×, … up to MaxLockout) while
// they keep coming, and the count falls back once a whole Window has passed after the last
// one ended.
func (o ThrottleOptions) admit(st throttleState, limit int, now time.Time) (next throttleState, retry time.Duration, locked bool) {
	if now.Before(st.LockedUntil) {
		return st, st.LockedUntil.Sub(now), false
	}
	if st.WindowStart.IsZero() || now.Sub(st.WindowStart) >= o.Window {
		if st.LockedUntil.IsZero() || now.Sub(st.LockedUntil) >= o.Window {
			st.Level = 0
		}
		st.Failures, st.WindowStart = 0, now
	}
	if st.Failures >= limit {
		st.Level++
		d := o.MaxLockout
		if st.Level <= 30 && o.Lockout<<(st.Level-1) < o.MaxLockout {
			d = o.Lockout << (st.Level - 1)
		}
		st.LockedUntil, st.Failures, st.WindowStart = now.Add(d), 0, now
		return st, d, true
	}
	st.Failures++
	return st, 0, false
}

// throttleKey is one counter: an account or a client address, with its limit.
type throttleKey struct {
	name  string // "account:<email>" or "address:<ip>"
	limit int
}

func accountKey(email string) string { return "account:" + strings.ToLower(strings.TrimSpace(email)) }
func addressKey(addr string) string  { return "address:" + addr }

// passwordChangeKey throttles a user's own password changes (ChangePassword): a key only a
// holder of the user's access token can spend.
func passwordChangeKey(userID string) string { return "password-change:" + userID }

// throttleDecision is admitAttempt's answer: Retry > 0 means refused for that long; Locked
// names the keys whose lock-out this attempt started.
type throttleDecision struct {
	Retry  time.Duration
	Locked []string
}

type throttleRow struct {
	Failures    int          `db:"failures"`
	WindowStart db.Timestamp `db:"window_start"`
	LockedUntil db.Timestamp `db:"locked_until"`
	Level       int          `db:"level"`
}

// admitAttempt decides a login attempt against every key in one transaction, before any
// password is hashed. Keys are locked in the order given (accounts before addresses, in
// every transaction), so concurrent attempts cannot deadlock. When any key refuses, only
// lock-outs that this attempt started are written: a refused attempt counts nowhere else.
func (s *Store) admitAttempt(ctx context.Context, o ThrottleOptions, keys []throttleKey, now time.Time) (throttleDecision, error) {
	var d throttleDecision
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		d = throttleDecision{}
		next := make([]throttleState, len(keys))
		locked := make([]bool, len(keys))
		for i, k := range keys {
			// The row is created first, so FOR UPDATE has something to lock even for a key
			// never seen before, and two first attempts cannot both insert it.
			if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO login_throttle (key, failures, window_start, level, updated_at)
				VALUES (?, 0, ?, 0, ?) ON CONFLICT (key) DO NOTHING`), k.name, s.db.Time(now), s.db.Time(now)); err != nil {
				return db.Classify(err)
			}
			var r throttleRow
			if err := tx.GetContext(ctx, &r, tx.Rebind(`SELECT failures, window_start, locked_until, level FROM login_throttle WHERE key = ?`+s.forUpdate), k.name); err != nil {
				return db.Classify(err)
			}
			st := throttleState{Failures: r.Failures, WindowStart: r.WindowStart.Time, LockedUntil: r.LockedUntil.Time, Level: r.Level}
			var retry time.Duration
			next[i], retry, locked[i] = o.admit(st, k.limit, now)
			if retry > d.Retry {
				d.Retry = retry
			}
			if locked[i] {
				d.Locked = append(d.Locked, k.name)
			}
		}
		for i, k := range keys {
			if d.Retry > 0 && !locked[i] {
				continue
			}
			if err := s.saveThrottle(ctx, tx, k.name, next[i], now); err != nil {
				return err
			}
		}
		return nil
	})
	return d, err
}

func (s *Store) saveThrottle(ctx context.Context, tx *sqlx.Tx, key string, st throttleState, now time.Time) error {
	var lockedUntil any
	if !st.LockedUntil.IsZero() {
		lockedUntil = s.db.Time(st.LockedUntil)
	}
	_, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE login_throttle SET failures = ?, window_start = ?, locked_until = ?, level = ?, updated_at = ? WHERE key = ?`),
		st.Failures, s.db.Time(st.WindowStart), lockedUntil, st.Level, s.db.Time(now), key)
	return db.Classify(err)
}

// attemptSucceeded takes back the attempt a successful login counted: the account starts
// afresh (its owner proved who they are), the address only loses this one attempt (other
// people's failures from it still count).
func (s *Store) attemptSucceeded(ctx context.Context, account, address string, now time.Time) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE login_throttle SET failures = 0, level = 0, updated_at = ? WHERE key = ?`),
			s.db.Time(now), account); err != nil {
			return db.Classify(err)
		}
		if address == "" {
			return nil
		}
		_, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE login_throttle SET failures = CASE WHEN failures > 0 THEN failures - 1 ELSE 0 END, updated_at = ? WHERE key = ?`),
			s.db.Time(now), address)
		return db.Classify(err)
	})
}

// throttleOf returns the stored state of key (tests look at it).
func (s *Store) throttleOf(ctx context.Context, key string) (throttleState, error) {
	var r throttleRow
	err := s.db.GetContext(ctx, &r, s.db.Rebind(`SELECT failures, window_start, locked_until, level FROM login_throttle WHERE key = ?`), key)
	if errors.Is(err, sql.ErrNoRows) {
		return throttleState{}, nil
	}
	return throttleState{Failures: r.Failures, WindowStart: r.WindowStart.Time, LockedUntil: r.LockedUntil.Time, Level: r.Level}, db.Classify(err)
}
