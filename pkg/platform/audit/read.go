package audit

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pms/pms/pkg/platform/db"
)

// Query selects audit entries for List. Zero fields do not filter.
type Query struct {
	SubjectID string
	Actor     string
	From      time.Time // inclusive
	To        time.Time // exclusive
	// Limit is the page size: default 100, at most 1000 (larger values are capped).
	Limit int
	// BeforeSeq pages backwards: only entries with a smaller seq (0 = from the newest). Pass
	// the last seq of one page to get the next; unlike an offset it stays put as rows arrive.
	BeforeSeq int64
}

// Limits of a List page.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// row scans one audit row: the instant through db.Timestamp, which reads both dialects.
type row struct {
	Entry
	AtTS db.Timestamp `db:"at"`
}

func (r *row) entry() Entry {
	e := r.Entry
	e.At = r.AtTS.Time
	return e
}

// List returns the entries of table (default audit_log) matching q, newest first.
func List(ctx context.Context, d *db.DB, table string, q Query) ([]Entry, error) {
	table, err := checkTable(table)
	if err != nil {
		return nil, err
	}
	var (
		where []string
		args  []any
	)
	if q.SubjectID != "" {
		where, args = append(where, "subject_id = ?"), append(args, q.SubjectID)
	}
	if q.Actor != "" {
		where, args = append(where, "actor = ?"), append(args, q.Actor)
	}
	if !q.From.IsZero() {
		where, args = append(where, "at >= ?"), append(args, d.Time(q.From))
	}
	if !q.To.IsZero() {
		where, args = append(where, "at < ?"), append(args, d.Time(q.To))
	}
	if q.BeforeSeq > 0 {
		where, args = append(where, "seq < ?"), append(args, q.BeforeSeq)
	}
	limit := q.Limit
	switch {
	case limit <= 0:
		limit = DefaultListLimit
	case limit > MaxListLimit:
		limit = MaxListLimit
	}
	stmt := `SELECT ` + columns + ` FROM ` + table
	if len(where) > 0 {
		stmt += ` WHERE ` + strings.Join(where, " AND ")
	}
	stmt += ` ORDER BY seq DESC LIMIT ?`
	args = append(args, limit)
	var rows []row
	if err := d.SelectContext(ctx, &rows, d.Rebind(stmt), args...); err != nil {
		return nil, db.Classify(err)
	}
	out := make([]Entry, len(rows))
	for i := range rows {
		out[i] = rows[i].entry()
	}
	return out, nil
}

// Report is the outcome of Verify and VerifyAgainst: the verdict `pms audit verify` prints and
// GET /audit/verify answers (docs/audit.md).
type Report struct {
	// Service names the service whose log was checked ("" from Verify).
	Service string `json:"service,omitempty"`
	// Rows is how many rows were checked: all of them when OK, else up to the bad one.
	Rows int64 `json:"rows"`
	// OK is true when every row is present, in order, and hashes to what it says (and, against
	// the topic, agrees with every entry and signed checkpoint published there).
	OK bool `json:"ok"`
	// FirstBadSeq is the lowest seq at which the chain breaks: a row whose hash or link does
	// not match, or the number missing where a row was deleted (0 when OK).
	FirstBadSeq int64 `json:"firstBadSeq,omitempty"`
	// Problem says what is wrong at FirstBadSeq, without the row's contents.
	Problem string `json:"problem,omitempty"`
	// LastSeq and LastHash are the tail of a valid chain. The chain alone cannot see rows cut
	// off its end, or a log rewritten by someone who recomputes every hash after an edit;
	// VerifyAgainst compares it with the copy published on the audit topic, which can.
	LastSeq  int64  `json:"lastSeq"`
	LastHash string `json:"lastHash,omitempty"`
	// AgainstTopic says the log was compared with the audit topic; TopicEntries and
	// Checkpoints count the published entries and signed checkpoints it was compared with.
	AgainstTopic bool  `json:"againstTopic"`
	TopicEntries int64 `json:"topicEntries,omitempty"`
	Checkpoints  int64 `json:"checkpoints,omitempty"`
}

// verifyPage is how many rows Verify reads per query, so a long log is walked in constant memory.
const verifyPage = 1000

// Verify walks table (default audit_log) in seq order, a page at a time, and checks that seqs
// run from 1 without gaps, that every row's prev_hash is the hash of the row before, and that
// every hash is the hash of its row. That is what finds a row deleted, inserted, reordered or
// edited in any column. It stops at the first problem.
func Verify(ctx context.Context, d *db.DB, table string) (Report, error) {
	return walk(ctx, d, table, nil)
}

// walk is Verify with check, when set, run on every row whose link and hash are right; a
// non-empty answer is the problem at that row.
func walk(ctx context.Context, d *db.DB, table string, check func(e *Entry) string) (Report, error) {
	table, err := checkTable(table)
	if err != nil {
		return Report{}, err
	}
	stmt := d.Rebind(`SELECT ` + columns + ` FROM ` + table + ` WHERE seq > ? ORDER BY seq LIMIT ?`)
	rep := Report{OK: true}
	prev, want := genesisHash, int64(1)
	bad := func(seq int64, format string, args ...any) (Report, error) {
		rep.OK, rep.FirstBadSeq, rep.Problem = false, seq, fmt.Sprintf(format, args...)
		rep.LastSeq, rep.LastHash = 0, ""
		return rep, nil
	}
	rows := make([]row, 0, verifyPage)
	for after := int64(0); ; {
		rows = rows[:0]
		if err := d.SelectContext(ctx, &rows, stmt, after, verifyPage); err != nil {
			return Report{}, db.Classify(err)
		}
		for i := range rows {
			e := rows[i].entry()
			rep.Rows++
			switch {
			case e.Seq > want:
				return bad(want, "seq %d is missing (next row has seq %d)", want, e.Seq)
			case e.Seq < want:
				return bad(e.Seq, "seq %d appears more than once", e.Seq)
			case e.PrevHash != prev:
				return bad(e.Seq, "prev_hash does not match the hash of seq %d", e.Seq-1)
			case chainHash(prev, &e) != e.Hash:
				return bad(e.Seq, "hash does not match the row's contents")
			}
			if check != nil {
				if problem := check(&e); problem != "" {
					return bad(e.Seq, "%s", problem)
				}
			}
			prev, want = e.Hash, want+1
			rep.LastSeq, rep.LastHash = e.Seq, e.Hash
		}
		if len(rows) < verifyPage {
			return rep, nil
		}
		after = rows[len(rows)-1].Seq
	}
}
