package httptransport

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gorilla/mux"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/errs"
)

// maxIDBytes bounds a path id before it reaches the service: ids are UUIDs (36 bytes), and a
// megabyte of path has no business in a log line or a database query.
const maxIDBytes = 64

// maxIdempotencyKey is the longest Idempotency-Key accepted.
const maxIdempotencyKey = 200

// NewPatientHandler serves the patient API of API.md ("Patients") from the endpoint set,
// under o.Prefix, behind Wrap.
func NewPatientHandler(set patient.Set, o Options) http.Handler {
	r := NewRouter()
	p := o.prefix()
	Handle(r, o, http.MethodPost, "/patients", set.CreateEndpoint, decodeCreatePatient, encodeCreatedPatient(p))
	Handle(r, o, http.MethodGet, "/patients", set.ListEndpoint, decodeListPatients, encodePatientPage(p))
	Handle(r, o, http.MethodGet, "/patients/{id}", set.GetEndpoint, decodeGetPatient, encodePatient)
	Handle(r, o, http.MethodPut, "/patients/{id}", set.UpdateEndpoint, decodeUpdatePatient, encodePatient)
	Handle(r, o, http.MethodDelete, "/patients/{id}", set.DeleteEndpoint, decodeDeletePatient, encodeNoContent[patient.DeleteResponse])
	Handle(r, o, http.MethodGet, "/patients/{id}/history", set.HistoryEndpoint, decodeHistory, encodeHistory)
	Handle(r, o, http.MethodGet, "/audit", set.AuditEndpoint, decodeAudit, encodeAudit)
	Handle(r, o, http.MethodGet, "/patients/{id}/billing-account", set.BillingAccountEndpoint, decodeBillingAccount, encodeOK[patient.BillingAccount])
	Handle(r, o, http.MethodGet, "/patients/{id}/invoices", set.InvoicesEndpoint, decodePatientInvoices, encodePatientInvoices)
	return Wrap(r, o)
}

// decodeCreatePatient reads POST /patients: the JSON body and an optional Idempotency-Key.
func decodeCreatePatient(_ context.Context, r *http.Request) (patient.CreateRequest, error) {
	if err := noQuery(r); err != nil {
		return patient.CreateRequest{}, err
	}
	key, err := idempotencyKey(r.Header)
	if err != nil {
		return patient.CreateRequest{}, err
	}
	req, err := DecodeJSON[patient.CreateRequest](r)
	req.IdempotencyKey = key
	return req, err
}

// updateBody is the PUT body: the four editable fields plus the read-only ones a client may
// echo back from a GET.
type updateBody struct {
	Name        string `json:"name"`
	Email       string `json:"email"`
	Address     string `json:"address"`
	DateOfBirth string `json:"dateOfBirth"`
	patient.ReadOnlyFields
}

// decodeUpdatePatient reads PUT /patients/{id}.
func decodeUpdatePatient(_ context.Context, r *http.Request) (patient.UpdateRequest, error) {
	id, err := pathID(r)
	if err != nil {
		return patient.UpdateRequest{}, err
	}
	ifMatch, err := ifMatchVersion(r.Header)
	if err != nil {
		return patient.UpdateRequest{}, err
	}
	if err := noQuery(r); err != nil {
		return patient.UpdateRequest{}, err
	}
	b, err := DecodeJSON[updateBody](r)
	if err != nil {
		return patient.UpdateRequest{}, err
	}
	return patient.UpdateRequest{
		ID: id, Name: b.Name, Email: b.Email, Address: b.Address, DateOfBirth: b.DateOfBirth,
		IfMatch: ifMatch, Unchanged: b.ReadOnlyFields,
	}, nil
}

// decodeDeletePatient reads DELETE /patients/{id} with its optional If-Match.
func decodeDeletePatient(_ context.Context, r *http.Request) (patient.DeleteRequest, error) {
	id, err := pathID(r)
	if err != nil {
		return patient.DeleteRequest{}, err
	}
	ifMatch, err := ifMatchVersion(r.Header)
	if err != nil {
		return patient.DeleteRequest{}, err
	}
	return patient.DeleteRequest{ID: id, IfMatch: ifMatch}, noQuery(r)
}

func decodeGetPatient(_ context.Context, r *http.Request) (patient.GetRequest, error) {
	id, err := idOnly(r)
	return patient.GetRequest{ID: id}, err
}

func decodeHistory(_ context.Context, r *http.Request) (patient.HistoryRequest, error) {
	id, err := idOnly(r)
	return patient.HistoryRequest{ID: id}, err
}

func decodeBillingAccount(_ context.Context, r *http.Request) (patient.BillingAccountRequest, error) {
	id, err := idOnly(r)
	return patient.BillingAccountRequest{ID: id}, err
}

func decodePatientInvoices(_ context.Context, r *http.Request) (patient.InvoicesRequest, error) {
	id, err := idOnly(r)
	return patient.InvoicesRequest{ID: id}, err
}

func encodePatientInvoices(_ context.Context, _ http.Header, r patient.InvoicesResponse) (int, any) {
	return http.StatusOK, nonNil(r.Invoices)
}

// decodeListPatients reads GET /patients?q=&email=&dateOfBirth=&limit=&pageToken=.
func decodeListPatients(_ context.Context, r *http.Request) (patient.ListQuery, error) {
	q, err := ParseQuery(r, "q", "email", "dateOfBirth", "limit", "pageToken")
	if err != nil {
		return patient.ListQuery{}, err
	}
	lq := patient.ListQuery{
		Q: q.Get("q"), Email: q.Get("email"), DateOfBirth: q.Get("dateOfBirth"),
		Limit: q.Int("limit", 0, 1, patient.MaxLimit), PageToken: q.Get("pageToken"),
	}
	return lq, q.Err()
}

