package auth

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/outbox"
)

// AuditTable is the auth service's audit log table.
const AuditTable = "audit_log"

// Store keeps users, refresh tokens, login throttles and the audit log in the auth
// service's own database (PostgreSQL or SQLite, one SQL for both). Changes that must agree
// (a refresh token used and its successor issued, a user disabled and their sessions ended)
// are one transaction each.
type Store struct {
	db *db.DB
	// events is the outbox revocations are published through.
	events *outbox.Outbox
	// pending holds the transactions that revoked something (inTx); revoked is called after
	// such a transaction commits (RevocationFeed.Wake).
	pending sync.Map
	revoked atomic.Pointer[func()]
	// forUpdate locks the rows read on PostgreSQL; SQLite's write transaction (BEGIN
	// IMMEDIATE) already excludes other writers.
	forUpdate string
	// rewind, when set, records each revocation's seq outside the database (rewind.go).
	rewind *RewindMark
}

// NewStore returns a Store over a migrated database.
func NewStore(d *db.DB) *Store {
	s := &Store{db: d, events: outbox.New(d, outbox.Options{})}
	if d.Dialect == db.Postgres {
		s.forUpdate = " FOR UPDATE"
	}
	return s
}

// DB returns the underlying database, for readiness checks.
func (s *Store) DB() *db.DB { return s.db }

const userColumns = `id, email, role, disabled, password_hash, created_at, updated_at, token_version`

type userRow struct {
	ID           string       `db:"id"`
	Email        string       `db:"email"`
	Role         string       `db:"role"`
	Disabled     bool         `db:"disabled"`
	PasswordHash string       `db:"password_hash"`
	CreatedAt    db.Timestamp `db:"created_at"`
	UpdatedAt    db.Timestamp `db:"updated_at"`
	TokenVersion int64        `db:"token_version"`
}

func (r userRow) user() User {
	return User{ID: r.ID, Email: r.Email, Role: r.Role, Disabled: r.Disabled, CreatedAt: r.CreatedAt.Time, UpdatedAt: r.UpdatedAt.Time,
		TokenVersion: r.TokenVersion}
}

