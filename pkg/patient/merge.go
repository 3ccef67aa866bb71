package patient

import (
	"context"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/typed"
	"github.com/pms/pms/pkg/platform/validate"
)

// The audit actions of merge and unmerge (issue 19 item 3). A merge records one entry on the
// duplicate and one on the survivor, in the merge's own transaction; an unmerge likewise.
const (
	ActionMerge   = "merge"
	ActionUnmerge = "unmerge"
)

// Merge limits: the reason's length in characters, as break-glass's and erasure's.
const (
	MinMergeReason = 10
	MaxMergeReason = 500
)

// MergedField is the field of a "merged" conflict that names the survivor: the one place a
// client (and the REST transport's redirect) finds where the record went.
const MergedField = "mergedInto"

// Merge errors. Every refusal of a state is a 409; the message says what to do instead.
var (
	ErrMergeSelf        = errs.New(errs.Conflict, "a patient record cannot be merged into itself")
	ErrMergeDeleted     = errs.New(errs.Conflict, "a deleted or erased patient record cannot be merged, nor merged into")
	ErrAlreadyMerged    = errs.New(errs.Conflict, "the patient record is already merged into another: unmerge it first")
	ErrSurvivorMerged   = errs.New(errs.Conflict, "the survivor is itself merged into another record: merge into that one")
	ErrNotMerged        = errs.New(errs.Conflict, "the patient record is not merged")
	ErrUnmergeForbidden = errs.New(errs.Conflict, "the merge can no longer be reversed: the survivor was erased or merged into another record since")
	ErrMergedErase      = errs.New(errs.Conflict, "a merged patient record cannot be erased: unmerge it first")
)

// mergedError is the answer to a write (or any use but a read) of a record merged into
// survivor: 409 with the survivor's id in fields.mergedInto.
func mergedError(survivor string) error {
	return &errs.Error{Kind: errs.Conflict, Message: "the patient record was merged into another record: use that one (fields.mergedInto)",
		Fields: map[string]string{MergedField: survivor}}
}

// IsMerged reports whether err is the conflict of a merged record (mergedError), on either
// side of any transport.
func IsMerged(err error) bool {
	_, ok := MergedInto(err)
	return ok
}

// MergedInto returns the survivor a "merged" conflict names.
func MergedInto(err error) (string, bool) {
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind != errs.Conflict || e.Fields[MergedField] == "" {
		return "", false
	}
	return e.Fields[MergedField], true
}

// MergeRequest merges patient DuplicateID into patient SurvivorID; Reason is required
// (MinMergeReason characters at least) and kept in the merge record, never in an event.
type MergeRequest struct {
	SurvivorID  string `json:"-"`
	DuplicateID string `json:"duplicateId"`
	Reason      string `json:"reason"`
}

// UnmergeRequest reverses the merge of merged record ID; Reason as in a merge.
type UnmergeRequest struct {
	ID     string `json:"-"`
	Reason string `json:"reason"`
}

// MergeRecord is a merge as the service keeps it: who merged which duplicate into which
// survivor, when and why, and, once reversed, who unmerged it, when and why.
type MergeRecord struct {
	ID            string     `json:"id"`
	SurvivorID    string     `json:"survivorId"`
	DuplicateID   string     `json:"duplicateId"`
	Reason        string     `json:"reason"`
	MergedAt      time.Time  `json:"mergedAt"`
	MergedBy      string     `json:"mergedBy"`
	Role          string     `json:"role"`
	RequestID     string     `json:"requestId"`
	UnmergedAt    *time.Time `json:"unmergedAt,omitempty"`
	UnmergedBy    string     `json:"unmergedBy,omitempty"`
	UnmergeReason string     `json:"unmergeReason,omitempty"`
}

// checkMergeReason validates a merge or unmerge reason into bad and returns it trimmed.
func checkMergeReason(bad *errs.Fields, reason string) string {
	reason = strings.TrimSpace(reason)
	if validate.Text(bad, "reason", reason, MaxMergeReason, true) && utf8.RuneCountInString(reason) < MinMergeReason {
		bad.Add("reason", "must be at least 10 characters: say why the records are (un)merged")
	}
	return reason
}

