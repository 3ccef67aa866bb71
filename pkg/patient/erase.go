package patient

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/typed"
	"github.com/pms/pms/pkg/platform/validate"
)

// ActionErase is the audit action of an erasure (its entry names the patient, never the PHI).
const ActionErase = "erase"

// Erasure limits: the reason's length in characters, as break-glass's.
const (
	MinEraseReason = 10
	MaxEraseReason = 500
)

// Erasure errors.
var (
	// ErrNotDeleted refuses to erase a live record: erasure follows a soft delete, so a record
	// is never erased by mistake in one step.
	ErrNotDeleted = errs.New(errs.Conflict, "only a deleted patient record can be erased: DELETE /patients/{id} first")
	// ErrErased refuses a second erasure.
	ErrErased = errs.New(errs.Conflict, "the patient record is already erased")
	// ErrErasedRecord answers the history of an erased record.
	ErrErasedRecord = errs.New(errs.Gone, "the patient record was erased")
)

// DataKeyFileName is the file, under the data directory, of the key-encryption key that wraps
// the patients' data keys (shred.LoadKEK).
const DataKeyFileName = "patient-data.key"

// ErasedDateOfBirth is the date of birth of an erased record's tombstone: a date no one is
// born on, which the schema's date format still admits.
const ErasedDateOfBirth = "0000-00-00"

// EraseRequest asks to erase deleted patient ID's PHI; Reason is required and kept.
type EraseRequest struct {
	ID     string `json:"-"`
	Reason string `json:"reason"`
}

// Erasure is the erase record a tombstone keeps: who erased which record, when and why.
type Erasure struct {
	PatientID string    `json:"patientId"`
	MRN       string    `json:"mrn"`
	ErasedAt  time.Time `json:"erasedAt"`
	ErasedBy  string    `json:"erasedBy"`
	Role      string    `json:"role"`
	Reason    string    `json:"reason"`
	RequestID string    `json:"requestId"`
}

// Erase removes deleted patient ID's PHI from every store of the patient service (GDPR Art.
// 17; docs/api.md, "Erasure"): the record becomes a tombstone (id, MRN, dates), its versions
// and its stored command replies are deleted, its published events leave the outbox, and its
// data key is destroyed, so every event about the patient already on Kafka stays unreadable
// for good; a PATIENT_ERASED event (ids only) tells the consumers. One transaction, audited
// (action erase) with the change.
func (s *service) Erase(ctx context.Context, req EraseRequest) (e Erasure, err error) {
	pid, idErr := ParseID(req.ID)
	defer func() { s.recordChange(ctx, ActionErase, pid, err) }()
	var bad errs.Fields
	if idErr != nil {
		bad.Add("id", "must be a UUID")
	}
	reason := strings.TrimSpace(req.Reason)
	if validate.Text(&bad, "reason", reason, MaxEraseReason, true) && utf8.RuneCountInString(reason) < MinEraseReason {
		bad.Add("reason", "must be at least 10 characters: say why the record is erased")
	}
	if err := bad.Err(); err != nil {
		return Erasure{}, err
	}
	ctx = audit.WithPending(ctx, ActionErase, pid) // recorded in the erasure's transaction
	return s.store.erase(ctx, pid, reason, s.meta(ctx), false)
}

// Erase implements Service over the endpoint set.
func (s Set) Erase(ctx context.Context, req EraseRequest) (Erasure, error) {
	return typed.Call[Erasure](ctx, s.EraseEndpoint, req)
}
