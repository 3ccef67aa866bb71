// Package patient is the patient records domain: the Service interface and its
// implementation, validation, the sqlx store, the go-kit endpoint set and service
// middleware. It knows nothing of HTTP, gRPC or Kafka; transports adapt to it.
package patient

import (
	"time"

	"github.com/pms/pms/pkg/platform/errs"
)

// Patient is a patient record as the contract shows it. Dates are ISO YYYY-MM-DD strings,
// instants are UTC.
type Patient struct {
	ID   string `json:"id"`
	MRN  string `json:"mrn"`
	Name string `json:"name"`
	// Family and Given are the structured name (FHIR HumanName); Name stays the display text
	// (demographics.go says how they relate).
	Family string   `json:"family"`
	Given  []string `json:"given"`
	// Gender is FHIR administrative gender (male, female, other, unknown) or "" when not given.
	Gender string `json:"gender"`
	Phone  string `json:"phone"`
	// Identifiers start with the MRN under SystemMRN, then the client's, in the order given.
	Identifiers    []Identifier `json:"identifiers"`
	Email          string       `json:"email"`
	Address        string       `json:"address"`
	DateOfBirth    string       `json:"dateOfBirth"`
	RegisteredDate string       `json:"registeredDate"`
	// Confidentiality is "normal" or "restricted" (break-glass.go); only its own endpoint
	// changes it.
	Confidentiality string `json:"confidentiality"`
	// MergedInto is the survivor this record was merged into (merge.go); empty for a record
	// that is not merged. REST never shows a merged record (its GET answers 308), but its
	// history does, and FHIR shows it as an inactive Patient with a replaced-by link.
	MergedInto string    `json:"mergedInto,omitempty"`
	Version    int64     `json:"version"`
	CreatedAt  time.Time `json:"createdAt"`
	UpdatedAt  time.Time `json:"updatedAt"`
	// PossibleDuplicates is, on a registration's answer only, how many registered patients
	// may be this one (X-Possible-Duplicates; docs/matching.md): not part of the record.
	PossibleDuplicates int `json:"-"`
}

// CreateRequest registers a patient. RegisteredDate is optional (today, UTC). An
// IdempotencyKey makes a retried create return the first result instead of a second record.
type CreateRequest struct {
	Name           string       `json:"name"`
	Family         string       `json:"family,omitempty"`
	Given          []string     `json:"given,omitempty"`
	Gender         string       `json:"gender,omitempty"`
	Phone          string       `json:"phone,omitempty"`
	Identifiers    []Identifier `json:"identifiers,omitempty"`
	Email          string       `json:"email"`
	Address        string       `json:"address"`
	DateOfBirth    string       `json:"dateOfBirth"`
	RegisteredDate string       `json:"registeredDate,omitempty"`
	IdempotencyKey string       `json:"-"`
	// ConfirmNotDuplicate names the live patients already holding Email whom the caller
	// confirms are different people (X-Confirm-Not-Duplicate); it must name all of them.
	ConfirmNotDuplicate []string `json:"-"`
	// DuplicateCheck is DuplicateCheckStrict when the caller wants a possible duplicate
	// refused (Prefer: duplicate-check=strict); "" leaves it to the policy.
	DuplicateCheck string `json:"-"`
}

// UpdateRequest replaces the editable fields of patient ID. IfMatch, when not zero, is the
// version the caller last saw. Unchanged holds the read-only fields the caller echoed back
// from a GET; each given one must equal the stored value.
//
// The demographic fields of issue 19 are pointers: nil (omitted by the client) leaves the
// stored value unchanged, so a client that does not know them loses nothing; a non-nil empty
// value clears the field.
type UpdateRequest struct {
	ID          string
	Name        string
	Family      *string
	Given       *[]string
	Gender      *string
	Phone       *string
	Identifiers *[]Identifier
	Email       string
	Address     string
	DateOfBirth string
	IfMatch     int64
	Unchanged   ReadOnlyFields
	// ConfirmNotDuplicate as in CreateRequest.
	ConfirmNotDuplicate []string
}

// UpdateBody is the JSON body of an update on every transport that carries JSON (REST PUT,
// Kafka UpdatePatient): the editable fields plus the read-only ones a client may echo back.
// The demographics of issue 19 are pointers: omitted (or null) leaves the stored value
// unchanged, so today's clients lose nothing; "" or [] clears it.
type UpdateBody struct {
	Name        string        `json:"name"`
	Family      *string       `json:"family,omitempty"`
	Given       *[]string     `json:"given,omitempty"`
	Gender      *string       `json:"gender,omitempty"`
	Phone       *string       `json:"phone,omitempty"`
	Identifiers *[]Identifier `json:"identifiers,omitempty"`
	Email       string        `json:"email"`
	Address     string        `json:"address"`
	DateOfBirth string        `json:"dateOfBirth"`
	ReadOnlyFields
}

// Request is the update of patient id the body asks for.
func (b UpdateBody) Request(id string, ifMatch int64, confirm []string) UpdateRequest {
	return UpdateRequest{
		ID: id, Name: b.Name, Email: b.Email, Address: b.Address, DateOfBirth: b.DateOfBirth,
		Family: b.Family, Given: b.Given, Gender: b.Gender, Phone: b.Phone, Identifiers: b.Identifiers,
		IfMatch: ifMatch, Unchanged: b.ReadOnlyFields, ConfirmNotDuplicate: confirm,
	}
}

