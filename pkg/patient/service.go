package patient

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/patient/match"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/idempotency"
	"github.com/pms/pms/pkg/platform/observe"
	"github.com/pms/pms/pkg/platform/validate"
)

// Service is the patient records API. Every method audits what it did (allowed, refused or
// failed) before it returns, so a successful read is always an audited read.
type Service interface {
	Create(ctx context.Context, req CreateRequest) (Patient, error)
	Get(ctx context.Context, id string) (Patient, error)
	List(ctx context.Context, q ListQuery) (Page, error)
	Update(ctx context.Context, req UpdateRequest) (Patient, error)
	Delete(ctx context.Context, req DeleteRequest) error
	History(ctx context.Context, id string) ([]Version, error)
	Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, error)
	// AccessLog is the accounting of disclosures of one patient's record (issue 17).
	AccessLog(ctx context.Context, q AccessLogQuery) (AccessLogPage, error)
	// VerifyAudit walks the audit chain and returns the verdict (docs/audit.md).
	VerifyAudit(ctx context.Context) (audit.Report, error)
	// BillingAccount and Invoices read the patient's billing data from the billing service;
	// they are reads of patient data, audited like Get.
	BillingAccount(ctx context.Context, id string) (BillingAccount, error)
	Invoices(ctx context.Context, id string) ([]Invoice, error)
	// SetConfidentiality, BreakGlass and BreakGlassGrants are break-glass (breakglass.go):
	// restricting a record, emergency access to it, and the review of those accesses.
	SetConfidentiality(ctx context.Context, req ConfidentialityRequest) (Patient, error)
	BreakGlass(ctx context.Context, req BreakGlassRequest) (Grant, error)
	BreakGlassGrants(ctx context.Context, q GrantQuery) ([]GrantReview, error)
	// Erase removes a deleted patient's PHI from every store of the service, leaving a
	// tombstone (erase.go).
	Erase(ctx context.Context, req EraseRequest) (Erasure, error)
	// Duplicates scores the possible duplicates of a record or of demographics (duplicates.go).
	Duplicates(ctx context.Context, req DuplicatesRequest) (DuplicatesResponse, error)
	// Merge merges a duplicate record into a survivor; Unmerge reverses it from the merged
	// record (merge.go).
	Merge(ctx context.Context, req MergeRequest) (MergeRecord, error)
	Unmerge(ctx context.Context, req UnmergeRequest) (MergeRecord, error)
}

// AuditLog is where the service writes its audit entries; Append returns once the entry is
// durably stored (pkg/platform/audit.Writer).
type AuditLog interface {
	Append(ctx context.Context, e audit.Entry) error
}

// Options configure the service. Zero values work.
type Options struct {
	// Now is the clock; tests fix it. Defaults to time.Now.
	Now func() time.Time
	// Logger receives operational messages (ids only, never patient data).
	Logger log.Logger
	// AuditTopic, when set, lets VerifyAudit compare the chain with the audit topic on request
	// (GET /audit/verify?againstTopic=true; docs/audit.md). Nil: the chain is verified alone.
	AuditTopic *audit.TopicCheck
	// Billing, when set, opens a billing account for every patient registered and serves
	// the billing reads; nil leaves accounts to the patient topic and answers those reads
	// with unavailable.
	Billing Billing
	// BillingTimeout bounds opening an account; default DefaultBillingTimeout.
	BillingTimeout time.Duration
	// AccountQueue and AccountWorkers bound the accounts opened in the background after a
	// registration; defaults DefaultAccountQueue and DefaultAccountWorkers.
	AccountQueue, AccountWorkers int
	// Disclosures, when set (with its Hook on the audit writer), records per patient which
	// records each audited action disclosed, for the access log; nil leaves it empty.
	Disclosures *Disclosures
	// SearchKey is the HMAC key of search fingerprints (LoadSearchKey); nil keeps none.
	SearchKey []byte
	// BreakGlassTTL is how long an emergency grant lasts; default DefaultBreakGlassTTL.
	BreakGlassTTL time.Duration
	// DuplicatePolicy is the duplicate check of registrations (DuplicatePolicyWarn, the
	// default, DuplicatePolicyBlock or DuplicatePolicyOff; duplicates.go).
	DuplicatePolicy string
	// DuplicateThreshold is the score from which a candidate is a possible duplicate;
	// 0 means match.DefaultThreshold.
	DuplicateThreshold float64
}

