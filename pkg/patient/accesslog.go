package patient

import (
	"context"
	"time"

	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/errs"
)

// AccessLogQuery selects one patient's access log (GET /patients/{id}/access-log): newest
// first, Limit per page (default DefaultLimit, at most MaxLimit), PageToken from the
// previous page.
type AccessLogQuery struct {
	PatientID string
	Limit     int
	PageToken string
}

// AccessRecord is one access to a patient's record, the accounting of disclosures: who (actor,
// role), when, what (action, outcome; position is the record's place in a search's results, 0
// for a single-record action), from where (client address), via which transport, and whether
// it was an emergency (break-glass) access — there is no break-glass access yet, so false.
type AccessRecord struct {
	EntryID       string    `json:"entryId"`
	At            time.Time `json:"at"`
	Actor         string    `json:"actor"`
	Role          string    `json:"role"`
	Action        string    `json:"action"`
	Outcome       string    `json:"outcome"`
	Position      int       `json:"position"`
	RequestID     string    `json:"requestId"`
	ClientAddress string    `json:"clientAddress"`
	Transport     string    `json:"transport"`
	Emergency     bool      `json:"emergency"`
}

// AccessLogPage is one page of a patient's access log.
type AccessLogPage struct {
	Records       []AccessRecord
	NextPageToken string
}

// AccessLog returns the accesses to one patient's record. Reading it is itself audited
// (access_log_read, naming the patient), so the accounting is accountable too.
func (s *service) AccessLog(ctx context.Context, q AccessLogQuery) (AccessLogPage, error) {
	pid, err := ParseID(q.PatientID)
	var page AccessLogPage
	if err != nil {
		err = errs.Invalid(map[string]string{"id": "must be a UUID"})
	} else {
		page, err = s.accessLog(ctx, pid, q)
	}
	return readResult(s, ctx, ActionAccessLogRead, pid, page, err)
}

func (s *service) accessLog(ctx context.Context, pid string, q AccessLogQuery) (AccessLogPage, error) {
	var bad errs.Fields
	limit := q.Limit
	switch {
	case limit == 0:
		limit = DefaultLimit
	case limit < 1 || limit > MaxLimit:
		bad.Add("limit", "must be between 1 and 500")
	}
	var before int64
	if q.PageToken != "" {
		var err error
		if before, err = decodePageToken(q.PageToken); err != nil {
			bad.Add("pageToken", "is not a page token from this service")
		}
	}
	if err := bad.Err(); err != nil {
		return AccessLogPage{}, err
	}
	// A record deleted since still has its accounting; an id never registered has none.
	var known bool
	if err := s.store.db.GetContext(ctx, &known, s.store.db.Rebind(`SELECT count(*) > 0 FROM patients WHERE id = ?`), pid); err != nil {
		return AccessLogPage{}, db.Classify(err)
	}
	if !known {
		return AccessLogPage{}, ErrNotFound
	}
	recs, last, more, err := s.store.accessLog(ctx, pid, before, limit)
	if err != nil {
		return AccessLogPage{}, err
	}
	page := AccessLogPage{Records: recs}
	if more {
		page.NextPageToken = encodePageToken(last)
	}
	return page, nil
}

// accessLog reads a page of pid's disclosures joined with their audit entries, newest first,
// entries before seq before (0: from the newest). It returns the last seq and whether more follow.
func (s *Store) accessLog(ctx context.Context, pid string, before int64, limit int) ([]AccessRecord, int64, bool, error) {
	q, args := s.accessLogQuery(pid, before, limit)
	rows, err := s.db.QueryxContext(ctx, q, args...)
	if err != nil {
		return nil, 0, false, db.Classify(err)
	}
	defer rows.Close()
	var (
		out  []AccessRecord
		seqs []int64
	)
	for rows.Next() {
		var (
			r   AccessRecord
			seq int64
			at  db.Timestamp
		)
		if err := rows.Scan(&seq, &r.EntryID, &at, &r.Actor, &r.Role, &r.Action, &r.Outcome, &r.Position,
			&r.RequestID, &r.ClientAddress, &r.Transport, &r.Emergency); err != nil {
			return nil, 0, false, db.Classify(err)
		}
		r.At = at.Time
		out, seqs = append(out, r), append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, false, db.Classify(err)
	}
	more := len(out) > limit
	if more {
		out, seqs = out[:limit], seqs[:limit]
	}
	var last int64
	if len(seqs) > 0 {
		last = seqs[len(seqs)-1]
	}
	if out == nil {
		out = []AccessRecord{}
	}
	return out, last, more, nil
}

// accessLogQuery is the statement (rebound) and arguments of accessLog: the page of pid's
// disclosures from its three sources, newest first, limit+1 rows to tell whether more follow.
func (s *Store) accessLogQuery(pid string, before int64, limit int) (string, []any) {
	// Single-record accesses (before migration 00032, and changes since) and searches audited
	// before migration 00022 are rows of audit_disclosures; a search page is one row of
	// audit_disclosure_pages holding its ids; an entry that disclosed exactly its subject keeps
	// its disclosure in its own row (00032, Disclosures.Wire), found by audit_log_subject.
	// The two b-tree sources give their newest limit+1 before the merge, so a page of a record
	// read thousands of times reads a page from each index, not every access. The search pages
	// are found through their GIN index, which has no order: a LIMIT there would walk the
	// pages by seq instead, every search ever made, to find the few that returned the record.
	page := `SELECT g.entry_seq, array_position(g.patient_ids, ?::uuid) AS position, g.transport, g.emergency
		FROM audit_disclosure_pages g WHERE g.patient_ids @> ARRAY[?::uuid]`
	if s.db.Dialect == db.SQLite {
		page = `SELECT g.entry_seq, j.key + 1 AS position, g.transport, g.emergency
		FROM audit_disclosure_pages g, json_each(g.patient_ids) j WHERE j.value = ? AND ? <> ''`
	}
	n := limit + 1
	rowsArgs, pageArgs, entryArgs := []any{pid}, []any{pid, pid}, []any{pid}
	bound, entryBound := "", ""
	if before > 0 {
		bound, entryBound = ` AND entry_seq < ?`, ` AND seq < ?`
		rowsArgs, pageArgs, entryArgs = append(rowsArgs, before), append(pageArgs, before), append(entryArgs, before)
	}
	q := `SELECT d.entry_seq, a.id, a.at, a.actor, a.role, a.action, a.outcome, d.position, a.request_id,
		a.client_address, d.transport, d.emergency
		FROM (SELECT * FROM (SELECT entry_seq, position, transport, emergency FROM audit_disclosures
				WHERE patient_id = ?` + bound + ` ORDER BY entry_seq DESC LIMIT ?) r
			UNION ALL SELECT * FROM (` + page + `) p WHERE 1 = 1` + bound + `
			UNION ALL SELECT * FROM (SELECT seq AS entry_seq, 0 AS position, disclosed_via AS transport, disclosed_emergency AS emergency
				FROM ` + AuditTable + ` WHERE subject_id = ? AND disclosed_via IS NOT NULL` + entryBound + ` ORDER BY seq DESC LIMIT ?) e) d
		JOIN ` + AuditTable + ` a ON a.seq = d.entry_seq
		ORDER BY d.entry_seq DESC LIMIT ?`
	args := append(append(rowsArgs, n), pageArgs...)
	args = append(append(args, append(entryArgs, n)...), n)
	return s.db.Rebind(q), args
}
