package billing

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/go-kit/log"
	"github.com/google/uuid"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/idempotency"
	"github.com/pms/pms/pkg/platform/observe"
)

// Service is the billing API. Every method audits what it did (allowed, refused or failed)
// before it returns, so a successful read is always an audited read.
//
// CreateAccount is idempotent on the patient id: the patient service calls it when it
// registers a patient, and a consumer of the patient topic calls it again for the same
// event, so that an account is never missed and never doubled.
type Service interface {
	CreateAccount(ctx context.Context, req CreateAccountRequest) (Account, error)
	GetAccount(ctx context.Context, id string) (Account, error)
	ListAccounts(ctx context.Context, q AccountQuery) ([]Account, error)
	CreateInvoice(ctx context.Context, req CreateInvoiceRequest) (Invoice, error)
	GetInvoice(ctx context.Context, id string) (Invoice, error)
	ListInvoices(ctx context.Context, q InvoiceQuery) (InvoicePage, error)
	IssueInvoice(ctx context.Context, id string) (Invoice, error)
	RecordPayment(ctx context.Context, req PaymentRequest) (Invoice, error)
	VoidInvoice(ctx context.Context, id string) (Invoice, error)
	Audit(ctx context.Context, q audit.Query) ([]audit.Record, error)
	// VerifyAudit walks the audit chain and returns the verdict (docs/audit.md); against the
	// audit topic too when ctx asks (audit.WithAgainstTopic).
	VerifyAudit(ctx context.Context) (audit.Report, error)
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
}

type service struct {
	store *Store
	audit AuditLog
	now   func() time.Time
	log   log.Logger
	topic *audit.TopicCheck
}

// NewService returns the billing service over store, auditing to auditLog.
func NewService(store *Store, auditLog AuditLog, o Options) Service {
	s := &service{store: store, audit: auditLog, now: o.Now, log: o.Logger, topic: o.AuditTopic}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = log.NewNopLogger()
	}
	return s
}

func (s *service) meta(ctx context.Context) changeMeta {
	actor, role := authz.Actor(ctx)
	return changeMeta{At: s.now().UTC().Truncate(time.Microsecond), Actor: actor, Role: role, RequestID: observe.RequestID(ctx)}
}

// recordChange audits a change after its outcome is known (audit.Recorder.Change).
func (s *service) recordChange(ctx context.Context, action, subject string, err error) {
	s.recorder().Change(ctx, action, subject, err)
}

// readResult audits a read and returns the value only when the read and its audit succeeded.
func readResult[T any](s *service, ctx context.Context, action, subject string, v T, err error) (T, error) {
	return audit.Read(s.recorder(), ctx, action, subject, v, err)
}

func (s *service) recorder() audit.Recorder { return audit.Recorder{W: s.audit, Logger: s.log} }

func (s *service) CreateAccount(ctx context.Context, req CreateAccountRequest) (a Account, err error) {
	pid, err := parseID(req.PatientID, "patientId")
	var created bool
	defer func() {
		if err == nil && !created && req.EventID != "" {
			// A patient event applied to an account already open changed nothing and told
			// nobody anything (the consumer discards the account): no audit entry, so an
			// account opened by the patient service's call and then by the patient topic's
			// consumer has one entry, not two, and costs one audit write less per
			// registration (issue 20 item 4). A call through the API still audits its answer.
			return
		}
		s.recordChange(ctx, ActionCreateAccount, pid, err)
	}()
	if err != nil {
		return Account{}, err
	}
	m := s.meta(ctx)
	ctx = audit.WithPending(ctx, ActionCreateAccount, pid) // recorded by the change's own transaction
	a, created, err = s.store.createAccount(ctx, Account{ID: uuid.NewString(), PatientID: pid, Status: AccountActive, CreatedAt: m.At}, m, req.EventID)
	return a, err
}

func (s *service) GetAccount(ctx context.Context, id string) (Account, error) {
	aid, err := ParseID(id)
	var a Account
	if err == nil {
		a, err = s.store.getAccount(ctx, aid)
	}
	if err == nil {
		err = s.refuseRestricted(ctx, a.PatientID) // docs/audit.md, "Billing and confidentiality"
	}
	pid := a.PatientID
	if err != nil {
		a = Account{}
	}
	return readResult(s, ctx, ActionReadAccount, pid, a, err)
}

func (s *service) ListAccounts(ctx context.Context, q AccountQuery) ([]Account, error) {
	var out []Account
	pid, err := parseID(q.PatientID, "patientId")
	if q.PatientID == "" {
		err = errs.Invalid(map[string]string{"patientId": "is required"})
	}
	if err == nil {
		err = s.refuseRestricted(ctx, pid)
	}
	if err == nil {
		out, err = s.store.accountsByPatient(ctx, pid)
	}
	return readResult(s, ctx, ActionSearchAccounts, pid, out, err)
}