type service struct {
	store          *Store
	audit          AuditLog
	now            func() time.Time
	log            log.Logger
	billing        Billing
	billingTimeout time.Duration
	accounts       *accountOpener // nil without billing
	searchKey      []byte
	breakGlassTTL  time.Duration
	matcher        *match.Matcher
	dupPolicy      string
	// topic compares the audit chain with the audit topic on request (VerifyAudit).
	topic *audit.TopicCheck
}

// NewService returns the patient service over store, auditing to auditLog.
func NewService(store *Store, auditLog AuditLog, o Options) Service {
	if o.Disclosures != nil {
		auditLog = o.Disclosures.Log(auditLog)
	}
	s := &service{store: store, audit: auditLog, now: o.Now, log: o.Logger, billing: o.Billing, billingTimeout: o.BillingTimeout,
		searchKey: o.SearchKey, topic: o.AuditTopic}
	if s.now == nil {
		s.now = time.Now
	}
	if s.billingTimeout <= 0 {
		s.billingTimeout = DefaultBillingTimeout
	}
	if s.log == nil {
		s.log = log.NewNopLogger()
	}
	if s.breakGlassTTL = o.BreakGlassTTL; s.breakGlassTTL <= 0 {
		s.breakGlassTTL = DefaultBreakGlassTTL
	}
	s.matcher = match.New(match.Config{Threshold: o.DuplicateThreshold, IgnoredSystems: []string{SystemMRN}})
	if s.dupPolicy = o.DuplicatePolicy; s.dupPolicy == "" {
		s.dupPolicy = DuplicatePolicyWarn
	}
	if s.billing != nil {
		s.accounts = newAccountOpener(s.billing, s.billingTimeout, s.log, o.AccountQueue, o.AccountWorkers)
	}
	return s
}

func (s *service) meta(ctx context.Context) changeMeta {
	actor, role := authz.Actor(ctx)
	return changeMeta{At: s.now().UTC().Truncate(time.Microsecond), Actor: actor, Role: role, RequestID: observe.RequestID(ctx)}
}

// recordChange audits a change after its outcome is known (audit.Recorder.Change).
func (s *service) recordChange(ctx context.Context, action, patientID string, err error) {
	s.recorder().Change(ctx, action, patientID, err)
}

// readResult audits a read and returns the value only when the read and its audit succeeded.
func readResult[T any](s *service, ctx context.Context, action, patientID string, v T, err error) (T, error) {
	return audit.Read(s.recorder(), ctx, action, patientID, v, err)
}

func (s *service) recorder() audit.Recorder { return audit.Recorder{W: s.audit, Logger: s.log} }

// withPending is audit.WithPending for a change of the record pid (and audit.WithPendingAlso
// for each record of also the change touches too), with their disclosures (how the request
// arrived, break-glass use) set up before the change's transaction begins
// (disclosingLog.prepare): recorded beside the entries in audit_pending, or registered for
// this process's hook, so that each entry carries its own however soon, and by whichever
// process, the writer chains it.
func (s *service) withPending(ctx context.Context, action, pid string, also ...string) context.Context {
	ctx = audit.WithPending(ctx, action, pid)
	for _, id := range also {
		ctx = audit.WithPendingAlso(ctx, action, id)
	}
	if l, ok := s.audit.(disclosingLog); ok {
		ctx = l.prepare(ctx)
	}
	return ctx
}

// Create registers the patient and then has billing open the patient's account in the
// background, after the answer (also on an idempotent replay, which heals an account the
// first attempt could not open): billing_open.go.
func (s *service) Create(ctx context.Context, req CreateRequest) (Patient, error) {
	p, err := s.create(ctx, req)
	if err == nil {
		s.accounts.open(ctx, p)
	}
	return p, err
}

