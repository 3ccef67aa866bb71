package auth

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/errs"
)

// Known devices (issue 16 item 4): throttling that a stranger cannot turn against a user.
//
// A successful login returns a device token: 256 random bits, stored only as their SHA-256
// in the devices table, bound to the user (a lookup matches the token and the account's
// email together, so one user's token is worthless for another). A login that presents a
// known device token of its account is throttled on that device's own key; every other
// login (no token, an unknown, expired or another user's token) counts against the
// account's unknown-device key and the client address. Strangers' failures therefore lock
// only the unknown-device key, with growing lock-outs that are never permanent, and the
// account's owner on a known device signs in at once.
//
// A table rather than an HMAC-signed value: no new secret to keep and rotate, a user's
// devices can be capped and expired, and the throttle already lives in the same database.

// Device token limits.
const (
	// DefaultDeviceTTL is how long a device stays known after its last successful login.
	DefaultDeviceTTL = 90 * 24 * time.Hour
	// DefaultMaxDevices is how many devices a user keeps; a new one pushes out the least
	// recently used.
	DefaultMaxDevices = 20
)

// The lock-out actions of the audit log by throttle key: the account's unknown-device key
// (ActionLockout), a known device's key and a client address's.
const (
	ActionLockoutDevice  = "lockout_device"
	ActionLockoutAddress = "lockout_address"
)

// SessionOptions configure sessions and known devices. Zero values take the defaults.
type SessionOptions struct {
	// Idle ends a session whose refresh token is not used for this long (refused at refresh
	// like an expired one), besides the absolute RefreshTTL; default DefaultRefreshIdle.
	Idle time.Duration
	// DeviceTTL is how long a device stays known after its last successful login; default
	// DefaultDeviceTTL.
	DeviceTTL time.Duration
	// MaxDevices caps the known devices per user; default DefaultMaxDevices.
	MaxDevices int
}

// DefaultRefreshIdle is how long a session may go without a refresh: half an hour.
const DefaultRefreshIdle = 30 * time.Minute

func (o SessionOptions) withDefaults() SessionOptions {
	if o.Idle <= 0 {
		o.Idle = DefaultRefreshIdle
	}
	if o.DeviceTTL <= 0 {
		o.DeviceTTL = DefaultDeviceTTL
	}
	if o.MaxDevices <= 0 {
		o.MaxDevices = DefaultMaxDevices
	}
	return o
}

func deviceKey(id string) string { return "device:" + id }

// loginDevice is the device a login attempt came from: id is "" for an unknown one.
type loginDevice struct {
	id, token string
}

// deviceOf returns the known device of the account email that token names, or an unknown
// device when token is empty, unknown, expired or another account's. It costs one indexed
// look-up and no password hash, so it runs before the throttle. A token that cannot be one
// of ours is a 400, as for the other opaque tokens.
func (s *service) deviceOf(ctx context.Context, email, token string, now time.Time) (loginDevice, error) {
	if token == "" {
		return loginDevice{}, nil
	}
	if msg := checkOpaqueToken(token); msg != "" {
		return loginDevice{}, errs.Invalid(map[string]string{"deviceToken": msg})
	}
	id, err := s.store.knownDevice(ctx, email, hashRefreshToken(token), now)
	return loginDevice{id: id, token: token}, err
}

// loginKeys returns the throttle keys of a login attempt: a known device's own key only, or
// the account's unknown-device key and the client address's. The first key is the one a
// success clears (attemptSucceeded): a known device's success leaves the strangers' count on
// the account as it is, so signing in does not hand them fresh attempts.
func (s *service) loginKeys(email, addr string, dev loginDevice) []throttleKey {
	if dev.id != "" {
		return []throttleKey{{name: deviceKey(dev.id), limit: s.throttle.AccountAttempts}}
	}
	keys := []throttleKey{{name: accountKey(email), limit: s.throttle.AccountAttempts}}
	if addr != "" {
		keys = append(keys, throttleKey{name: addressKey(addr), limit: s.throttle.AddressAttempts})
	}
	return keys
}

// lockoutAction is the audit action of a lock-out of throttle key k.
func lockoutAction(k string) string {
	switch {
	case strings.HasPrefix(k, "device:"):
		return ActionLockoutDevice
	case strings.HasPrefix(k, "address:"):
		return ActionLockoutAddress
	}
	return ActionLockout
}

// rememberDevice records a successful login of user on dev and returns the device token to
// hand back: a known device keeps its token (its expiry moves on), an unknown one gets a new
// token. The user's least recently used devices beyond the cap are forgotten.
func (s *service) rememberDevice(ctx context.Context, tx *sqlx.Tx, userID string, dev loginDevice, now time.Time) (string, error) {
	token, id := dev.token, dev.id
	if id == "" {
		var err error
		if token, err = newRefreshToken(); err != nil {
			return "", errs.Wrap(errs.Internal, "internal error", err)
		}
		id = uuid.NewString()
	}
	if err := s.store.saveDevice(ctx, tx, hashRefreshToken(token), id, userID, now, now.Add(s.sessions.DeviceTTL), s.sessions.MaxDevices); err != nil {
		return "", err
	}
	return token, nil
}

// knownDevice returns the id of the unexpired device whose token hashes to hash and belongs
// to the account of email (case-insensitively), or "".
func (s *Store) knownDevice(ctx context.Context, email, hash string, now time.Time) (string, error) {
	var id string
	err := s.db.GetContext(ctx, &id, s.db.Rebind(`SELECT d.id FROM devices d JOIN users u ON u.id = d.user_id
		WHERE d.token_hash = ? AND lower(u.email) = ? AND d.expires_at > ?`), hash, strings.ToLower(email), s.db.Time(now))
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return id, db.Classify(err)
}

// saveDevice stores (or, for a known token, refreshes) a device of user inside tx and
// forgets the user's least recently used devices beyond max.
func (s *Store) saveDevice(ctx context.Context, tx *sqlx.Tx, hash, id, userID string, now, expires time.Time, max int) error {
	if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO devices (token_hash, id, user_id, created_at, last_used_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (token_hash) DO UPDATE SET last_used_at = excluded.last_used_at, expires_at = excluded.expires_at`),
		hash, id, userID, s.db.Time(now), s.db.Time(now), s.db.Time(expires)); err != nil {
		return db.Classify(err)
	}
	_, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM devices WHERE user_id = ? AND token_hash NOT IN
		(SELECT token_hash FROM devices WHERE user_id = ? ORDER BY last_used_at DESC, token_hash LIMIT ?)`), userID, userID, max)
	return db.Classify(err)
}

// deviceCount returns how many devices user id has (tests look at it).
func (s *Store) deviceCount(ctx context.Context, id string) (int, error) {
	var n int
	err := s.db.GetContext(ctx, &n, s.db.Rebind(`SELECT count(*) FROM devices WHERE user_id = ?`), id)
	return n, db.Classify(err)
}
