package patient

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/validate"
)

// Confidentiality levels of a patient record (issue 17, break-glass). A restricted record is
// read, changed or deleted only under an emergency grant (BreakGlass) of the caller.
const (
	ConfidentialityNormal     = "normal"
	ConfidentialityRestricted = "restricted"
)

// The actions break-glass adds to the audit log. ActionBreakGlass is the emergency access
// itself (audit.ActionBreakGlass, which the audit topic publishes as a BREAK_GLASS event).
const (
	ActionBreakGlass       = audit.ActionBreakGlass
	ActionConfidentiality  = "set_confidentiality"
	ActionBreakGlassReview = "break_glass_review"
)

// Break-glass limits: the grant's default lifetime, and the reason's length in characters.
const (
	DefaultBreakGlassTTL = 60 * time.Minute
	MinBreakGlassReason  = 10
	MaxBreakGlassReason  = 500
)

// Break-glass errors.
var (
	// ErrRestricted answers any use of a restricted record without a current grant. Its
	// message says how to get one, so a clinician in an emergency is not left at a dead end.
	ErrRestricted = errs.New(errs.PermissionDenied, "this patient record is restricted: a clinician or admin may get emergency access "+
		"with POST /patients/{id}/break-glass and a reason (break-glass; the access is audited and reviewed)")
	// ErrNotRestricted refuses a break-glass on a record anyone with the role may read anyway.
	ErrNotRestricted = errs.New(errs.Conflict, "the patient record is not restricted: no break-glass is needed")
)

// ConfidentialityRequest sets the confidentiality of patient ID ("normal" or "restricted").
type ConfidentialityRequest struct {
	ID              string `json:"-"`
	Confidentiality string `json:"confidentiality"`
}

// BreakGlassRequest asks for emergency access to patient ID; Reason is required (at least
// MinBreakGlassReason characters) and kept for review.
type BreakGlassRequest struct {
	ID     string `json:"-"`
	Reason string `json:"reason"`
}