// createUser inserts u with its password hash; a taken email (case-insensitive) is
// ErrEmailTaken. With invite, the user has no password (hash is "") and the invite's
// set-password token is stored in the same transaction.
func (s *Store) createUser(ctx context.Context, u User, hash string, invite *setPasswordToken) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO users (`+userColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
			u.ID, u.Email, u.Role, u.Disabled, hash, s.db.Time(u.CreatedAt), s.db.Time(u.UpdatedAt), u.TokenVersion)
		if db.IsUniqueViolation(err, "") {
			return ErrEmailTaken
		}
		if err != nil || invite == nil {
			return db.Classify(err)
		}
		_, err = tx.ExecContext(ctx, tx.Rebind(`INSERT INTO set_password_tokens (token_hash, user_id, purpose, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`),
			invite.hash, u.ID, invite.purpose, s.db.Time(invite.created), s.db.Time(invite.expires))
		return db.Classify(err)
	})
}

// setPasswordToken is a one-time set-password token as stored: its SHA-256 only.
type setPasswordToken struct {
	hash, userID, purpose    string
	created, expires, usedAt time.Time
}

type setPasswordTokenRow struct {
	UserID    string       `db:"user_id"`
	Purpose   string       `db:"purpose"`
	CreatedAt db.Timestamp `db:"created_at"`
	ExpiresAt db.Timestamp `db:"expires_at"`
	UsedAt    db.Timestamp `db:"used_at"`
}

// usable reports whether t can still set a password at now: unused and not expired.
func (t setPasswordToken) usable(now time.Time) bool {
	return t.usedAt.IsZero() && now.Before(t.expires)
}

// setPasswordTokenOf returns the token hashed hash; found is false for an unknown one.
func (s *Store) setPasswordTokenOf(ctx context.Context, q sqlx.QueryerContext, hash, lock string) (t setPasswordToken, found bool, err error) {
	var r setPasswordTokenRow
	err = sqlx.GetContext(ctx, q, &r, s.db.Rebind(`SELECT user_id, purpose, created_at, expires_at, used_at FROM set_password_tokens WHERE token_hash = ?`+lock), hash)
	if errors.Is(err, sql.ErrNoRows) {
		return setPasswordToken{}, false, nil
	}
	if err != nil {
		return setPasswordToken{}, false, db.Classify(err)
	}
	return setPasswordToken{hash: hash, userID: r.UserID, purpose: r.Purpose, created: r.CreatedAt.Time,
		expires: r.ExpiresAt.Time, usedAt: r.UsedAt.Time}, true, nil
}

// setPassword uses the set-password token hashed tokenHash to give its user passwordHash,
// in one transaction with the token's row locked: the token is marked used (as is every
// other unused token of the user: one password set ends them all), the password stored, and
// every refresh token of the user revoked (a reset ends the sessions a thief may hold). The
// token is checked again under the lock, so of two concurrent uses exactly one succeeds;
// ok is false (and nothing changed) when it is no longer usable or its user is disabled
// or gone. u is the token's user whenever the token was known.
func (s *Store) setPassword(ctx context.Context, tokenHash, passwordHash string, now time.Time) (u User, ok bool, err error) {
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		u, ok = User{}, false
		t, found, err := s.setPasswordTokenOf(ctx, tx, tokenHash, s.forUpdate)
		if err != nil || !found {
			audit.NotChanged(ctx)
			return err
		}
		u.ID = t.userID
		if !t.usable(now) {
			audit.NotChanged(ctx)
			return nil
		}
		cur, err := s.userByID(ctx, tx, t.userID)
		if errors.Is(err, ErrUserNotFound) {
			audit.NotChanged(ctx)
			return nil
		}
		if err != nil {
			return err
		}
		u = cur
		if u.Disabled {
			audit.NotChanged(ctx)
			return nil
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE set_password_tokens SET used_at = ? WHERE user_id = ? AND used_at IS NULL`),
			s.db.Time(now), u.ID); err != nil {
			return db.Classify(err)
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE users SET password_hash = ?, must_change_password = ?, updated_at = ? WHERE id = ?`),
			passwordHash, false, s.db.Time(now), u.ID); err != nil {
			return db.Classify(err)
		}
		if err := s.revokeUser(ctx, tx, u.ID, ReasonPasswordSet, "", true, now); err != nil {
			return err
		}
		u.UpdatedAt, ok = now, true
		return nil
	})
	return u, ok, err
}

// changePassword replaces user id's password hash oldHash with newHash, in one
// transaction that also ends the user's unused set-password tokens and every session and
// access token of the user but keepSession's (the caller's own, when known). ok is false (nothing changed) when the stored hash is no longer oldHash
// (a concurrent change) or the user is disabled.
func (s *Store) changePassword(ctx context.Context, id, oldHash, newHash, keepSession string, now time.Time) (ok bool, err error) {
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		n, err := db.Affected(tx.ExecContext(ctx, tx.Rebind(`UPDATE users SET password_hash = ?, must_change_password = ?, updated_at = ? WHERE id = ? AND password_hash = ? AND NOT disabled`),
			newHash, false, s.db.Time(now), id, oldHash))
		if err != nil {
			return err
		}
		if n != 1 {
			ok = false
			audit.NotChanged(ctx)
			return nil
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE set_password_tokens SET used_at = ? WHERE user_id = ? AND used_at IS NULL`),
			s.db.Time(now), id); err != nil {
			return db.Classify(err)
		}
		if err := s.revokeUser(ctx, tx, id, ReasonPasswordChange, keepSession, true, now); err != nil {
			return err
		}
		ok = true
		return nil
	})
	return ok, err
}

