package billing

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/observe"
	"github.com/pms/pms/pkg/platform/outbox"
)

// The audit actions of a patient merge's invoice moves (svc:billing, the duplicate as subject).
const (
	ActionMergeInvoices   = "merge_invoices"
	ActionUnmergeInvoices = "unmerge_invoices"
)

// MergeMovesTable records every invoice a patient merge moved (migration 00004).
const MergeMovesTable = "merge_moves"

// MergeChange is a patient merge or unmerge as billing applies it, from the patient topic's
// PATIENT_MERGED (Unmerge false: move the duplicate's invoices to the survivor's account) or
// PATIENT_UNMERGED (Unmerge true: move back what the duplicate's merges moved). EventID is the
// event's id, which makes the change apply once.
type MergeChange struct {
	EventID     string
	DuplicateID string
	SurvivorID  string
	Unmerge     bool
	At          time.Time
}

// MergeMove is one invoice a merge moved: from the duplicate's account to the survivor's, and
// back once the merge was reversed (ReturnedAt).
type MergeMove struct {
	EventID       string     `json:"eventId" db:"event_id"`
	InvoiceID     string     `json:"invoiceId" db:"invoice_id"`
	FromPatient   string     `json:"fromPatient" db:"from_patient"`
	FromAccount   string     `json:"fromAccount" db:"from_account"`
	ToPatient     string     `json:"toPatient" db:"to_patient"`
	ToAccount     string     `json:"toAccount" db:"to_account"`
	MovedAt       time.Time  `json:"movedAt" db:"-"`
	ReturnedAt    *time.Time `json:"returnedAt,omitempty" db:"-"`
	ReturnEventID string     `json:"returnEventId,omitempty" db:"return_event_id"`
}

type mergeMoveRow struct {
	MergeMove
	Moved    db.Timestamp `db:"moved_at"`
	Returned db.Timestamp `db:"returned_at"`
}

// ApplyPatientMerge applies c in one transaction with its event id (outbox.MarkApplied, with
// the message's offset), so a replayed event moves nothing twice, and returns how many
// invoices it moved. A merge moves every invoice of the duplicate to the survivor's account
// (opened here, with its BILLING_ACCOUNT_CREATED event, if the survivor has none yet), each
// with a new version, and records each move; an unmerge moves back every recorded move of the
// duplicate not yet returned whose invoice is still the survivor's. Audited (svc:billing,
// merge_invoices or unmerge_invoices, the duplicate as subject) in the same transaction.
func (s *Store) ApplyPatientMerge(ctx context.Context, c MergeChange) (int, error) {
	actor, role := authz.Actor(ctx)
	m := changeMeta{At: c.At.UTC().Truncate(time.Microsecond), Actor: actor, Role: role, RequestID: observe.RequestID(ctx)}
	if m.At.IsZero() {
		m.At = time.Now().UTC().Truncate(time.Microsecond)
	}
	action := ActionMergeInvoices
	if c.Unmerge {
		action = ActionUnmergeInvoices
	}
	ctx = audit.WithPending(ctx, action, c.DuplicateID)
	var moved int
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		first, err := outbox.MarkApplied(ctx, tx, s.db, ConsumerPatientEvents, c.EventID)
		if err != nil {
			return err
		}
		if !first {
			audit.NotChanged(ctx) // a replay: nothing moves, nothing is audited again
			return nil
		}
		if c.Unmerge {
			moved, err = s.moveBack(ctx, tx, c, m)
		} else {
			moved, err = s.moveToSurvivor(ctx, tx, c, m)
		}
		return err
	})
	return moved, err
}