// Merge merges the duplicate into the survivor (docs/api.md, "Merge and unmerge"): in one
// transaction the duplicate gets a new version marked merged (history row kept), its
// identifiers and email stop counting as live, the merge record is written with its reason,
// a PATIENT_MERGED event (ids and the sealed record, no reason) goes to the outbox, and the
// audit entries of both records commit with it. Both records must be live; a restricted one
// needs the caller's break-glass grant.
func (s *service) Merge(ctx context.Context, req MergeRequest) (rec MergeRecord, err error) {
	ctx = withEmergencyMark(ctx)
	survivor, sErr := ParseID(req.SurvivorID)
	dup, dErr := ParseID(req.DuplicateID)
	defer func() { s.recordChange(ctx, ActionMerge, dup, err) }()
	var bad errs.Fields
	if sErr != nil {
		bad.Add("id", "must be a UUID")
	}
	if dErr != nil {
		bad.Add("duplicateId", "must be a UUID")
	}
	reason := checkMergeReason(&bad, req.Reason)
	if err := bad.Err(); err != nil {
		return MergeRecord{}, err
	}
	if survivor == dup {
		return MergeRecord{}, ErrMergeSelf
	}
	m := s.meta(ctx)
	rec = MergeRecord{ID: uuid.NewString(), SurvivorID: survivor, DuplicateID: dup, Reason: reason, MergedAt: m.At,
		MergedBy: m.Actor, Role: m.Role, RequestID: m.RequestID}
	ctx = s.withPending(ctx, ActionMerge, dup, survivor)
	err = s.store.merge(ctx, rec, m, func(tx *sqlx.Tx, p Patient) error { return s.checkAccessIn(ctx, tx, p) })
	if err != nil {
		return MergeRecord{}, err
	}
	return rec, nil
}

// Unmerge reverses the latest merge of merged record id, while nothing newer forbids it:
// the survivor must not have been erased or merged into another record since (deleted is
// fine: the duplicate then comes back as the record in use), and
// the duplicate's identifiers and email must not have been taken by another live record
// meanwhile (409 as a create would answer). The duplicate gets a new version, live again,
// with a PATIENT_UNMERGED event, on which billing moves back the invoices it moved.
func (s *service) Unmerge(ctx context.Context, req UnmergeRequest) (rec MergeRecord, err error) {
	ctx = withEmergencyMark(ctx)
	dup, idErr := ParseID(req.ID)
	defer func() { s.recordChange(ctx, ActionUnmerge, dup, err) }()
	var bad errs.Fields
	if idErr != nil {
		bad.Add("id", "must be a UUID")
	}
	reason := checkMergeReason(&bad, req.Reason)
	if err := bad.Err(); err != nil {
		return MergeRecord{}, err
	}
	m := s.meta(ctx)
	ctx = s.withPending(ctx, ActionUnmerge, dup)
	return s.store.unmerge(ctx, dup, reason, m, func(tx *sqlx.Tx, p Patient) error { return s.checkAccessIn(ctx, tx, p) })
}

// MergePatients implements Service over the endpoint set.
func (s Set) Merge(ctx context.Context, req MergeRequest) (MergeRecord, error) {
	return typed.Call[MergeRecord](ctx, s.MergeEndpoint, req)
}

// Unmerge implements Service over the endpoint set.
func (s Set) Unmerge(ctx context.Context, req UnmergeRequest) (MergeRecord, error) {
	return typed.Call[MergeRecord](ctx, s.UnmergeEndpoint, req)
}

// Merge counts merges as changes "merged".
func (s *instrumented) Merge(ctx context.Context, req MergeRequest) (MergeRecord, error) {
	r, err := s.Service.Merge(ctx, req)
	s.m.changes.WithLabelValues(ChangeMerged, errs.Label(err)).Inc()
	return r, err
}

// Unmerge counts unmerges as changes "unmerged".
func (s *instrumented) Unmerge(ctx context.Context, req UnmergeRequest) (MergeRecord, error) {
	r, err := s.Service.Unmerge(ctx, req)
	s.m.changes.WithLabelValues(ChangeUnmerged, errs.Label(err)).Inc()
	return r, err
}