// resetPassword stores set-password token t for its user, in one transaction that marks the
// user's other unused tokens used, removes the user's password and revokes every refresh
// token of the user. A user that does not exist is ErrUserNotFound.
func (s *Store) resetPassword(ctx context.Context, t setPasswordToken) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		n, err := db.Affected(tx.ExecContext(ctx, tx.Rebind(`UPDATE users SET password_hash = '', updated_at = ? WHERE id = ?`), s.db.Time(t.created), t.userID))
		if err != nil {
			return err
		}
		if n != 1 {
			return ErrUserNotFound
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE set_password_tokens SET used_at = ? WHERE user_id = ? AND used_at IS NULL`),
			s.db.Time(t.created), t.userID); err != nil {
			return db.Classify(err)
		}
		if err := s.revokeUser(ctx, tx, t.userID, ReasonPasswordReset, "", true, t.created); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, tx.Rebind(`INSERT INTO set_password_tokens (token_hash, user_id, purpose, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`),
			t.hash, t.userID, t.purpose, s.db.Time(t.created), s.db.Time(t.expires))
		return db.Classify(err)
	})
}

// userByEmail finds the account of email, case-insensitively; found is false when none.
func (s *Store) userByEmail(ctx context.Context, email string) (u User, hash string, found bool, err error) {
	var r userRow
	err = s.db.GetContext(ctx, &r, s.db.Rebind(`SELECT `+userColumns+` FROM users WHERE lower(email) = ?`), strings.ToLower(email))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, "", false, nil
	}
	if err != nil {
		return User{}, "", false, db.Classify(err)
	}
	return r.user(), r.PasswordHash, true, nil
}

// userByID returns user id, or ErrUserNotFound.
func (s *Store) userByID(ctx context.Context, q sqlx.QueryerContext, id string) (User, error) {
	var r userRow
	err := sqlx.GetContext(ctx, q, &r, s.db.Rebind(`SELECT `+userColumns+` FROM users WHERE id = ?`), id)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrUserNotFound
	}
	if err != nil {
		return User{}, db.Classify(err)
	}
	return r.user(), nil
}

// listUsers returns every user, ordered by email.
func (s *Store) listUsers(ctx context.Context) ([]User, error) {
	var rows []userRow
	if err := s.db.SelectContext(ctx, &rows, `SELECT `+userColumns+` FROM users ORDER BY lower(email), id`); err != nil {
		return nil, db.Classify(err)
	}
	out := make([]User, len(rows))
	for i, r := range rows {
		out[i] = r.user()
	}
	return out, nil
}

// countUsers returns how many users exist (bootstrap creates the first admin at zero).
func (s *Store) countUsers(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.GetContext(ctx, &n, `SELECT count(*) FROM users`)
	return n, db.Classify(err)
}

// updateUser applies edit to user id unless it would leave no active admin (ErrLastAdmin; an
// admin is active when it is not disabled and has a password: an invited admin does not count).
// The active admins and the user are locked together, in id order, so two admins demoting
// each other at once cannot both succeed, and cannot deadlock. Disabling a user revokes
// every refresh token they hold in the same transaction.
func (s *Store) updateUser(ctx context.Context, id string, at time.Time, edit func(cur User) User) (before, after User, err error) {
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		var locked []userRow
		if err := tx.SelectContext(ctx, &locked, tx.Rebind(`SELECT `+userColumns+` FROM users
			WHERE (role = ? AND disabled = ?) OR id = ? ORDER BY id`+s.forUpdate), authz.RoleAdmin, false, id); err != nil {
			return db.Classify(err)
		}
		// An invited admin (no password yet) is not active: it may never set one.
		activeAdmins, found, hasPassword := 0, false, false
		for _, r := range locked {
			if r.ID == id {
				before, found, hasPassword = r.user(), true, r.PasswordHash != ""
			}
			if r.Role == authz.RoleAdmin && !r.Disabled && r.PasswordHash != "" {
				activeAdmins++
			}
		}
		if !found {
			return ErrUserNotFound
		}
		after = edit(before)
		if after.Role == before.Role && after.Disabled == before.Disabled {
			return nil
		}
		wasActiveAdmin := before.Role == authz.RoleAdmin && !before.Disabled && hasPassword
		isActiveAdmin := after.Role == authz.RoleAdmin && !after.Disabled && hasPassword
		if wasActiveAdmin && !isActiveAdmin && activeAdmins <= 1 {
			return ErrLastAdmin
		}
		after.UpdatedAt = at
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE users SET role = ?, disabled = ?, updated_at = ? WHERE id = ?`),
			after.Role, after.Disabled, s.db.Time(at), id); err != nil {
			return db.Classify(err)
		}
		switch {
		case after.Disabled && !before.Disabled:
			after.TokenVersion++ // the row is locked: revokeUser raises it by one
			return s.revokeUser(ctx, tx, id, ReasonDisabled, "", true, at)
		case after.Role != before.Role:
			// The sessions go on: their next refresh carries the new role.
			after.TokenVersion++
			return s.revokeUser(ctx, tx, id, ReasonRoleChanged, "", false, at)
		}
		return nil
	})
	return before, after, err
}

