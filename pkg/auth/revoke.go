package auth

import (
	"context"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/ids"
	"github.com/pms/pms/pkg/platform/observe"
	"github.com/pms/pms/pkg/platform/outbox"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Revocation kinds (the revocations table's kind).
const (
	// RevokeUser ends every access token of a user below a token version (disable, role
	// change, logout everywhere, password change or reset).
	RevokeUser = "user"
	// RevokeSession ends the access tokens of one session (a refresh family): logout, a
	// refresh token reused, a session deleted.
	RevokeSession = "session"
)

// Revocation reasons, as stored and streamed (never anything about the user but ids).
const (
	ReasonLogout         = "logout"
	ReasonLogoutAll      = "logout_all"
	ReasonDisabled       = "disabled"
	ReasonRoleChanged    = "role_changed"
	ReasonPasswordChange = "password_change"
	ReasonPasswordReset  = "password_reset"
	ReasonPasswordSet    = "password_set"
	ReasonRefreshReuse   = "refresh_reuse"
	ReasonSessionDeleted = "session_deleted"
	// ReasonMFAEnabled: a second factor was confirmed; sessions begun with the password
	// alone end (but the confirming one).
	ReasonMFAEnabled = "mfa_enabled"
)

// Revocation is one row of the revocations table: what verifiers fold into their deny table.
type Revocation struct {
	Seq    int64  `db:"seq"`
	Kind   string `db:"kind"`
	UserID string `db:"user_id"`
	// SessionID is the session (refresh family) a RevokeSession ends.
	SessionID string `db:"session_id"`
	// MinVersion: a RevokeUser ends the user's tokens whose version is below it, except
	// those of ExceptSession when set.
	MinVersion    int64        `db:"min_version"`
	ExceptSession string       `db:"except_session"`
	Reason        string       `db:"reason"`
	CreatedAt     db.Timestamp `db:"created_at"`
}

// revokeUser ends, inside tx, every access token user id holds now (their version is below
// the one it raises the user to) and, with endSessions, every refresh token of the user, so
// no new access token can be had either. A role change does not end sessions: a refresh
// then carries the new role. except (a session id, or "") keeps one session's tokens: a
// password change keeps the session that made it.
func (s *Store) revokeUser(ctx context.Context, tx *sqlx.Tx, id, reason, except string, endSessions bool, now time.Time) error {
	if endSessions {
		q := `UPDATE refresh_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL`
		args := []any{s.db.Time(now), id}
		if except != "" {
			q += ` AND family_id <> ?`
			args = append(args, except)
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(q), args...); err != nil {
			return db.Classify(err)
		}
	}
	var version int64
	if err := tx.GetContext(ctx, &version, tx.Rebind(`UPDATE users SET token_version = token_version + 1 WHERE id = ? RETURNING token_version`), id); err != nil {
		return db.Classify(err)
	}
	return s.revoke(ctx, tx, Revocation{Kind: RevokeUser, UserID: id, MinVersion: version, ExceptSession: except, Reason: reason}, now)
}

// inTx runs fn in a transaction of the store's database (db.InTx) and, when fn revoked
// something and the transaction committed, calls the store's revocation hook and wakes the
// outbox relay: the feed reads the new head, and the relay publishes the revocation's event,
// at once instead of at their next poll (Add's own wake-up comes before the commit).
func (s *Store) inTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	var used *sqlx.Tx
	err := audit.InTx(ctx, s.db, func(tx *sqlx.Tx) error {
		used = tx
		return fn(tx)
	})
	if _, revoked := s.pending.LoadAndDelete(used); revoked && err == nil {
		s.events.Wake()
		if hook := s.revoked.Load(); hook != nil {
			(*hook)()
		}
	}
	return err
}

// revokeSession ends, inside tx, session (refresh family) family of user id: its refresh
// tokens and its access tokens.
func (s *Store) revokeSession(ctx context.Context, tx *sqlx.Tx, id, family, reason string, now time.Time) error {
	if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL`),
		s.db.Time(now), family); err != nil {
		return db.Classify(err)
	}
	return s.revoke(ctx, tx, Revocation{Kind: RevokeSession, UserID: id, SessionID: family, Reason: reason}, now)
}

// revoke appends r to the revocations table inside tx, and its event to the outbox (topic
// TopicEvents). On PostgreSQL the insert first takes
// a transaction-scoped advisory lock, so sequence numbers are handed out in commit order and
// a watcher reading "seq > last" cannot pass over a row that commits after a later one;
// SQLite has one writer at a time already.
func (s *Store) revoke(ctx context.Context, tx *sqlx.Tx, r Revocation, now time.Time) error {
	s.pending.Store(tx, true)
	if s.db.Dialect == db.Postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, revocationLockKey); err != nil {
			return db.Classify(err)
		}
	}
	err := tx.GetContext(ctx, &r.Seq, tx.Rebind(`INSERT INTO revocations (kind, user_id, session_id, min_version, except_session, reason, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING seq`), r.Kind, r.UserID, nullable(r.SessionID), r.MinVersion, nullable(r.ExceptSession), r.Reason, s.db.Time(now))
	if err != nil {
		return db.Classify(err)
	}
	if err := s.markRevocation(r.Seq); err != nil {
		return err
	}
	e := &eventsv1.Revocation{Seq: r.Seq, Kind: r.Kind, UserId: r.UserID, SessionId: r.SessionID, MinVersion: r.MinVersion,
		ExceptSession: r.ExceptSession, Reason: r.Reason, At: timestamppb.New(now)}
	b, err := proto.Marshal(e)
	if err != nil {
		return err
	}
	return s.events.Add(ctx, tx, outbox.Message{Topic: TopicEvents, Key: r.UserID, Value: b,
		Headers: outbox.EventHeaders(EventRevocation, ids.Ordered(), observe.RequestID(ctx))})
}

// revocationLockKey is the advisory lock serialising revocation inserts ("pms-revocations").
const revocationLockKey int64 = 0x706d732d7265766f

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// EndEverySession ends every session recorded in d, an auth database no service has open
// (the one a restore is about to put in place): every refresh token is revoked and the
// sessions list emptied. A restore brings back refresh tokens that were revoked after the
// backup was taken, and loses those issued since; ending them all (with a new signing key,
// RotateKeyFile with revoke, for the access tokens) makes everyone sign in again rather than
// let a revoked session return. It returns how many refresh tokens it revoked.
func EndEverySession(ctx context.Context, d *db.DB, now time.Time) (int64, error) {
	var n int64
	err := db.InTx(ctx, d, func(tx *sqlx.Tx) error {
		var err error
		if n, err = db.Affected(tx.ExecContext(ctx, tx.Rebind(`UPDATE refresh_tokens SET revoked_at = ? WHERE revoked_at IS NULL`), d.Time(now))); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions`); err != nil {
			return db.Classify(err)
		}
		return nil
	})
	return n, err
}
