package patient

import (
	"context"
	"database/sql"
	"errors"
	"sort"

	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/platform/db"
)

// MergesTable keeps the merge records (migration 00026).
const MergesTable = "patient_merges"

// mergeRow is a patient row as a merge or unmerge sees it: the record and its erasure.
type mergeRow struct {
	patientRow
	ErasedAt db.Timestamp `db:"erased_at"`
}

// lockForMerge reads and locks patients ids in id order (two merges of the same pair in
// opposite directions take the locks in the same order), returning them by id; a missing
// one is ErrNotFound.
func (s *Store) lockForMerge(ctx context.Context, tx *sqlx.Tx, ids ...string) (map[string]mergeRow, error) {
	sorted := append([]string(nil), ids...)
	sort.Strings(sorted)
	out := make(map[string]mergeRow, len(ids))
	for _, id := range sorted {
		var r mergeRow
		err := tx.GetContext(ctx, &r, tx.Rebind(`SELECT `+patientColumns+`, erased_at FROM patients WHERE id = ?`+s.forUpdate), id)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		if err != nil {
			return nil, db.Classify(err)
		}
		out[id] = r
	}
	return out, nil
}

// liveForMerge is the record of r if it may take part in a merge: live, not merged.
func liveForMerge(r mergeRow, merged error) (Patient, error) {
	switch {
	case r.MergedInto.Valid:
		return Patient{}, merged
	case !r.ErasedAt.IsZero() || !r.DeletedAt.IsZero():
		return Patient{}, ErrMergeDeleted
	}
	return r.patient(), nil
}

