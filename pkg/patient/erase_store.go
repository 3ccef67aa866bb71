package patient

import (
	"context"
	"database/sql"
	"errors"

	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/idempotency"
)

// ErasuresTable keeps the erase records of erased patients.
const ErasuresTable = "patient_erasures"

type tombstoneRow struct {
	MRN            sql.NullString `db:"mrn"`
	Version        int64          `db:"version"`
	RegisteredDate string         `db:"registered_date"`
	CreatedAt      db.Timestamp   `db:"created_at"`
	DeletedAt      db.Timestamp   `db:"deleted_at"`
	ErasedAt       db.Timestamp   `db:"erased_at"`
	MergedInto     sql.NullString `db:"merged_into"`
}

// erase turns deleted patient id into a tombstone in one transaction (Service.Erase). force
// (a re-application from the journal) erases a live record too, as if deleted first.
func (s *Store) erase(ctx context.Context, id, reason string, m changeMeta, force bool) (Erasure, error) {
	var e Erasure
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		var r tombstoneRow
		err := tx.GetContext(ctx, &r, tx.Rebind(`SELECT mrn, version, registered_date, created_at, deleted_at, erased_at, merged_into FROM patients WHERE id = ?`+s.forUpdate), id)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return ErrNotFound
		case err != nil:
			return db.Classify(err)
		case !r.ErasedAt.IsZero():
			return ErrErased
		case r.MergedInto.Valid && !force:
			return ErrMergedErase // merged records are marked deleted too (merge.go)
		case r.DeletedAt.IsZero() && !force:
			return ErrNotDeleted
		}
		e = Erasure{PatientID: id, MRN: r.MRN.String, ErasedAt: m.At, ErasedBy: m.Actor, Role: m.Role, Reason: reason, RequestID: m.RequestID}
		steps := []struct {
			q    string
			args []any
		}{
			{`UPDATE patients SET name = '', family = '', given = '[]', gender = '', phone = '', identifiers = '[]', email = '', address = '', date_of_birth = ?, erased_at = ?, version = ?, updated_at = ?,
				deleted_at = COALESCE(deleted_at, ?) WHERE id = ?`,
				[]any{ErasedDateOfBirth, s.db.Time(m.At), r.Version + 1, s.db.Time(m.At), s.db.Time(m.At), id}},
			{`DELETE FROM patient_versions WHERE patient_id = ?`, []any{id}},
			{`DELETE FROM patient_identifiers WHERE patient_id = ?`, []any{id}},
			{`DELETE FROM patient_match_keys WHERE patient_id = ?`, []any{id}},
			// The reasons of its merges are free text that may hold PHI (merge.go).
			{`UPDATE ` + MergesTable + ` SET reason = '', unmerge_reason = '' WHERE survivor_id = ? OR duplicate_id = ?`, []any{id, id}},
			{`INSERT INTO ` + ErasuresTable + ` (patient_id, mrn, erased_at, erased_by, role, reason, request_id) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				[]any{id, e.MRN, s.db.Time(m.At), e.ErasedBy, e.Role, reason, e.RequestID}},
			// Its events already relayed; the ones still pending are sealed and go out as
			// they are, unreadable once the key below is gone.
			{`DELETE FROM outbox WHERE topic = ? AND msg_key = ? AND published_at IS NOT NULL`, []any{TopicEvents, id}},
		}
		if s.db.Dialect == db.SQLite {
			// The search index (migration 00023) dropped the erased text by a delete marker;
			// its trigrams stay in older segments until they are merged, which optimize does
			// now (it rewrites the whole index: an erasure is rare, a search is not).
			steps = append(steps, struct {
				q    string
				args []any
			}{`INSERT INTO patients_search (patients_search) VALUES ('optimize')`, nil})
		}
		for _, st := range steps {
			if _, err := tx.ExecContext(ctx, tx.Rebind(st.q), st.args...); err != nil {
				return db.Classify(err)
			}
		}
		// Replies of Kafka commands about the patient (kept for idempotent repeats).
		if _, err := idempotency.DeleteMentioning(ctx, tx, s.db, id); err != nil {
			return err
		}
		if err := s.keys.Destroy(ctx, tx, id); err != nil {
			return err
		}
		// Journalled before the commit: a commit that then fails leaves a journalled
		// erasure of a deleted record, which the next start completes.
		if s.journal != nil && !force {
			if err := s.journal.append(journalRecord{PatientID: id, MRN: e.MRN, ErasedAt: m.At, ErasedBy: m.Actor}); err != nil {
				return errs.Wrap(errs.Unavailable, "the erasure journal cannot be written", err)
			}
		}
		msg, err := erasedEvent(Patient{ID: id, MRN: r.MRN.String, RegisteredDate: r.RegisteredDate, Version: r.Version + 1,
			CreatedAt: r.CreatedAt.Time}, m)
		if err != nil {
			return errs.Wrap(errs.Internal, "internal error", err)
		}
		return s.events.Add(ctx, tx, msg)
	})
	return e, err
}

// erased reports whether patient id is an erased tombstone.
func (s *Store) erased(ctx context.Context, id string) (bool, error) {
	var n int
	err := s.db.GetContext(ctx, &n, s.db.Rebind(`SELECT count(*) FROM `+ErasuresTable+` WHERE patient_id = ?`), id)
	return n > 0, db.Classify(err)
}
