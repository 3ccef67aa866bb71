package auth

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
)

// Sessions you can see (issue 16 item 5). A session is one login: its refresh token family,
// whose id access tokens carry as "sid". The sessions table keeps what a user needs to
// recognise it (when it began, when it was last used, from where and with what); whether it
// is live is read from its refresh tokens, which stay the one source of truth for
// revocation. Ending one goes through Store.revokeSession, ending all through
// Store.revokeUser, so verifiers learn of it from the revocation stream.

// Session is one of the caller's live sessions as GET /sessions lists it. LastUsedAt is its
// login or its last refresh (access tokens are verified without asking this service, so a
// refresh is the last use it sees); ClientAddress and UserAgent are as of that use.
type Session struct {
	ID            string    `json:"id"`
	CreatedAt     time.Time `json:"createdAt"`
	LastUsedAt    time.Time `json:"lastUsedAt"`
	ClientAddress string    `json:"clientAddress"`
	UserAgent     string    `json:"userAgent"`
	// Current marks the session of the access token that asked.
	Current bool `json:"current"`
}

// DeleteSessionRequest is DELETE /sessions/{id}: end one of the caller's own sessions.
type DeleteSessionRequest struct {
	ID string `json:"-"`
}

// Endpoint requests and responses of the session operations.
type (
	ListSessionsRequest struct{}
	SessionsResponse    struct{ Sessions []Session }
	// DeleteSessionResponse is DeleteSession's empty answer (204 over REST).
	DeleteSessionResponse struct{}
	LogoutAllRequest      struct{}
	// LogoutAllResponse is LogoutAll's empty answer (204 over REST).
	LogoutAllResponse struct{}
)

// The session actions of the audit log. Each names the caller as actor and subject.
const (
	ActionSessionList   = "session_list"   // success
	ActionSessionDelete = "session_delete" // success, not_found (unknown or another's), rejected (bad id)
	ActionLogoutAll     = "logout_all"     // success: every session and access token of the user ended
)

// ErrSessionNotFound answers a session id that is not one of the caller's sessions: unknown
// and another user's are one answer, so the id of someone else's session reveals nothing.
var ErrSessionNotFound = errs.New(errs.NotFound, "session not found")

// sessionCaller returns the user id of the caller: sessions are a user's, so a service
// principal (or none) is refused, as for a password change.
func sessionCaller(ctx context.Context) (authz.Principal, string, error) {
	p, ok := authz.FromContext(ctx)
	uid, err := parseID(p.Subject)
	if !ok || err != nil {
		return p, "", errs.New(errs.PermissionDenied, "only a signed-in user has sessions")
	}
	return p, uid, nil
}

// ListSessions implements Service: the caller's live sessions, most recently used first.
func (s *service) ListSessions(ctx context.Context) (out []Session, err error) {
	p, uid, err := sessionCaller(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { s.recordAfter(ctx, ActionSessionList, uid, err) }()
	now := s.at()
	out, err = s.store.liveSessions(ctx, uid, now, now.Add(-s.sessions.Idle))
	for i := range out {
		out[i].Current = p.SessionID != "" && out[i].ID == p.SessionID
	}
	return out, err
}

// DeleteSession implements Service: it ends one of the caller's sessions (its refresh
// tokens and its access tokens, through Store.revokeSession). Another user's session and an
// unknown one are both ErrSessionNotFound.
func (s *service) DeleteSession(ctx context.Context, req DeleteSessionRequest) (err error) {
	_, uid, err := sessionCaller(ctx)
	if err != nil {
		return err
	}
	defer func() { s.recordAfter(ctx, ActionSessionDelete, uid, err) }()
	sid, err := parseID(req.ID)
	if err != nil {
		return err
	}
	ctx = audit.WithPending(ctx, ActionSessionDelete, uid) // recorded in the revocation's transaction
	return s.store.deleteSession(ctx, uid, sid, s.at())
}

// LogoutAll implements Service: every session and every access token of the caller end,
// its own included (Store.revokeUser with ReasonLogoutAll).
func (s *service) LogoutAll(ctx context.Context) (err error) {
	_, uid, err := sessionCaller(ctx)
	if err != nil {
		return err
	}
	defer func() { s.recordAfter(ctx, ActionLogoutAll, uid, err) }()
	ctx = audit.WithPending(ctx, ActionLogoutAll, uid) // recorded in the revocation's transaction
	return s.store.logoutAll(ctx, uid, s.at())
}

// startSession stores a login's session in one transaction: its first refresh token (hash
// refreshHash), the session row (client address and user agent from ctx) and the device
// the login came from, whose token it sets in pair.
func (s *service) startSession(ctx context.Context, pair *TokenPair, u User, family, refreshHash string, dev loginDevice, now time.Time) error {
	return s.store.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := s.store.insertRefresh(ctx, tx, refreshHash, family, u.ID, now, now.Add(s.refreshTTL)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, client_address, user_agent)
			VALUES (?, ?, ?, ?, ?, ?, ?)`), family, u.ID, s.store.db.Time(now), s.store.db.Time(now), s.store.db.Time(now.Add(s.refreshTTL)),
			observe.ClientAddr(ctx), observe.UserAgent(ctx)); err != nil {
			return db.Classify(err)
		}
		token, err := s.rememberDevice(ctx, tx, u.ID, dev, now)
		pair.DeviceToken = token
		return err
	})
}

// sessionUse is a refresh's use of its session: when, from where, with what, and how long
// a session may have gone unused (longer is refused as expired).
type sessionUse struct {
	at              time.Time
	addr, userAgent string
	idle            time.Duration
}

// useOf returns the session use of a refresh at now by the caller of ctx.
func (s *service) useOf(ctx context.Context, now time.Time) sessionUse {
	return sessionUse{at: now, addr: observe.ClientAddr(ctx), userAgent: observe.UserAgent(ctx), idle: s.sessions.Idle}
}

// idleSince reports whether a session whose live refresh token was issued at issued (its login
// or last refresh) has gone unused too long.
func (u sessionUse) idleSince(issued time.Time) bool {
	return u.idle > 0 && !u.at.Before(issued.Add(u.idle))
}

// touchSession records the use u of session family inside tx. A family older than the sessions
// table has no row; it is not listed and simply expires.
func (s *Store) touchSession(ctx context.Context, tx *sqlx.Tx, family string, u sessionUse) error {
	_, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE sessions SET last_used_at = ?, client_address = ?, user_agent = ? WHERE id = ?`),
		s.db.Time(u.at), u.addr, u.userAgent, family)
	return db.Classify(err)
}