// BodyOf is the UpdateBody that carries r.
func BodyOf(r UpdateRequest) UpdateBody {
	return UpdateBody{Name: r.Name, Email: r.Email, Address: r.Address, DateOfBirth: r.DateOfBirth, ReadOnlyFields: r.Unchanged,
		Family: r.Family, Given: r.Given, Gender: r.Gender, Phone: r.Phone, Identifiers: r.Identifiers}
}

// ReadOnlyFields are the fields a client may send back unchanged in an update; nil means
// not sent.
type ReadOnlyFields struct {
	ID             *string `json:"id,omitempty"`
	MRN            *string `json:"mrn,omitempty"`
	RegisteredDate *string `json:"registeredDate,omitempty"`
	Version        *int64  `json:"version,omitempty"`
	CreatedAt      *string `json:"createdAt,omitempty"`
	UpdatedAt      *string `json:"updatedAt,omitempty"`
	// Confidentiality may be echoed unchanged; it is set only by SetConfidentiality.
	Confidentiality *string `json:"confidentiality,omitempty"`
}

// DeleteRequest soft-deletes patient ID; IfMatch as in UpdateRequest.
type DeleteRequest struct {
	ID      string
	IfMatch int64
}

// ListQuery filters and pages the live patients. Q matches name or email (substring, case
// insensitive); Email and DateOfBirth match exactly (email case-insensitively). Limit 0
// means DefaultLimit. PageToken is the opaque token of the previous page.
//
// Identifier is "system|value" and matches a live patient holding that identifier exactly
// (the MRN under SystemMRN too).
//
// Family and Given match the start of the family name or of any given name (case
// insensitive), Phone the phone's digits (and leading +) exactly, Gender exactly;
// BornFrom and BornTo bound the date of birth (YYYY-MM-DD, inclusive, either may be empty):
// search_filters.go.
type ListQuery struct {
	Q           string
	Identifier  string
	Email       string
	DateOfBirth string
	Family      string
	Given       string
	Phone       string
	Gender      string
	BornFrom    string
	BornTo      string
	Limit       int
	PageToken   string
}

// Page is one page of a search: the patients, the token of the next page ("" on the last)
// and the total number of matches.
type Page struct {
	Patients      []Patient
	NextPageToken string
	Total         int64
	// TotalEstimated says Total is an estimate: the search matched more than
	// ExactCountLimit records, which are not counted on every page.
	TotalEstimated bool
}

// Paging limits.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// Version is one version of a record in its history: the record as it was after the change,
// what the change was, and who made it.
type Version struct {
	Version   int64     `json:"version"`
	Change    string    `json:"change"` // created, updated, deleted
	ChangedAt time.Time `json:"changedAt"`
	ChangedBy string    `json:"changedBy"`
	Role      string    `json:"role,omitempty"`
	RequestID string    `json:"requestId,omitempty"`
	Patient   Patient   `json:"patient"`
}

// The changes a history records.
const (
	ChangeCreated = "created"
	ChangeUpdated = "updated"
	ChangeDeleted = "deleted"
	// ChangeErased is an erasure (erase.go); it has no history row, as the history is erased.
	ChangeErased = "erased"
	// ChangeMerged and ChangeUnmerged are a merge into a survivor and its reversal (merge.go).
	ChangeMerged   = "merged"
	ChangeUnmerged = "unmerged"
)

// AuditQuery filters the audit log. Zero values mean "any"; Limit 0 means DefaultAuditLimit.
type AuditQuery struct {
	PatientID string
	Actor     string
	From      time.Time
	To        time.Time
	Limit     int
}

// Audit paging limits.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
)

// AuditEntry is one row of the audit log, as API.md shows it.
type AuditEntry struct {
	ID            string    `json:"id"`
	At            time.Time `json:"at"`
	Actor         string    `json:"actor"`
	Role          string    `json:"role"`
	Action        string    `json:"action"`
	PatientID     string    `json:"patientId"`
	Outcome       string    `json:"outcome"`
	RequestID     string    `json:"requestId"`
	ClientAddress string    `json:"clientAddress"`
}

// The actions the audit log records.
const (
	ActionCreate  = "create"
	ActionRead    = "read"
	ActionUpdate  = "update"
	ActionDelete  = "delete"
	ActionSearch  = "search"
	ActionHistory = "history"
	// ActionBillingAccount and ActionInvoices are reads of the patient's billing data.
	ActionBillingAccount = "read_billing_account"
	ActionInvoices       = "read_invoices"
	// ActionAuditRead and ActionAccessLogRead: reads of the audit log and of a patient's
	// access log are audited too (issue 17), though they disclose no record.
	ActionAuditRead     = "audit_read"
	ActionAccessLogRead = "access_log_read"
	// ActionConfirmNotDuplicate records, with the other patient as its subject, that the
	// caller confirmed the patient created or updated is a different person who shares an
	// email (X-Confirm-Not-Duplicate, issue 19): one entry per confirmed id, ids only.
	ActionConfirmNotDuplicate = "confirm_not_duplicate"
)

// Domain errors. Transports map their kinds to statuses; errors.Is matches by kind, so these
// hold on the client side of any transport too.
var (
	ErrNotFound            = errs.New(errs.NotFound, "patient not found")
	ErrGone                = errs.New(errs.Gone, "the patient record was deleted")
	ErrEmailTaken          = errs.New(errs.Conflict, "a patient with this email already exists")
	ErrVersionMismatch     = errs.New(errs.PreconditionFailed, "the patient was changed since the given version")
	ErrIdempotencyConflict = errs.New(errs.Conflict, "the Idempotency-Key was used with a different request")
	ErrIdentifierTaken     = errs.New(errs.Conflict, "a patient with this identifier already exists")
)