// decodeAudit reads GET /audit?patientId=&actor=&from=&to=&limit=.
func decodeAudit(_ context.Context, r *http.Request) (patient.AuditQuery, error) {
	q, err := ParseQuery(r, "patientId", "actor", "from", "to", "limit")
	if err != nil {
		return patient.AuditQuery{}, err
	}
	aq := patient.AuditQuery{
		PatientID: q.Get("patientId"), Actor: q.Get("actor"),
		From: q.Instant("from", false), To: q.Instant("to", true),
		Limit: q.Int("limit", 0, 1, patient.MaxAuditLimit),
	}
	if !aq.From.IsZero() && !aq.To.IsZero() && aq.To.Before(aq.From) {
		q.Fail("to", "must not be before from")
	}
	return aq, q.Err()
}

// idOnly reads the path id of a route that takes nothing else.
func idOnly(r *http.Request) (string, error) {
	id, err := pathID(r)
	if err != nil {
		return "", err
	}
	return id, noQuery(r)
}

// pathID returns the {id} path variable as given; the service judges its form, the transport
// only its size and that it is plain text (a percent-encoded invalid UTF-8 byte would
// otherwise fail as an internal error where gRPC marshals it).
func pathID(r *http.Request) (string, error) {
	id := mux.Vars(r)["id"]
	if len(id) > maxIDBytes {
		return "", errs.Invalid(map[string]string{"id": "must be at most " + strconv.Itoa(maxIDBytes) + " bytes"})
	}
	if !plainText(id) {
		return "", errs.Invalid(map[string]string{"id": plainTextMessage})
	}
	return id, nil
}

// noQuery rejects any query parameter on a route that takes none.
func noQuery(r *http.Request) error {
	_, err := ParseQuery(r)
	return err
}

// singleHeader returns the one value of header name, "" when absent, and an error when it is
// given more than once: two preconditions or two keys are a client bug, not a choice.
func singleHeader(h http.Header, name string) (string, error) {
	vs := h.Values(name)
	switch len(vs) {
	case 0:
		return "", nil
	case 1:
		return strings.TrimSpace(vs[0]), nil
	}
	return "", errs.Invalid(map[string]string{name: "must be given at most once"})
}

// idempotencyKey reads the optional Idempotency-Key: 1 to 200 printable ASCII characters.
func idempotencyKey(h http.Header) (string, error) {
	key, err := singleHeader(h, "Idempotency-Key")
	if err != nil || key == "" {
		return "", err
	}
	if len(key) > maxIdempotencyKey || !printableASCII(key) {
		return "", errs.Invalid(map[string]string{"Idempotency-Key": "must be 1 to 200 printable ASCII characters"})
	}
	return key, nil
}

// ifMatchVersion reads the optional If-Match as a record version: `"3"`, `W/"3"` and `3`
// mean 3; absent and `*` mean any version (0). Anything else is a 400, not a silently
// unconditional write.
func ifMatchVersion(h http.Header) (int64, error) {
	v, err := singleHeader(h, "If-Match")
	if err != nil || v == "" || v == "*" {
		return 0, err
	}
	s := strings.TrimPrefix(v, "W/")
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	} else if s != v {
		s = "" // W/ without quotes
	}
	n, perr := strconv.ParseInt(s, 10, 64)
	if perr != nil || n < 1 || strings.HasPrefix(s, "+") {
		return 0, errs.Invalid(map[string]string{"If-Match": `must be a version such as "3", W/"3" or *`})
	}
	return n, nil
}

// etag is the strong entity tag of a record version.
func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

// patientPath is the path of one patient as the client addresses it.
func patientPath(prefix, id string) string { return prefix + "/patients/" + url.PathEscape(id) }

// encodePatient writes a patient with its ETag (GET and PUT).
func encodePatient(_ context.Context, h http.Header, p patient.Patient) (int, any) {
	h.Set("ETag", etag(p.Version))
	return http.StatusOK, p
}

// encodeCreatedPatient writes 201 with the new record's Location and ETag.
func encodeCreatedPatient(prefix string) func(context.Context, http.Header, patient.Patient) (int, any) {
	return func(ctx context.Context, h http.Header, p patient.Patient) (int, any) {
		h.Set("Location", patientPath(prefix, p.ID))
		_, body := encodePatient(ctx, h, p)
		return http.StatusCreated, body
	}
}

// encodePatientPage writes a search page: the array (never null), X-Total-Count, and a Link
// to the next page that repeats the caller's filters.
func encodePatientPage(prefix string) func(context.Context, http.Header, patient.Page) (int, any) {
	return func(ctx context.Context, h http.Header, pg patient.Page) (int, any) {
		h.Set("X-Total-Count", strconv.FormatInt(pg.Total, 10))
		if pg.NextPageToken != "" {
			q := requestQuery(ctx)
			q.Set("pageToken", pg.NextPageToken)
			h.Set("Link", "<"+prefix+"/patients?"+q.Encode()+`>; rel="next"`)
		}
		return http.StatusOK, nonNil(pg.Patients)
	}
}

func encodeHistory(_ context.Context, _ http.Header, r patient.HistoryResponse) (int, any) {
	return http.StatusOK, nonNil(r.Versions)
}

func encodeAudit(_ context.Context, _ http.Header, r patient.AuditResponse) (int, any) {
	return http.StatusOK, nonNil(r.Entries)
}

// encodeNoContent writes 204 and no body, whatever the response.
func encodeNoContent[Resp any](context.Context, http.Header, Resp) (int, any) {
	return http.StatusNoContent, nil
}

// nonNil makes an empty result encode as [] rather than null, as the contract's arrays are.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