// insertRefresh stores a new refresh token (its hash only) in family.
func (s *Store) insertRefresh(ctx context.Context, q sqlx.ExecerContext, hash, family, userID string, issued, expires time.Time) error {
	_, err := q.ExecContext(ctx, s.db.Rebind(`INSERT INTO refresh_tokens (token_hash, family_id, user_id, issued_at, expires_at) VALUES (?, ?, ?, ?, ?)`),
		hash, family, userID, s.db.Time(issued), s.db.Time(expires))
	return db.Classify(err)
}

// refreshResult is what presenting a refresh token came to.
type refreshResult int

const (
	refreshOK       refreshResult = iota
	refreshUnknown                // no such token
	refreshReused                 // already used: the family is now revoked
	refreshRevoked                // its family was revoked (logout, reuse, disabled user)
	refreshExpired                // past its family's lifetime
	refreshDisabled               // the user is disabled or gone: the family is now revoked
)

type refreshRow struct {
	Family    string       `db:"family_id"`
	IssuedAt  db.Timestamp `db:"issued_at"`
	UserID    string       `db:"user_id"`
	ExpiresAt db.Timestamp `db:"expires_at"`
	UsedAt    db.Timestamp `db:"used_at"`
	RevokedAt db.Timestamp `db:"revoked_at"`
}

