package patient

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/platform/db"
)

// GrantsTable keeps the break-glass grants.
const GrantsTable = "break_glass_grants"

// setConfidentiality sets the confidentiality of live patient id as a new version (history
// row and PATIENT_UPDATED event in the same transaction); setting the level it already has
// changes nothing.
func (s *Store) setConfidentiality(ctx context.Context, id, level string, m changeMeta) (Patient, error) {
	var out Patient
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		var r patientRow
		err := tx.GetContext(ctx, &r, tx.Rebind(`SELECT `+patientColumns+` FROM patients WHERE id = ?`+s.forUpdate), id)
		cur, err := rowResult(r, err)
		if err != nil {
			return err
		}
		if cur.Confidentiality == level {
			out = cur
			return nil
		}
		next := cur
		next.Confidentiality, next.Version, next.UpdatedAt = level, cur.Version+1, m.At
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE patients SET confidentiality = ?, version = ?, updated_at = ? WHERE id = ? AND version = ?`),
			level, next.Version, s.db.Time(m.At), id, cur.Version); err != nil {
			return db.Classify(err)
		}
		out = next
		if err := s.insertVersion(ctx, tx, next, ChangeUpdated, m); err != nil {
			return err
		}
		return s.addEvent(ctx, tx, next, ChangeUpdated, m)
	})
	return out, err
}

// confidentiality returns the confidentiality of patient id (deleted or not) and whether the
// patient exists.
func (s *Store) confidentiality(ctx context.Context, id string) (string, bool, error) {
	var level string
	err := s.db.GetContext(ctx, &level, s.db.Rebind(`SELECT confidentiality FROM patients WHERE id = ?`), id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, db.Classify(err)
	}
	return level, true, nil
}

// addGrant stores g after checking, in the same transaction, that its patient is live and
// restricted; the grant's audit entry (audit.WithPending) commits with it.
func (s *Store) addGrant(ctx context.Context, g Grant) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		var r patientRow
		err := tx.GetContext(ctx, &r, tx.Rebind(`SELECT `+patientColumns+` FROM patients WHERE id = ?`), g.PatientID)
		cur, err := rowResult(r, err)
		if err != nil {
			return err
		}
		if cur.Confidentiality != ConfidentialityRestricted {
			return ErrNotRestricted
		}
		_, err = tx.ExecContext(ctx, tx.Rebind(`INSERT INTO `+GrantsTable+` (id, patient_id, user_id, role, reason, request_id, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
			g.ID, g.PatientID, g.UserID, g.Role, g.Reason, g.RequestID, s.db.Time(g.CreatedAt), s.db.Time(g.ExpiresAt))
		return db.Classify(err)
	})
}

// hasGrant reports whether user holds a grant on patient id that has not expired at now.
func (s *Store) hasGrant(ctx context.Context, q sqlx.QueryerContext, id, user string, now time.Time) (bool, error) {
	var n int
	err := sqlx.GetContext(ctx, q, &n, s.db.Rebind(`SELECT count(*) FROM `+GrantsTable+` WHERE patient_id = ? AND user_id = ? AND created_at <= ? AND expires_at > ?`),
		id, user, s.db.Time(now), s.db.Time(now))
	if err != nil {
		return false, db.Classify(err)
	}
	return n > 0, nil
}

type grantRow struct {
	ID        string       `db:"id"`
	PatientID string       `db:"patient_id"`
	UserID    string       `db:"user_id"`
	Role      string       `db:"role"`
	Reason    string       `db:"reason"`
	RequestID string       `db:"request_id"`
	CreatedAt db.Timestamp `db:"created_at"`
	ExpiresAt db.Timestamp `db:"expires_at"`
}

// grants returns the grants matching q (its fields already checked), newest first.
func (s *Store) grants(ctx context.Context, q GrantQuery) ([]Grant, error) {
	var (
		where []string
		args  []any
	)
	if q.PatientID != "" {
		where, args = append(where, "patient_id = ?"), append(args, q.PatientID)
	}
	if q.UserID != "" {
		where, args = append(where, "user_id = ?"), append(args, q.UserID)
	}
	if !q.From.IsZero() {
		where, args = append(where, "created_at >= ?"), append(args, s.db.Time(q.From))
	}
	if !q.To.IsZero() {
		where, args = append(where, "created_at < ?"), append(args, s.db.Time(q.To))
	}
	stmt := `SELECT id, patient_id, user_id, role, reason, request_id, created_at, expires_at FROM ` + GrantsTable
	if len(where) > 0 {
		stmt += ` WHERE ` + strings.Join(where, " AND ")
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultAuditLimit
	}
	args = append(args, limit)
	var rows []grantRow
	if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(stmt+` ORDER BY created_at DESC, id LIMIT ?`), args...); err != nil {
		return nil, db.Classify(err)
	}
	out := make([]Grant, len(rows))
	for i, r := range rows {
		out[i] = Grant{ID: r.ID, PatientID: r.PatientID, UserID: r.UserID, Role: r.Role, Reason: r.Reason,
			RequestID: r.RequestID, CreatedAt: r.CreatedAt.Time, ExpiresAt: r.ExpiresAt.Time}
	}
	return out, nil
}