type sessionRow struct {
	ID            string       `db:"id"`
	CreatedAt     db.Timestamp `db:"created_at"`
	LastUsedAt    db.Timestamp `db:"last_used_at"`
	ClientAddress string       `db:"client_address"`
	UserAgent     string       `db:"user_agent"`
}

// liveSessions returns user id's sessions that can still be refreshed at now: a refresh
// token neither used, revoked nor expired, and used since idleCutoff. Most recent first.
func (s *Store) liveSessions(ctx context.Context, id string, now, idleCutoff time.Time) ([]Session, error) {
	var rows []sessionRow
	err := s.db.SelectContext(ctx, &rows, s.db.Rebind(`SELECT s.id, s.created_at, s.last_used_at, s.client_address, s.user_agent FROM sessions s
		WHERE s.user_id = ? AND s.last_used_at > ? AND EXISTS (SELECT 1 FROM refresh_tokens t
			WHERE t.family_id = s.id AND t.used_at IS NULL AND t.revoked_at IS NULL AND t.expires_at > ? AND t.issued_at > ?)
		ORDER BY s.last_used_at DESC, s.id`), id, s.db.Time(idleCutoff), s.db.Time(now), s.db.Time(idleCutoff))
	if err != nil {
		return nil, db.Classify(err)
	}
	out := make([]Session, len(rows))
	for i, r := range rows {
		out[i] = Session{ID: r.ID, CreatedAt: r.CreatedAt.Time, LastUsedAt: r.LastUsedAt.Time, ClientAddress: r.ClientAddress, UserAgent: r.UserAgent}
	}
	return out, nil
}

// deleteSession ends session sid of user id: its refresh tokens and access tokens
// (revokeSession), in one transaction. A session of another user, or none, is
// ErrSessionNotFound; one that has already ended is left as it is (no second revocation).
func (s *Store) deleteSession(ctx context.Context, id, sid string, now time.Time) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		var owner string
		err := tx.GetContext(ctx, &owner, tx.Rebind(`SELECT user_id FROM sessions WHERE id = ? AND user_id = ?`+s.forUpdate), sid, id)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrSessionNotFound
		}
		if err != nil {
			return db.Classify(err)
		}
		var live int
		if err := tx.GetContext(ctx, &live, tx.Rebind(`SELECT count(*) FROM refresh_tokens WHERE family_id = ? AND revoked_at IS NULL`), sid); err != nil {
			return db.Classify(err)
		}
		if live == 0 {
			return nil
		}
		return s.revokeSession(ctx, tx, id, sid, ReasonSessionDeleted, now)
	})
}

// logoutAll ends every session and access token of user id (revokeUser, ending sessions).
func (s *Store) logoutAll(ctx context.Context, id string, now time.Time) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := s.userByID(ctx, tx, id); err != nil {
			if errors.Is(err, ErrUserNotFound) {
				return errs.New(errs.Unauthenticated, "a valid access token is required")
			}
			return err
		}
		return s.revokeUser(ctx, tx, id, ReasonLogoutAll, "", true, now)
	})
}

// pruneSessions deletes sessions and devices that expired before cutoff: housekeeping
// beside Store.prune.
func (s *Store) pruneSessions(ctx context.Context, cutoff time.Time) error {
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM sessions WHERE expires_at < ?`), s.db.Time(cutoff)); err != nil {
		return db.Classify(err)
	}
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM devices WHERE expires_at < ?`), s.db.Time(cutoff))
	return db.Classify(err)
}