func (s *service) CreateInvoice(ctx context.Context, req CreateInvoiceRequest) (inv Invoice, err error) {
	defer func() { s.recordChange(ctx, ActionCreateInvoice, inv.ID, err) }()
	d, err := validateInvoice(req)
	if err == nil && len(req.IdempotencyKey) > MaxIdempotencyKey {
		err = errs.Invalid(map[string]string{"Idempotency-Key": "must be at most 200 characters"})
	}
	if err != nil {
		return Invoice{}, err
	}
	m := s.meta(ctx)
	inv = Invoice{
		ID: uuid.NewString(), PatientID: d.PatientID, Currency: d.Currency.Code, Status: StatusDraft,
		DueDate: d.DueDate, Lines: d.Lines, Subtotal: d.Subtotal, AmountDue: d.Subtotal,
		Payments: []Payment{}, Version: 1, CreatedAt: m.At, UpdatedAt: m.At,
	}
	idem := idempotency.NewKey(m.Actor, req.IdempotencyKey, "CreateInvoice", d)
	ctx = audit.WithPending(ctx, ActionCreateInvoice, inv.ID)
	return s.idempotent(ctx, idem, func() (Invoice, error) { return s.store.createInvoice(ctx, inv, m, idem) })
}

// idempotent runs do under idem's key (idempotency.Do): a stored key replays its response
// or is a conflict; a key stored concurrently is replayed once its request has committed.
func (s *service) idempotent(ctx context.Context, idem *idempotency.Key, do func() (Invoice, error)) (Invoice, error) {
	return idempotency.Do(idem, func() (Invoice, bool, error) {
		response, found, err := keys.Lookup(ctx, s.store.db, idem, ErrIdempotencyConflict)
		if err != nil || !found {
			return Invoice{}, found, err
		}
		inv, err := decodeResponse(response)
		return inv, true, err
	}, do)
}

// encodeResponse and decodeResponse store a response for replay.
func encodeResponse(inv Invoice) (string, error) {
	b, err := json.Marshal(inv)
	if err != nil {
		return "", errs.Wrap(errs.Internal, "internal error", err)
	}
	return string(b), nil
}

func decodeResponse(s string) (Invoice, error) {
	var inv Invoice
	if err := json.Unmarshal([]byte(s), &inv); err != nil {
		return Invoice{}, errs.Wrap(errs.Internal, "internal error", fmt.Errorf("billing: stored response: %w", err))
	}
	return inv, nil
}

func (s *service) GetInvoice(ctx context.Context, id string) (Invoice, error) {
	iid, err := ParseID(id)
	var inv Invoice
	if err == nil {
		inv, err = s.store.getInvoice(ctx, iid)
	}
	if err == nil {
		err = s.refuseRestricted(ctx, inv.PatientID)
	}
	if err != nil {
		inv = Invoice{}
	}
	return readResult(s, ctx, ActionReadInvoice, iid, inv, err)
}

func (s *service) ListInvoices(ctx context.Context, q InvoiceQuery) (InvoicePage, error) {
	page, err := s.listInvoices(ctx, &q)
	return readResult(s, ctx, ActionSearchInvoices, q.PatientID, page, err)
}

// listInvoices validates and normalises q (the audit row names its patient) and reads a page.
func (s *service) listInvoices(ctx context.Context, q *InvoiceQuery) (InvoicePage, error) {
	var bad errs.Fields
	limit := q.Limit
	switch {
	case limit == 0:
		limit = DefaultLimit
	case limit < 1 || limit > MaxLimit:
		bad.Add("limit", fmt.Sprintf("must be between 1 and %d", MaxLimit))
	}
	if q.PatientID != "" {
		if id, err := parseID(q.PatientID, "patientId"); err != nil {
			bad.Add("patientId", "must be a UUID")
			q.PatientID = ""
		} else {
			q.PatientID = id
		}
	}
	if q.Status != "" && !validStatus(Status(q.Status)) {
		bad.Add("status", "must be one of draft, open, paid, void")
	}
	var after int64
	if q.PageToken != "" {
		var ok bool
		if after, ok = decodePageToken(q.PageToken); !ok {
			bad.Add("pageToken", "is not a page token from this service")
		}
	}
	if err := bad.Err(); err != nil {
		return InvoicePage{}, err
	}
	// A list of one restricted patient is refused as a read of that patient would be; a list
	// of many leaves the restricted patients' invoices out (a page may then hold fewer than
	// limit, its Link still leads on).
	if err := s.refuseRestricted(ctx, q.PatientID); err != nil {
		return InvoicePage{}, err
	}
	invs, last, more, err := s.store.listInvoices(ctx, *q, after, limit)
	if err == nil && q.PatientID == "" {
		invs, err = s.withoutRestricted(ctx, invs)
	}
	if err != nil {
		return InvoicePage{}, err
	}
	page := InvoicePage{Invoices: invs}
	if more {
		page.NextPageToken = encodePageToken(last)
	}
	return page, nil
}