// rotateRefresh uses the refresh token hashed oldHash (of session family) at use.at: when it is live (and
// was issued within the idle timeout use.idle) and its user active, it is marked used, newHash is
// stored in the same family with the same expiry and the session row records the use, all in
// one transaction. A token presented a second time revokes its whole family (committed,
// although the call is refused), since one of the two presenters must be a thief.
func (s *Store) rotateRefresh(ctx context.Context, oldHash, newHash string, use sessionUse) (User, string, refreshResult, error) {
	now := use.at
	var (
		u      User
		family string
		res    refreshResult
	)
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		u, res = User{}, refreshOK
		var r refreshRow
		err := tx.GetContext(ctx, &r, tx.Rebind(`SELECT family_id, issued_at, user_id, expires_at, used_at, revoked_at FROM refresh_tokens WHERE token_hash = ?`+s.forUpdate), oldHash)
		if errors.Is(err, sql.ErrNoRows) {
			res = refreshUnknown
			return nil
		}
		if err != nil {
			return db.Classify(err)
		}
		u.ID, family = r.UserID, r.Family
		revokeFamily := func(reason string) error { return s.revokeSession(ctx, tx, r.UserID, r.Family, reason, now) }
		switch {
		case !r.UsedAt.IsZero():
			res = refreshReused
			return revokeFamily(ReasonRefreshReuse)
		case !r.RevokedAt.IsZero():
			res = refreshRevoked
			return nil
		case !now.Before(r.ExpiresAt.Time), use.idleSince(r.IssuedAt.Time):
			// Past the session's lifetime, or unused longer than the idle timeout.
			res = refreshExpired
			return nil
		}
		u, err = s.userByID(ctx, tx, r.UserID)
		if errors.Is(err, ErrUserNotFound) || (err == nil && u.Disabled) {
			u.ID, res = r.UserID, refreshDisabled
			return revokeFamily(ReasonDisabled)
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ?`), s.db.Time(now), oldHash); err != nil {
			return db.Classify(err)
		}
		if err := s.insertRefresh(ctx, tx, newHash, r.Family, r.UserID, now, r.ExpiresAt.Time); err != nil {
			return err
		}
		return s.touchSession(ctx, tx, r.Family, use)
	})
	return u, family, res, err
}

// revokeFamilyOf revokes the family of the refresh token hashed hash and returns its user;
// found is false for an unknown token.
func (s *Store) revokeFamilyOf(ctx context.Context, hash string, now time.Time) (userID string, found bool, err error) {
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		var r refreshRow
		err := tx.GetContext(ctx, &r, tx.Rebind(`SELECT family_id, user_id, expires_at, used_at, revoked_at FROM refresh_tokens WHERE token_hash = ?`), hash)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return db.Classify(err)
		}
		userID, found = r.UserID, true
		return s.revokeSession(ctx, tx, r.UserID, r.Family, ReasonLogout, now)
	})
	return userID, found, err
}

// familyRevoked reports whether the family of the refresh token hashed hash is revoked
// (tests and operators use it; the service only ever acts on a token's own row).
func (s *Store) familyRevoked(ctx context.Context, hash string) (bool, error) {
	var n int64
	err := s.db.GetContext(ctx, &n, s.db.Rebind(`SELECT count(*) FROM refresh_tokens t JOIN refresh_tokens f ON f.family_id = t.family_id
		WHERE t.token_hash = ? AND f.revoked_at IS NULL`), hash)
	return n == 0, db.Classify(err)
}

// prune deletes refresh and set-password tokens that expired before cutoff, throttle rows untouched since
// cutoff that are not locked and revocations older than cutoff (long past mattering): housekeeping, so neither table grows without bound.
func (s *Store) prune(ctx context.Context, cutoff time.Time) error {
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM refresh_tokens WHERE expires_at < ?`), s.db.Time(cutoff)); err != nil {
		return db.Classify(err)
	}
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM set_password_tokens WHERE expires_at < ?`), s.db.Time(cutoff)); err != nil {
		return db.Classify(err)
	}
	if err := s.pruneChallenges(ctx, cutoff); err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM login_throttle WHERE updated_at < ? AND (locked_until IS NULL OR locked_until < ?)`),
		s.db.Time(cutoff), s.db.Time(cutoff)); err != nil {
		return db.Classify(err)
	}
	return s.pruneRevocations(ctx, cutoff)
}

// auditLog reads the audit log, newest first.
func (s *Store) auditLog(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	entries, err := audit.List(ctx, s.db, AuditTable, audit.Query{
		SubjectID: q.UserID, Actor: q.Actor, From: q.From, To: q.To, Limit: q.Limit,
	})
	if err != nil {
		return nil, db.Classify(err)
	}
	out := make([]AuditEntry, len(entries))
	for i, e := range entries {
		out[i] = AuditEntry{ID: e.ID, At: e.At, Actor: e.Actor, Role: e.Role, Action: e.Action,
			UserID: e.SubjectID, Outcome: e.Outcome, RequestID: e.RequestID, ClientAddress: e.ClientAddress}
	}
	return out, nil
}
