// Package audit is the batched, hash-chained audit writer every service uses (DESIGN.md,
// "Hot paths"): requests hand their entry to one writer per service and wait until the batch
// holding it is committed, so a 2xx still means "audited", while a burst of reads costs one
// transaction per batch rather than one fsync per read. Each row stores the hash of the row
// before it, so a deleted, inserted or edited row breaks the chain and Verify finds it.
package audit

import "time"

// Entry is one audit row. Seq, PrevHash and Hash are assigned by the writer; ID and At are
// filled by it when empty. Entries hold ids only, never patient data.
type Entry struct {
	Seq           int64     `db:"seq"` // 1, 2, 3... without gaps, in commit order
	ID            string    `db:"id"`
	At            time.Time `db:"-"` // UTC, to the microsecond; scanned through db.Timestamp
	Actor         string    `db:"actor"`
	Role          string    `db:"role"`
	Action        string    `db:"action"`
	SubjectID     string    `db:"subject_id"` // the patient, invoice or user the action was about
	Outcome       string    `db:"outcome"`
	RequestID     string    `db:"request_id"`
	ClientAddress string    `db:"client_address"`
	PrevHash      string    `db:"prev_hash"` // Hash of the row before (64 zeros for seq 1)
	Hash          string    `db:"hash"`      // hex SHA-256 over PrevHash and this row's fields
	// Extra holds the values of the writer's Options.ExtraColumns for this row, in that order
	// (nil: NULL in each). They are not hashed and not published: a service's own annotation
	// of the row, such as the patient service's "this entry disclosed its subject, via this
	// transport". An entry waiting in audit_pending keeps them only when its change recorded
	// them there (WithPendingExtra).
	Extra []any `db:"-"`
}

// Outcomes recorded for an action.
const (
	OutcomeSuccess  = "success"
	OutcomeDenied   = "denied"   // authentication or role refused
	OutcomeRejected = "rejected" // invalid input, conflict, precondition
	OutcomeNotFound = "not_found"
	OutcomeError    = "error" // failed for a reason of ours
)