// moveToSurvivor moves the duplicate's invoices to the survivor's account within tx.
func (s *Store) moveToSurvivor(ctx context.Context, tx *sqlx.Tx, c MergeChange, m changeMeta) (int, error) {
	var invoices []invoiceRow
	if err := tx.SelectContext(ctx, &invoices, tx.Rebind(`SELECT `+invoiceColumns+` FROM invoices WHERE patient_id = ? ORDER BY seq`+s.forUpdate), c.DuplicateID); err != nil {
		return 0, db.Classify(err)
	}
	if len(invoices) == 0 {
		return 0, nil
	}
	to, err := s.accountIn(ctx, tx, c.SurvivorID, m)
	if err != nil {
		return 0, err
	}
	for _, inv := range invoices {
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE invoices SET patient_id = ?, account_id = ?, version = version + 1, updated_at = ? WHERE id = ?`),
			c.SurvivorID, to, s.db.Time(m.At), inv.ID); err != nil {
			return 0, db.Classify(err)
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO `+MergeMovesTable+` (event_id, invoice_id, from_patient, from_account, to_patient, to_account, moved_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`), c.EventID, inv.ID, c.DuplicateID, inv.AccountID, c.SurvivorID, to, s.db.Time(m.At)); err != nil {
			return 0, db.Classify(err)
		}
	}
	return len(invoices), nil
}

// accountIn returns the id of patient's account, opening one (with its event) within tx when
// the patient has none yet: a survivor registered while billing was down.
func (s *Store) accountIn(ctx context.Context, tx *sqlx.Tx, patientID string, m changeMeta) (string, error) {
	a := Account{ID: uuid.NewString(), PatientID: patientID, Status: AccountActive, CreatedAt: m.At}
	n, err := db.Affected(tx.ExecContext(ctx, tx.Rebind(`INSERT INTO accounts (id, patient_id, status, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (patient_id) DO NOTHING`), a.ID, a.PatientID, a.Status, s.db.Time(a.CreatedAt)))
	if err != nil {
		return "", err
	}
	if n == 1 {
		msg, err := accountEvent(a, m)
		if err != nil {
			return "", err
		}
		return a.ID, s.events.Add(ctx, tx, msg)
	}
	var id string
	if err := tx.GetContext(ctx, &id, tx.Rebind(`SELECT id FROM accounts WHERE patient_id = ?`), patientID); err != nil {
		return "", db.Classify(err)
	}
	return id, nil
}

// moveBack returns the duplicate's moved invoices to its own account within tx.
func (s *Store) moveBack(ctx context.Context, tx *sqlx.Tx, c MergeChange, m changeMeta) (int, error) {
	var moves []mergeMoveRow
	if err := tx.SelectContext(ctx, &moves, tx.Rebind(`SELECT event_id, invoice_id, from_patient, from_account, to_patient, to_account, moved_at, returned_at, return_event_id
		FROM `+MergeMovesTable+` WHERE from_patient = ? AND returned_at IS NULL ORDER BY moved_at, invoice_id`), c.DuplicateID); err != nil {
		return 0, db.Classify(err)
	}
	moved := 0
	for _, mv := range moves {
		// Only an invoice still where the merge put it goes back.
		n, err := db.Affected(tx.ExecContext(ctx, tx.Rebind(`UPDATE invoices SET patient_id = ?, account_id = ?, version = version + 1, updated_at = ?
			WHERE id = ? AND patient_id = ? AND account_id = ?`),
			mv.FromPatient, mv.FromAccount, s.db.Time(m.At), mv.InvoiceID, mv.ToPatient, mv.ToAccount))
		if err != nil {
			return 0, err
		}
		if n == 1 {
			moved++
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE `+MergeMovesTable+` SET returned_at = ?, return_event_id = ? WHERE event_id = ? AND invoice_id = ?`),
			s.db.Time(m.At), c.EventID, mv.EventID, mv.InvoiceID); err != nil {
			return 0, db.Classify(err)
		}
	}
	return moved, nil
}

// MergeMoves returns the invoice moves of the merges of duplicate patientID, oldest first.
func (s *Store) MergeMoves(ctx context.Context, patientID string) ([]MergeMove, error) {
	var rows []mergeMoveRow
	if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(`SELECT event_id, invoice_id, from_patient, from_account, to_patient, to_account, moved_at, returned_at, return_event_id
		FROM `+MergeMovesTable+` WHERE from_patient = ? ORDER BY moved_at, invoice_id`), patientID); err != nil {
		return nil, db.Classify(err)
	}
	out := make([]MergeMove, len(rows))
	for i, r := range rows {
		out[i] = r.MergeMove
		out[i].MovedAt = r.Moved.Time
		if !r.Returned.IsZero() {
			t := r.Returned.Time
			out[i].ReturnedAt = &t
		}
	}
	return out, nil
}