// merge writes rec (Service.Merge) in one transaction: both records locked and checked (live,
// and access, the break-glass check on the locked rows), the duplicate's new version marked
// merged into the survivor (deleted_at set, so no live rule counts it; its identifiers freed),
// its history row, the merge record and the PATIENT_MERGED event.
func (s *Store) merge(ctx context.Context, rec MergeRecord, m changeMeta, access func(*sqlx.Tx, Patient) error) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		rows, err := s.lockForMerge(ctx, tx, rec.SurvivorID, rec.DuplicateID)
		if err != nil {
			return err
		}
		survivor, err := liveForMerge(rows[rec.SurvivorID], ErrSurvivorMerged)
		if err != nil {
			return err
		}
		cur, err := liveForMerge(rows[rec.DuplicateID], ErrAlreadyMerged)
		if err != nil {
			return err
		}
		if err := access(tx, survivor); err != nil {
			return err
		}
		if err := access(tx, cur); err != nil {
			return err
		}
		next := cur
		next.Version, next.UpdatedAt, next.MergedInto = cur.Version+1, m.At, rec.SurvivorID
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE patients SET version = ?, updated_at = ?, deleted_at = ?, merged_into = ? WHERE id = ? AND version = ?`),
			next.Version, s.db.Time(m.At), s.db.Time(m.At), rec.SurvivorID, cur.ID, cur.Version); err != nil {
			return db.Classify(err)
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE patient_identifiers SET deleted_at = ? WHERE patient_id = ? AND deleted_at IS NULL`), s.db.Time(m.At), cur.ID); err != nil {
			return db.Classify(err)
		}
		// A merged record is no duplicate candidate (duplicates_store.go); unmerge keys it again.
		if err := s.deleteMatchKeys(ctx, tx, cur.ID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO `+MergesTable+` (id, survivor_id, duplicate_id, reason, merged_at, merged_by, role, request_id)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`), rec.ID, rec.SurvivorID, rec.DuplicateID, rec.Reason, s.db.Time(rec.MergedAt), rec.MergedBy, rec.Role, rec.RequestID); err != nil {
			return db.Classify(err)
		}
		if err := s.insertVersion(ctx, tx, next, ChangeMerged, m); err != nil {
			return err
		}
		return s.addEvent(ctx, tx, next, ChangeMerged, m)
	})
}

type mergeRecordRow struct {
	ID            string       `db:"id"`
	SurvivorID    string       `db:"survivor_id"`
	DuplicateID   string       `db:"duplicate_id"`
	Reason        string       `db:"reason"`
	MergedAt      db.Timestamp `db:"merged_at"`
	MergedBy      string       `db:"merged_by"`
	Role          string       `db:"role"`
	RequestID     string       `db:"request_id"`
	UnmergedAt    db.Timestamp `db:"unmerged_at"`
	UnmergedBy    string       `db:"unmerged_by"`
	UnmergeReason string       `db:"unmerge_reason"`
}

func (r mergeRecordRow) record() MergeRecord {
	out := MergeRecord{ID: r.ID, SurvivorID: r.SurvivorID, DuplicateID: r.DuplicateID, Reason: r.Reason, MergedAt: r.MergedAt.Time,
		MergedBy: r.MergedBy, Role: r.Role, RequestID: r.RequestID, UnmergedBy: r.UnmergedBy, UnmergeReason: r.UnmergeReason}
	if !r.UnmergedAt.IsZero() {
		t := r.UnmergedAt.Time
		out.UnmergedAt = &t
	}
	return out
}

const mergeColumns = `id, survivor_id, duplicate_id, reason, merged_at, merged_by, role, request_id, unmerged_at, unmerged_by, unmerge_reason`

// unmerge reverses the open merge of merged record id in one transaction (Service.Unmerge).
func (s *Store) unmerge(ctx context.Context, id, reason string, m changeMeta, access func(*sqlx.Tx, Patient) error) (MergeRecord, error) {
	var out MergeRecord
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		var r mergeRow
		err := tx.GetContext(ctx, &r, tx.Rebind(`SELECT `+patientColumns+`, erased_at FROM patients WHERE id = ?`), id)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return db.Classify(err)
		}
		if !r.MergedInto.Valid {
			if !r.ErasedAt.IsZero() || !r.DeletedAt.IsZero() {
				return ErrGone
			}
			return ErrNotMerged
		}
		rows, err := s.lockForMerge(ctx, tx, id, r.MergedInto.String)
		if err != nil {
			return err
		}
		r = rows[id]
		if !r.MergedInto.Valid { // unmerged meanwhile, before this lock
			return ErrNotMerged
		}
		// What forbids it: the survivor merged into another record or erased since (a survivor
		// deleted since does not: the duplicate comes back as the record in use).
		if sv := rows[r.MergedInto.String]; sv.MergedInto.Valid || !sv.ErasedAt.IsZero() || !r.ErasedAt.IsZero() {
			return ErrUnmergeForbidden
		}
		cur := r.patient()
		if err := access(tx, cur); err != nil {
			return err
		}
		// Its email may be shared with the survivor (duplicates often do); anyone else who
		// took it meanwhile forbids the unmerge, as their identifiers do.
		if _, err := s.checkEmail(ctx, tx, cur.ID, cur.Email, []string{r.MergedInto.String}); err != nil {
			return err
		}
		var taken int
		if err := tx.GetContext(ctx, &taken, tx.Rebind(`SELECT count(*) FROM patient_identifiers o JOIN patient_identifiers d
			ON o.system = d.system AND o.value = d.value
			WHERE d.patient_id = ? AND o.patient_id <> d.patient_id AND o.deleted_at IS NULL`), cur.ID); err != nil {
			return db.Classify(err)
		}
		if taken > 0 {
			return ErrIdentifierTaken
		}
		var rec mergeRecordRow
		err = tx.GetContext(ctx, &rec, tx.Rebind(`SELECT `+mergeColumns+` FROM `+MergesTable+` WHERE duplicate_id = ? AND survivor_id = ? AND unmerged_at IS NULL
			ORDER BY merged_at DESC LIMIT 1`), cur.ID, r.MergedInto.String)
		if err != nil {
			return db.Classify(err)
		}
		next := cur
		next.Version, next.UpdatedAt, next.MergedInto = cur.Version+1, m.At, ""
		steps := []struct {
			q    string
			args []any
		}{
			{`UPDATE patients SET version = ?, updated_at = ?, deleted_at = NULL, merged_into = NULL WHERE id = ? AND version = ?`,
				[]any{next.Version, s.db.Time(m.At), cur.ID, cur.Version}},
			{`UPDATE patient_identifiers SET deleted_at = NULL WHERE patient_id = ?`, []any{cur.ID}},
			{`UPDATE ` + MergesTable + ` SET unmerged_at = ?, unmerged_by = ?, unmerge_reason = ?, unmerge_request_id = ? WHERE id = ?`,
				[]any{s.db.Time(m.At), m.Actor, reason, m.RequestID, rec.ID}},
		}
		for _, st := range steps {
			if _, err := tx.ExecContext(ctx, tx.Rebind(st.q), st.args...); err != nil {
				return db.Classify(err)
			}
		}
		if err := s.writeMatchKeys(ctx, tx, []Patient{next}); err != nil { // a candidate again
			return err
		}
		rec.UnmergedAt, rec.UnmergedBy, rec.UnmergeReason = db.Timestamp{Time: m.At}, m.Actor, reason
		out = rec.record()
		if err := s.insertVersion(ctx, tx, next, ChangeUnmerged, m); err != nil {
			return err
		}
		return s.addEvent(ctx, tx, next, ChangeUnmerged, m)
	})
	return out, err
}

// Merges returns the merge records in which patient id is the survivor or the duplicate,
// newest first: what GET /patients/{id}/history's readers and the tests look at.
func (s *Store) Merges(ctx context.Context, id string) ([]MergeRecord, error) {
	var rows []mergeRecordRow
	if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(`SELECT `+mergeColumns+` FROM `+MergesTable+`
		WHERE survivor_id = ? OR duplicate_id = ? ORDER BY merged_at DESC, id`), id, id); err != nil {
		return nil, db.Classify(err)
	}
	out := make([]MergeRecord, len(rows))
	for i, r := range rows {
		out[i] = r.record()
	}
	return out, nil
}