func validStatus(st Status) bool {
	for _, x := range Statuses {
		if x == st {
			return true
		}
	}
	return false
}

func (s *service) IssueInvoice(ctx context.Context, id string) (inv Invoice, err error) {
	iid, err := ParseID(id)
	defer func() { s.recordChange(ctx, ActionIssueInvoice, iid, err) }()
	if err != nil {
		return Invoice{}, err
	}
	ctx = audit.WithPending(ctx, ActionIssueInvoice, iid)
	return s.store.change(ctx, iid, s.meta(ctx), nil, func(cur Invoice) (Invoice, *Payment, error) {
		to, err := Next(cur.Status, ActIssue)
		if err != nil {
			return Invoice{}, nil, err
		}
		cur.Status = to
		if cur.Subtotal == 0 {
			// Nothing is due on an invoice of zero: issuing it settles it, or it would stay
			// open for ever, since a payment must be more than zero.
			cur.Status = StatusPaid
		}
		return cur, nil, nil
	})
}

func (s *service) VoidInvoice(ctx context.Context, id string) (inv Invoice, err error) {
	iid, err := ParseID(id)
	defer func() { s.recordChange(ctx, ActionVoidInvoice, iid, err) }()
	if err != nil {
		return Invoice{}, err
	}
	ctx = audit.WithPending(ctx, ActionVoidInvoice, iid)
	return s.store.change(ctx, iid, s.meta(ctx), nil, func(cur Invoice) (Invoice, *Payment, error) {
		to, err := Next(cur.Status, ActVoid)
		if err != nil {
			return Invoice{}, nil, err
		}
		cur.Status = to
		return cur, nil, nil
	})
}

// paymentHash is what a payment's idempotency key is checked against.
type paymentHash struct {
	InvoiceID string
	Amount    int64
	Method    string
	Currency  string
}

func (s *service) RecordPayment(ctx context.Context, req PaymentRequest) (inv Invoice, err error) {
	iid, err := validatePayment(req)
	defer func() { s.recordChange(ctx, ActionRecordPayment, iid, err) }()
	if err != nil {
		return Invoice{}, err
	}
	m := s.meta(ctx)
	cur, _ := LookupCurrency(req.Currency)
	idem := idempotency.NewKey(m.Actor, req.IdempotencyKey, "RecordPayment", paymentHash{iid, req.Amount, req.Method, cur.Code})
	pay := Payment{ID: uuid.NewString(), Amount: req.Amount, Method: req.Method, At: m.At}
	ctx = audit.WithPending(ctx, ActionRecordPayment, iid)
	return s.idempotent(ctx, idem, func() (Invoice, error) {
		return s.store.change(ctx, iid, m, idem, func(inv Invoice) (Invoice, *Payment, error) {
			return applyPayment(inv, pay, cur.Code)
		})
	})
}

// applyPayment takes pay (in currency, when the caller named one) off inv: the payment must
// be in the invoice's currency, the invoice open, and the amount at most what is due; the
// payment that settles the rest makes it paid.
func applyPayment(inv Invoice, pay Payment, currency string) (Invoice, *Payment, error) {
	if currency != "" && currency != inv.Currency {
		return Invoice{}, nil, errs.Invalid(map[string]string{"currency": "must be the invoice's currency (" + inv.Currency + ")"})
	}
	paid, err := Money{inv.AmountPaid, inv.Currency}.Add(Money{pay.Amount, inv.Currency})
	if err != nil {
		return Invoice{}, nil, err
	}
	if _, err := Next(inv.Status, ActPay); err != nil {
		return Invoice{}, nil, err
	}
	if paid.Amount > inv.Subtotal {
		c, _ := LookupCurrency(inv.Currency)
		return Invoice{}, nil, errs.Newf(errs.Conflict, "the payment is more than the amount due (%s)", c.Format(inv.AmountDue))
	}
	inv.AmountPaid = paid.Amount
	if paid.Amount == inv.Subtotal {
		inv.Status = StatusPaid
	}
	return inv, &pay, nil
}

// Audit reads billing's audit log, newest first, by the contract's rules for every audit log
// (audit.CheckQuery; the subject is an account, invoice or patient). The role table keeps it
// to admins; reading it is not itself audited per subject.
func (s *service) Audit(ctx context.Context, q audit.Query) ([]audit.Record, error) {
	q, err := audit.CheckQuery(audit.Query{SubjectID: q.SubjectID, Actor: q.Actor, From: q.From, To: q.To, Limit: q.Limit},
		"subjectId", ParseID)
	var out []audit.Record
	if err == nil {
		out, err = audit.Records(ctx, s.store.db, AuditTable, q)
	}
	// Reads of the audit log are audited too (issue 17).
	return readResult(s, ctx, ActionAuditRead, q.SubjectID, out, err)
}