func (s *service) create(ctx context.Context, req CreateRequest) (p Patient, err error) {
	defer func() { s.recordChange(ctx, ActionCreate, p.ID, err) }()
	m := s.meta(ctx)
	today := m.At.Truncate(24 * time.Hour)
	var bad errs.Fields
	f := validateFields(req.Name, req.Email, req.Address, req.DateOfBirth, today, &bad)
	d := demographics{
		Family: validateFamily(&bad, req.Family), Given: validateGiven(&bad, req.Given), Gender: validateGender(&bad, req.Gender),
		Phone: validatePhone(&bad, req.Phone), Identifiers: validateIdentifiers(&bad, req.Identifiers),
	}
	if f.Name == "" {
		f.Name = displayName("", d.Family, d.Given)
		checkName(&bad, f.Name)
	}
	confirm := parseConfirm(&bad, req.ConfirmNotDuplicate)
	if req.DuplicateCheck != "" && req.DuplicateCheck != DuplicateCheckStrict {
		bad.Add("Prefer", "duplicate-check must be strict")
	}
	registered := today.Format(dateLayout)
	if req.RegisteredDate != "" {
		if d, msg := validate.Date(req.RegisteredDate); msg != "" {
			bad.Add("registeredDate", msg)
		} else {
			registered = d.Format(dateLayout)
		}
	}
	if len(req.IdempotencyKey) > 200 {
		bad.Add("Idempotency-Key", "must be at most 200 characters")
	}
	if err := bad.Err(); err != nil {
		return Patient{}, err
	}
	p = Patient{ID: uuid.NewString(), Name: f.Name, Family: d.Family, Given: d.Given, Gender: d.Gender, Phone: d.Phone,
		Identifiers: d.Identifiers, Email: f.Email, Address: f.Address,
		DateOfBirth: f.DateOfBirth, RegisteredDate: registered, Confidentiality: ConfidentialityNormal, CreatedAt: m.At, UpdatedAt: m.At}
	var idem *idempotency.Key
	if req.IdempotencyKey != "" {
		idem = &idempotency.Key{Scope: m.Actor, Key: req.IdempotencyKey, RequestHash: requestHash(f, d, req.RegisteredDate)}
	}
	ctx = s.withPending(ctx, ActionCreate, p.ID) // recorded by the create's own transaction
	var confirmed []string
	p, err = idempotency.Do(idem, func() (Patient, bool, error) { return s.replay(ctx, idem) },
		func() (Patient, error) {
			// The duplicate check runs in the create's transaction (duplicates.go).
			var same []string
			cctx := withDuplicateCheck(ctx, func(tx *sqlx.Tx) (n int, err error) {
				n, same, err = s.checkDuplicates(ctx, tx, p, req.DuplicateCheck, confirm)
				return n, err
			})
			p, holders, err := s.store.create(cctx, p, m, idem, confirm)
			var refusal duplicateRefusal
			if errors.As(err, &refusal) {
				return Patient{}, s.refuse(ctx, refusal.cs)
			}
			confirmed = append(holders, same...)
			return p, err
		})
	if err == nil {
		s.auditConfirmed(ctx, confirmed)
	}
	return p, err
}

// auditConfirmed records that the caller confirmed each of ids (live patients sharing the
// email of the record just written) as a different person: one entry per id, ids only.
func (s *service) auditConfirmed(ctx context.Context, ids []string) {
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			continue // confirmed as sharing the email and as a scored candidate: one entry
		}
		seen[id] = true
		s.recordChange(ctx, ActionConfirmNotDuplicate, id, nil)
	}
}

// replay returns the record a stored idempotency key created, if the key is known.
func (s *service) replay(ctx context.Context, idem *idempotency.Key) (Patient, bool, error) {
	id, found, err := keys.Lookup(ctx, s.store.db, idem, ErrIdempotencyConflict)
	if err != nil || !found {
		return Patient{}, found, err
	}
	p, err := s.store.get(ctx, id)
	if err == nil {
		err = s.checkAccess(ctx, p) // break-glass: a replay is a read of the record as it is now
	}
	return p, true, err
}