// Grant is an emergency access of one user to one patient record until ExpiresAt.
type Grant struct {
	ID        string    `json:"id"`
	PatientID string    `json:"patientId"`
	UserID    string    `json:"userId"`
	Role      string    `json:"role"`
	Reason    string    `json:"reason"`
	RequestID string    `json:"requestId"`
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// GrantQuery filters the grants under review: by patient, by user (UserID), by creation
// instant (From inclusive, To exclusive). Limit 0 means DefaultAuditLimit.
type GrantQuery struct {
	PatientID string
	UserID    string
	From      time.Time
	To        time.Time
	Limit     int
}

// GrantReview is a grant with what its holder did to the record while it lasted: the audit
// entries of that user on that patient between CreatedAt and ExpiresAt, oldest first.
type GrantReview struct {
	Grant
	Reads []AuditEntry `json:"reads"`
}

// SetConfidentiality marks patient ID restricted or normal again. It is its own audited
// operation (not a field of PUT) so that only admins (later also the privacy role) change it.
// The change is a new version of the record, with its history row and PATIENT_UPDATED event.
func (s *service) SetConfidentiality(ctx context.Context, req ConfidentialityRequest) (p Patient, err error) {
	pid, idErr := ParseID(req.ID)
	defer func() { s.recordChange(ctx, ActionConfidentiality, pid, err) }()
	var bad errs.Fields
	if idErr != nil {
		bad.Add("id", "must be a UUID")
	}
	if req.Confidentiality != ConfidentialityNormal && req.Confidentiality != ConfidentialityRestricted {
		bad.Add("confidentiality", `must be "normal" or "restricted"`)
	}
	if err := bad.Err(); err != nil {
		return Patient{}, err
	}
	ctx = audit.WithPending(ctx, ActionConfidentiality, pid) // recorded in the change's transaction
	return s.store.setConfidentiality(ctx, pid, req.Confidentiality, s.meta(ctx))
}

// BreakGlass grants the caller emergency access to a restricted record for the configured
// lifetime. The grant is audited as action break_glass (published as a BREAK_GLASS event)
// and kept with its reason for GET /audit/break-glass.
func (s *service) BreakGlass(ctx context.Context, req BreakGlassRequest) (g Grant, err error) {
	pid, idErr := ParseID(req.ID)
	defer func() { s.recordChange(ctx, ActionBreakGlass, pid, err) }()
	var bad errs.Fields
	if idErr != nil {
		bad.Add("id", "must be a UUID")
	}
	reason := strings.TrimSpace(req.Reason)
	if validate.Text(&bad, "reason", reason, MaxBreakGlassReason, true) && utf8.RuneCountInString(reason) < MinBreakGlassReason {
		bad.Add("reason", "must be at least 10 characters: say why emergency access is needed")
	}
	if err := bad.Err(); err != nil {
		return Grant{}, err
	}
	m := s.meta(ctx)
	g = Grant{ID: uuid.NewString(), PatientID: pid, UserID: m.Actor, Role: m.Role, Reason: reason,
		RequestID: m.RequestID, CreatedAt: m.At, ExpiresAt: m.At.Add(s.breakGlassTTL)}
	ctx = audit.WithPending(ctx, ActionBreakGlass, pid) // recorded in the grant's transaction
	if err := s.store.addGrant(ctx, g); err != nil {
		return Grant{}, err
	}
	return g, nil
}

// BreakGlassGrants lists grants for review, newest first, each with the audit entries of its
// holder on its patient while it lasted. Admin only (op table); the review is itself audited
// (break_glass_review, naming the patient when the query did), as it shows who read what.
func (s *service) BreakGlassGrants(ctx context.Context, q GrantQuery) ([]GrantReview, error) {
	out, subject, err := s.breakGlassGrants(ctx, q)
	return readResult(s, ctx, ActionBreakGlassReview, subject, out, err)
}

func (s *service) breakGlassGrants(ctx context.Context, q GrantQuery) ([]GrantReview, string, error) {
	aq, err := audit.CheckQuery(audit.Query{SubjectID: q.PatientID, Actor: q.UserID, From: q.From, To: q.To, Limit: q.Limit}, "patientId", ParseID)
	if err != nil {
		return nil, "", err
	}
	grants, err := s.store.grants(ctx, GrantQuery{PatientID: aq.SubjectID, UserID: aq.Actor, From: aq.From, To: aq.To, Limit: aq.Limit})
	if err != nil {
		return nil, aq.SubjectID, err
	}
	out := make([]GrantReview, len(grants))
	for i, g := range grants {
		reads, err := s.store.auditLog(ctx, AuditQuery{PatientID: g.PatientID, Actor: g.UserID, From: g.CreatedAt, To: g.ExpiresAt, Limit: MaxAuditLimit})
		if err != nil {
			return nil, aq.SubjectID, err
		}
		for l, r := 0, len(reads)-1; l < r; l, r = l+1, r-1 { // oldest first
			reads[l], reads[r] = reads[r], reads[l]
		}
		out[i] = GrantReview{Grant: g, Reads: reads}
	}
	return out, aq.SubjectID, nil
}

// checkAccess refuses patient p (as just read) with ErrRestricted when it is restricted and
// the caller holds no current grant on it.
func (s *service) checkAccess(ctx context.Context, p Patient) error {
	return s.checkAccessIn(ctx, s.store.db, p)
}

// checkAccessIn is checkAccess reading the grants through q: a change checks again inside its
// own transaction, on the locked row, so neither a restriction nor a grant's expiry can slip
// between the check and the write.
func (s *service) checkAccessIn(ctx context.Context, q sqlx.QueryerContext, p Patient) error {
	if p.Confidentiality != ConfidentialityRestricted {
		return nil
	}
	actor, _ := authz.Actor(ctx)
	ok, err := s.store.hasGrant(ctx, q, p.ID, actor, s.now().UTC())
	if err != nil {
		return err
	}
	if !ok {
		return ErrRestricted
	}
	markEmergency(ctx) // the access log shows this use as emergency access
	return nil
}

// checkRestricted is checkAccess for an operation that has not read the record yet (history,
// update, delete, the billing reads): an unknown id passes, for the operation to answer 404.
func (s *service) checkRestricted(ctx context.Context, id string) error {
	level, found, err := s.store.confidentiality(ctx, id)
	if err != nil || !found {
		return err
	}
	return s.checkAccess(ctx, Patient{ID: id, Confidentiality: level})
}

// redactRestricted replaces each restricted record of a search page the caller holds no
// grant on by a stub (id, MRN and confidentiality only): a clinician finds the record to
// break the glass on, without seeing its contents.
func (s *service) redactRestricted(ctx context.Context, ps []Patient) error {
	for i, p := range ps {
		err := s.checkAccess(ctx, p)
		if errs.KindOf(err) == errs.PermissionDenied {
			ps[i] = Patient{ID: p.ID, MRN: p.MRN, Confidentiality: p.Confidentiality}.WithLists()
		} else if err != nil {
			return err
		}
	}
	return nil
}