// requestHash fingerprints a create's normalised body for Idempotency-Key comparison.
func requestHash(f fields, d demographics, registered string) string {
	b, _ := json.Marshal([]any{f.Name, f.Email, f.Address, f.DateOfBirth, registered, d})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func (s *service) Get(ctx context.Context, id string) (Patient, error) {
	ctx = withEmergencyMark(ctx) // a use under a break-glass grant marks it (checkAccess)
	pid, err := ParseID(id)
	var p Patient
	if err == nil {
		p, err = s.store.get(ctx, pid)
	}
	if err == nil {
		err = s.checkAccess(ctx, p) // break-glass
	}
	return readResult(s, ctx, ActionRead, pid, p, err)
}

func (s *service) List(ctx context.Context, q ListQuery) (Page, error) {
	page, err := s.list(ctx, q)
	// One chained entry; its disclosures (one row per record returned) and the query's keyed
	// fingerprint are written with it (disclose.go).
	ids := make([]string, len(page.Patients))
	for i := range page.Patients {
		ids[i] = page.Patients[i].ID
	}
	ctx = withSearch(ctx, ids, fingerprint(s.searchKey, q))
	return readResult(s, ctx, ActionSearch, "", page, err)
}

func (s *service) list(ctx context.Context, q ListQuery) (Page, error) {
	var bad errs.Fields
	limit := q.Limit
	switch {
	case limit == 0:
		limit = DefaultLimit
	case limit < 1 || limit > MaxLimit:
		bad.Add("limit", "must be between 1 and 500")
	}
	if len(q.Q) > 200 {
		bad.Add("q", "must be at most 200 characters")
	}
	if q.Email != "" && len(q.Email) > MaxEmailLen {
		bad.Add("email", "must be at most 254 characters")
	}
	if q.Identifier != "" {
		if _, ok := parseIdentifierQuery(q.Identifier); !ok {
			bad.Add("identifier", "must be system|value")
		}
	}
	if q.DateOfBirth != "" {
		if d, msg := validate.Date(q.DateOfBirth); msg != "" {
			bad.Add("dateOfBirth", msg)
		} else {
			q.DateOfBirth = d.Format(dateLayout)
		}
	}
	validateSearchFilters(&bad, &q)
	var after int64
	if q.PageToken != "" {
		var err error
		if after, err = decodePageToken(q.PageToken); err != nil {
			bad.Add("pageToken", "is not a page token from this service")
		}
	}
	if err := bad.Err(); err != nil {
		return Page{}, err
	}
	patients, last, more, total, err := s.store.list(ctx, q, after, limit)
	if err != nil {
		return Page{}, err
	}
	if err := s.redactRestricted(ctx, patients); err != nil { // break-glass
		return Page{}, err
	}
	page := Page{Patients: patients, Total: total.N, TotalEstimated: total.Estimated}
	if more {
		page.NextPageToken = encodePageToken(last)
	}
	return page, nil
}

func (s *service) Update(ctx context.Context, req UpdateRequest) (p Patient, err error) {
	ctx = withEmergencyMark(ctx) // a use under a break-glass grant marks it (checkAccess)
	pid, idErr := ParseID(req.ID)
	defer func() { s.recordChange(ctx, ActionUpdate, pid, err) }()
	m := s.meta(ctx)
	var bad errs.Fields
	if idErr != nil {
		bad.Add("id", "must be a UUID")
	}
	f := validateFields(req.Name, req.Email, req.Address, req.DateOfBirth, m.At.Truncate(24*time.Hour), &bad)
	// Omitted demographics (nil) keep their stored values; the display name, when not sent,
	// is derived from the structured name as it will be (the stored parts where not sent).
	var d demographics
	if req.Family != nil {
		d.Family = validateFamily(&bad, *req.Family)
	}
	if req.Given != nil {
		d.Given = validateGiven(&bad, *req.Given)
	}
	if req.Gender != nil {
		d.Gender = validateGender(&bad, *req.Gender)
	}
	if req.Phone != nil {
		d.Phone = validatePhone(&bad, *req.Phone)
	}
	if req.Identifiers != nil {
		d.Identifiers = validateIdentifiers(&bad, *req.Identifiers)
	}
	if f.Name == "" && req.Family == nil && req.Given == nil {
		checkName(&bad, "")
	}
	confirm := parseConfirm(&bad, req.ConfirmNotDuplicate)
	if req.IfMatch < 0 {
		bad.Add("If-Match", "must be a version number")
	}
	if err := bad.Err(); err != nil {
		return Patient{}, err
	}
	if err := s.checkRestricted(ctx, pid); err != nil { // break-glass
		return Patient{}, err
	}
	ctx = s.withPending(ctx, ActionUpdate, pid)
	var confirmed []string
	defer func() {
		if err == nil {
			s.auditConfirmed(ctx, confirmed)
		}
	}()
	return s.store.change(ctx, pid, req.IfMatch, ChangeUpdated, m, func(tx *sqlx.Tx, cur Patient) (Patient, bool, error) {
		if err := s.checkAccessIn(ctx, tx, cur); err != nil { // again, on the locked row
			return Patient{}, false, err
		}
		if err := checkUnchanged(cur, req.Unchanged); err != nil {
			return Patient{}, false, err
		}
		next := cur
		next.Name, next.Email, next.Address, next.DateOfBirth = f.Name, f.Email, f.Address, f.DateOfBirth
		if req.Family != nil {
			next.Family = d.Family
		}
		if req.Given != nil {
			next.Given = d.Given
		}
		if req.Gender != nil {
			next.Gender = d.Gender
		}
		if req.Phone != nil {
			next.Phone = d.Phone
		}
		if req.Identifiers != nil {
			next.Identifiers = withMRN(cur.MRN, d.Identifiers)
		}
		if next.Name == "" {
			var bad errs.Fields
			next.Name = displayName("", next.Family, next.Given)
			checkName(&bad, next.Name)
			if err := bad.Err(); err != nil {
				return Patient{}, false, err
			}
		}
		if !strings.EqualFold(next.Email, cur.Email) {
			var err error
			if confirmed, err = s.store.checkEmail(ctx, tx, cur.ID, next.Email, confirm); err != nil {
				return Patient{}, false, err
			}
		}
		return next, !reflect.DeepEqual(next, cur), nil
	})
}

// checkUnchanged lets a GET-edit-PUT round trip send the read-only fields back, and refuses
// an attempt to change them.
func checkUnchanged(cur Patient, ro ReadOnlyFields) error {
	var bad errs.Fields
	const msg = "is read-only and must match the stored value"
	if ro.ID != nil && *ro.ID != cur.ID {
		bad.Add("id", msg)
	}
	if ro.MRN != nil && *ro.MRN != cur.MRN {
		bad.Add("mrn", msg)
	}
	if ro.RegisteredDate != nil && *ro.RegisteredDate != cur.RegisteredDate {
		bad.Add("registeredDate", msg)
	}
	if ro.Version != nil && *ro.Version != cur.Version {
		bad.Add("version", msg)
	}
	sameInstant := func(s string, t time.Time) bool {
		v, err := time.Parse(time.RFC3339Nano, s)
		return err == nil && v.Equal(t)
	}
	if ro.CreatedAt != nil && !sameInstant(*ro.CreatedAt, cur.CreatedAt) {
		bad.Add("createdAt", msg)
	}
	if ro.UpdatedAt != nil && !sameInstant(*ro.UpdatedAt, cur.UpdatedAt) {
		bad.Add("updatedAt", msg)
	}
	if ro.Confidentiality != nil && *ro.Confidentiality != cur.Confidentiality {
		bad.Add("confidentiality", "is changed only with PUT /patients/{id}/confidentiality")
	}
	return bad.Err()
}

func (s *service) Delete(ctx context.Context, req DeleteRequest) (err error) {
	ctx = withEmergencyMark(ctx) // a use under a break-glass grant marks it (checkAccess)
	pid, err := ParseID(req.ID)
	defer func() { s.recordChange(ctx, ActionDelete, pid, err) }()
	if err == nil {
		err = s.checkRestricted(ctx, pid) // break-glass
	}
	if err != nil {
		return err
	}
	ctx = s.withPending(ctx, ActionDelete, pid)
	_, err = s.store.change(ctx, pid, req.IfMatch, ChangeDeleted, s.meta(ctx), func(tx *sqlx.Tx, cur Patient) (Patient, bool, error) {
		return cur, true, s.checkAccessIn(ctx, tx, cur) // again, on the locked row
	})
	return err
}

func (s *service) History(ctx context.Context, id string) ([]Version, error) {
	ctx = withEmergencyMark(ctx) // a use under a break-glass grant marks it (checkAccess)
	pid, err := ParseID(id)
	var v []Version
	if err == nil {
		err = s.checkRestricted(ctx, pid) // break-glass
	}
	if err == nil {
		v, err = s.store.history(ctx, pid)
	}
	return readResult(s, ctx, ActionHistory, pid, v, err)
}

// Audit reads the audit log (admin and privacy roles). The read is itself audited
// (audit_read, naming the patient filtered on, if any): reads of audit logs are accountable
// too (issue 17).
func (s *service) Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	aq, err := audit.CheckQuery(audit.Query{SubjectID: q.PatientID, Actor: q.Actor, From: q.From, To: q.To, Limit: q.Limit}, "patientId", ParseID)
	var out []AuditEntry
	if err == nil {
		out, err = s.store.auditLog(ctx, AuditQuery{PatientID: aq.SubjectID, Actor: aq.Actor, From: aq.From, To: aq.To, Limit: aq.Limit})
	}
	return readResult(s, ctx, ActionAuditRead, aq.SubjectID, out, err)
}
