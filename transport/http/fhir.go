package httptransport

import (
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/go-kit/kit/endpoint"
	kithttp "github.com/go-kit/kit/transport/http"
	"github.com/gorilla/mux"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
	"github.com/pms/pms/pkg/platform/typed"
	"github.com/pms/pms/transport/wire"
)

// The FHIR R4 facade (docs/fhir.md): the patient endpoint set served as FHIR resources. It is
// one more HTTP representation of the same endpoints, so the gateway's JWT check, roles,
// audit and rate limits apply to it as they do to /api/patients. Every error is an
// OperationOutcome; the statuses are the contract's (wire.StatusOf) but for a resource the
// service refuses on its business rules, 422 as FHIR asks.

// FHIR media types and version.
const (
	FHIRContentType = "application/fhir+json"
	FHIRVersion     = "4.0.1"
	// fhirCapabilityDate is when the capability statement last changed.
	fhirCapabilityDate = "2026-12-04"
)

// fhirUnprocessable marks an InvalidArgument error that is about the resource's content,
// not its syntax: FHIR answers it with 422.
type fhirUnprocessable struct{ err error }

func (u fhirUnprocessable) Error() string { return u.err.Error() }
func (u fhirUnprocessable) Unwrap() error { return u.err }

// unprocessable marks err (when it is an InvalidArgument) as a business-rule refusal (422).
func unprocessable(err error) error {
	if err == nil || errs.KindOf(err) != errs.InvalidArgument {
		return err
	}
	return fhirUnprocessable{err}
}

// errNotAcceptable is the answer to a _format or Accept the facade cannot produce (406).
var errNotAcceptable = errs.New(errs.UnsupportedMediaType, "only JSON is supported: _format and Accept must allow application/fhir+json or application/json")

// notAcceptable is the 406 that errNotAcceptable carries.
type notAcceptable struct{ err *errs.Error }

func (n notAcceptable) Error() string { return n.err.Error() }
func (n notAcceptable) Unwrap() error { return n.err }

// NewFHIRHandler serves the FHIR facade (GET /metadata, the Patient interactions and the
// AuditEvent search) from the patient endpoint set, under o.Prefix ("/fhir" in the gateway),
// behind Wrap.
func NewFHIRHandler(set patient.Set, o Options) http.Handler {
	return NewFHIRFacade(FHIRSets{Patient: set}, o)
}

// FHIRSets are the endpoint sets the facade serves: Patient and AuditEvent (the patient's
// access log) from Patient; Account and Invoice from Billing, when it is set.
type FHIRSets struct {
	Patient patient.Set
	Billing *billing.Set
}

// NewFHIRFacade serves the FHIR facade from sets (NewFHIRHandler), under o.Prefix, behind Wrap.
func NewFHIRFacade(sets FHIRSets, o Options) http.Handler {
	set := sets.Patient
	r := routerWith(encodeFHIRError)
	p := o.prefix()
	if o.OnRoute != nil {
		o.OnRoute(http.MethodGet, p+"/metadata")
	}
	r.Path(p + "/metadata").Methods(http.MethodGet).HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if _, err := ParseQuery(req, fhirFormatParams...); err != nil {
			encodeFHIRError(req.Context(), err, w)
			return
		}
		writeFHIR(w, req.Context(), http.StatusOK, capabilityStatement(fhirBase(req, p), sets.Billing != nil))
	})
	handleFHIR(r, o, http.MethodPost, "/Patient", businessRules(set.CreateEndpoint), decodeFHIRCreate, encodeFHIRCreated)
	handleFHIR(r, o, http.MethodGet, "/Patient", fhirSearch(set.ListEndpoint), decodeFHIRSearchGet, encodeFHIRSearchset)
	handleFHIR(r, o, http.MethodPost, "/Patient/_search", fhirSearch(set.ListEndpoint), decodeFHIRSearchPost, encodeFHIRSearchset)
	handleFHIR(r, o, http.MethodPost, "/Patient/$match", set.DuplicatesEndpoint, decodeFHIRMatch, encodeFHIRMatch)
	handleFHIR(r, o, http.MethodGet, "/Patient/{id}", set.GetEndpoint, decodeFHIRRead, encodeFHIRPatient)
	handleFHIR(r, o, http.MethodPut, "/Patient/{id}", businessRules(set.UpdateEndpoint), decodeFHIRUpdate, encodeFHIRPatient)
	handleFHIR(r, o, http.MethodDelete, "/Patient/{id}", set.DeleteEndpoint, decodeFHIRDelete, encodeFHIRDeleted)
	handleFHIR(r, o, http.MethodGet, "/Patient/{id}/_history", set.HistoryEndpoint, decodeFHIRHistory, encodeFHIRHistory)
	handleFHIR(r, o, http.MethodGet, "/Patient/{id}/_history/{vid}", fhirVRead(set.HistoryEndpoint), decodeFHIRVRead, encodeFHIRVersion)
	handleFHIR(r, o, http.MethodGet, "/AuditEvent", fhirAuditEvents(set.AccessLogEndpoint), decodeFHIRAuditEventSearch, encodeFHIRAuditEvents)
	if sets.Billing != nil {
		fhirBillingRoutes(r, o, *sets.Billing)
	}
	return Wrap(negotiate(r), o)
}

// fhirFormatParams are the query parameters every FHIR interaction takes.
var fhirFormatParams = []string{"_format", "_pretty"}

// negotiate answers 406 before anything else when the caller asks (by _format or Accept) for
// a representation other than JSON: FHIR's XML and RDF formats are not served.
func negotiate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, _ := url.ParseQuery(r.URL.RawQuery)
		for _, f := range q["_format"] {
			if !jsonFormat(f) {
				encodeFHIRError(r.Context(), notAcceptable{errNotAcceptable}, w)
				return
			}
		}
		if a := r.Header.Values("Accept"); len(a) > 0 && !acceptsJSON(strings.Join(a, ",")) {
			encodeFHIRError(r.Context(), notAcceptable{errNotAcceptable}, w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// jsonFormat reports whether a _format value names JSON (FHIR's "json" or a JSON mime type).
func jsonFormat(f string) bool {
	switch strings.ToLower(strings.TrimSpace(f)) {
	case "json", "application/json", FHIRContentType, "application/fhir json":
		return true
	}
	mt, _, err := mime.ParseMediaType(f)
	return err == nil && (mt == "application/json" || mt == FHIRContentType)
}

// acceptsJSON reports whether an Accept header allows a JSON answer.
func acceptsJSON(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if q, ok := params["q"]; ok {
			if v, err := strconv.ParseFloat(q, 64); err == nil && v == 0 {
				continue
			}
		}
		switch mt {
		case "*/*", "application/*", "application/json", FHIRContentType:
			return true
		}
	}
	return false
}

// handleFHIR registers one FHIR interaction: as Handle, but the answers and errors are FHIR
// JSON (OperationOutcome) and the encoder may answer with an error of its own.
func handleFHIR[Req, Resp any](router *mux.Router, o Options, method, path string, e endpoint.Endpoint,
	dec func(context.Context, *http.Request) (Req, error),
	enc func(context.Context, http.Header, Resp) (int, any, error),
) {
	p := o.prefix()
	if o.OnRoute != nil {
		o.OnRoute(method, p+path)
	}
	router.Path(p + path).Methods(method).Handler(kithttp.NewServer(e, Decoder(dec), fhirEncoder(enc),
		kithttp.ServerBefore(bearerTokenToContext, requestURLToContext, fhirBaseToContext(p)),
		kithttp.ServerErrorEncoder(encodeFHIRError),
		kithttp.ServerErrorHandler(internalErrorLogger{o.logger()}),
	))
}

// fhirEncoder adapts a typed FHIR response encoder to go-kit (as Encoder does for REST).
func fhirEncoder[Resp any](f func(context.Context, http.Header, Resp) (int, any, error)) kithttp.EncodeResponseFunc {
	return func(ctx context.Context, w http.ResponseWriter, response any) error {
		resp, ok := response.(Resp)
		if !ok {
			return errs.New(errs.Internal, wire.InternalMessage)
		}
		status, body, err := f(ctx, w.Header(), resp)
		if err != nil {
			encodeFHIRError(ctx, err, w)
			return nil
		}
		writeFHIR(w, ctx, status, body)
		return nil
	}
}

// writeFHIR writes a FHIR resource (nil: no body) as application/fhir+json.
func writeFHIR(w http.ResponseWriter, _ context.Context, status int, body any) {
	if body == nil {
		w.WriteHeader(status)
		return
	}
	b, err := json.Marshal(body)
	if err != nil {
		status, b = http.StatusInternalServerError, mustJSON(outcome("exception", wire.InternalMessage))
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", FHIRContentType+"; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// fhirOutcome is the OperationOutcome resource.
type fhirOutcome struct {
	ResourceType string      `json:"resourceType"`
	Issue        []fhirIssue `json:"issue"`
}

type fhirIssue struct {
	Severity    string `json:"severity"`
	Code        string `json:"code"`
	Diagnostics string `json:"diagnostics,omitempty"`
}

func outcome(code, msg string) fhirOutcome {
	return fhirOutcome{ResourceType: "OperationOutcome", Issue: []fhirIssue{{Severity: "error", Code: code, Diagnostics: msg}}}
}

// fhirIssueCodes is the FHIR issue type of each status the facade answers.
var fhirIssueCodes = map[int]string{
	http.StatusBadRequest:            "invalid",
	http.StatusUnauthorized:          "login",
	http.StatusForbidden:             "forbidden",
	http.StatusNotFound:              "not-found",
	http.StatusMethodNotAllowed:      "not-supported",
	http.StatusNotAcceptable:         "not-supported",
	http.StatusConflict:              "conflict",
	http.StatusGone:                  "deleted",
	http.StatusPreconditionFailed:    "conflict",
	http.StatusRequestEntityTooLarge: "too-long",
	http.StatusUnsupportedMediaType:  "not-supported",
	http.StatusUnprocessableEntity:   "processing",
	http.StatusTooManyRequests:       "throttled",
	http.StatusServiceUnavailable:    "transient",
	http.StatusGatewayTimeout:        "timeout",
}

// fhirErrorStatus is the status of err in the facade: the contract's (wire.Error), 406 for a
// format it cannot produce, 422 for a resource refused on its content.
func fhirErrorStatus(ctx context.Context, err error) (int, wire.ErrorBody) {
	status, body := wire.Error(ctx, err)
	var na notAcceptable
	var u fhirUnprocessable
	switch {
	case errors.As(err, &na):
		status = http.StatusNotAcceptable
	case errors.As(err, &u) && status == http.StatusBadRequest:
		status = http.StatusUnprocessableEntity
	}
	return status, body
}

// encodeFHIRError writes err as an OperationOutcome with its status: one issue with the
// message, one per field (the field names are the service's or echoed safely, never values).
func encodeFHIRError(ctx context.Context, err error, w http.ResponseWriter) {
	status, body := fhirErrorStatus(ctx, err)
	h := w.Header()
	if h.Get(observe.RequestIDHeader) == "" {
		h.Set(observe.RequestIDHeader, observe.NewRequestID())
	}
	for _, k := range []string{"Etag", "Location", "Link", "Last-Modified"} {
		h.Del(k)
	}
	if body.Error == errs.RateLimited {
		h.Set("Retry-After", strconv.Itoa(retryAfterSeconds(errs.As(err).RetryAfter)))
	}
	if status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", "Bearer")
	}
	code, ok := fhirIssueCodes[status]
	if !ok {
		code = "exception"
	}
	o := outcome(code, body.Message)
	names := make([]string, 0, len(body.Fields))
	for k := range body.Fields {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		o.Issue = append(o.Issue, fhirIssue{Severity: "error", Code: code, Diagnostics: k + ": " + body.Fields[k]})
	}
	o.Issue = append(o.Issue, duplicateIssues(body)...) // fhir_match.go
	writeFHIR(w, ctx, status, o)
}

type fhirBaseKey struct{}

// fhirBaseToContext keeps the facade's base URL (scheme, host and prefix the client used) for
// the links and fullUrls of the answers.
func fhirBaseToContext(prefix string) kithttp.RequestFunc {
	return func(ctx context.Context, r *http.Request) context.Context {
		return context.WithValue(ctx, fhirBaseKey{}, fhirBase(r, prefix))
	}
}

func fhirBase(r *http.Request, prefix string) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := r.Host
	if !wire.PrintableASCII(host) || strings.ContainsAny(host, " /?#@") {
		host = "localhost"
	}
	return scheme + "://" + host + prefix
}

func baseOf(ctx context.Context) string {
	s, _ := ctx.Value(fhirBaseKey{}).(string)
	return s
}

// fhirETag is the weak entity tag FHIR gives a version.
func fhirETag(v int64) string { return `W/"` + strconv.FormatInt(v, 10) + `"` }

// checkFHIRContentType accepts application/fhir+json and application/json (UTF-8).
func checkFHIRContentType(values []string) error {
	if len(values) == 1 {
		if mt, params, err := mime.ParseMediaType(values[0]); err == nil && mt == FHIRContentType {
			for k, v := range params {
				if (k != "charset" || !strings.EqualFold(v, "utf-8")) && k != "fhirversion" {
					return errs.New(errs.UnsupportedMediaType, "the request body must be application/fhir+json in UTF-8")
				}
			}
			return nil
		}
	}
	if err := wire.CheckContentType(values); err != nil {
		return errs.New(errs.UnsupportedMediaType, "the request body must be application/fhir+json or application/json")
	}
	return nil
}

// decodeFHIRPatient reads a Patient resource body with the contract's body rules.
func decodeFHIRPatient(r *http.Request) (fhirPatient, patientFields, error) {
	if err := checkFHIRContentType(r.Header.Values("Content-Type")); err != nil {
		return fhirPatient{}, patientFields{}, err
	}
	raw, err := wire.ReadBody(r.Body, r.ContentLength)
	if err != nil {
		return fhirPatient{}, patientFields{}, err
	}
	res, err := wire.DecodeBody[fhirPatient](raw)
	if err != nil {
		return res, patientFields{}, err
	}
	if res.Active != nil && !*res.Active {
		return res, patientFields{}, unprocessable(errs.Invalid(map[string]string{"active": "an inactive record is a DELETE"}))
	}
	f, err := fromFHIR(res)
	return res, f, err
}

// decodeFHIRCreate reads POST /Patient (an optional Idempotency-Key as on REST).
func decodeFHIRCreate(_ context.Context, r *http.Request) (patient.CreateRequest, error) {
	if _, err := ParseQuery(r, fhirFormatParams...); err != nil {
		return patient.CreateRequest{}, err
	}
	if r.Header.Get("If-None-Exist") != "" {
		return patient.CreateRequest{}, errs.Invalid(map[string]string{"If-None-Exist": "conditional create is not supported"})
	}
	key, err := idempotencyKey(r.Header)
	if err != nil {
		return patient.CreateRequest{}, err
	}
	check, confirm, err := duplicateHeaders(r.Header) // fhir_match.go
	if err != nil {
		return patient.CreateRequest{}, err
	}
	_, f, err := decodeFHIRPatient(r)
	if err != nil {
		return patient.CreateRequest{}, err
	}
	if f.MRN != nil {
		return patient.CreateRequest{}, unprocessable(errs.Invalid(map[string]string{"identifier": "the MRN is assigned by the server"}))
	}
	return patient.CreateRequest{Name: f.Name, Family: f.Family, Given: f.Given, Gender: f.Gender, Phone: f.Phone, Identifiers: f.Identifiers,
		Email: f.Email, Address: f.Address, DateOfBirth: f.DateOfBirth, IdempotencyKey: key, DuplicateCheck: check, ConfirmNotDuplicate: confirm}, nil
}

// decodeFHIRUpdate reads PUT /Patient/{id}: the resource's id must be the path's, If-Match
// W/"n" is the version the caller saw (meta.versionId in the body is ignored, as FHIR says).
func decodeFHIRUpdate(_ context.Context, r *http.Request) (patient.UpdateRequest, error) {
	id, err := fhirPathID(r)
	if err != nil {
		return patient.UpdateRequest{}, err
	}
	ifMatch, err := ifMatchVersion(r.Header)
	if err != nil {
		return patient.UpdateRequest{}, err
	}
	res, f, err := decodeFHIRPatient(r)
	if err != nil {
		return patient.UpdateRequest{}, err
	}
	if res.ID != id {
		return patient.UpdateRequest{}, errs.Invalid(map[string]string{"id": "must be the id in the URL"})
	}
	// A FHIR update replaces the resource: an element it leaves out is removed, so every
	// demographic is sent (an omitted one as empty), unlike a REST PUT that may omit them.
	given, ids := f.Given, f.Identifiers
	if given == nil {
		given = []string{}
	}
	if ids == nil {
		ids = []patient.Identifier{}
	}
	return patient.UpdateRequest{ID: id, Name: f.Name, Family: &f.Family, Given: &given, Gender: &f.Gender, Phone: &f.Phone, Identifiers: &ids,
		Email: f.Email, Address: f.Address, DateOfBirth: f.DateOfBirth,
		IfMatch: ifMatch, Unchanged: patient.ReadOnlyFields{MRN: f.MRN}}, nil
}

// fhirPathID reads {id} and allows only the format parameters in the query.
func fhirPathID(r *http.Request) (string, error) {
	id, err := pathID(r)
	if err != nil {
		return "", err
	}
	_, err = ParseQuery(r, fhirFormatParams...)
	return id, err
}

func decodeFHIRRead(_ context.Context, r *http.Request) (patient.GetRequest, error) {
	id, err := fhirPathID(r)
	return patient.GetRequest{ID: id}, err
}

func decodeFHIRHistory(_ context.Context, r *http.Request) (patient.HistoryRequest, error) {
	id, err := fhirPathID(r)
	return patient.HistoryRequest{ID: id}, err
}

func decodeFHIRDelete(_ context.Context, r *http.Request) (patient.DeleteRequest, error) {
	id, err := fhirPathID(r)
	if err != nil {
		return patient.DeleteRequest{}, err
	}
	ifMatch, err := ifMatchVersion(r.Header)
	return patient.DeleteRequest{ID: id, IfMatch: ifMatch}, err
}

// vreadRequest is a vread: one version of one patient, served from its history.
type vreadRequest struct {
	patient.HistoryRequest
	Version int64
}

func decodeFHIRVRead(ctx context.Context, r *http.Request) (vreadRequest, error) {
	h, err := decodeFHIRHistory(ctx, r)
	if err != nil {
		return vreadRequest{}, err
	}
	v, perr := strconv.ParseInt(mux.Vars(r)["vid"], 10, 64)
	if perr != nil || v < 1 {
		return vreadRequest{}, errs.Invalid(map[string]string{"vid": "must be a version number"})
	}
	return vreadRequest{HistoryRequest: h, Version: v}, nil
}

// fhirVRead serves a vread over the history endpoint (its roles and audit: a history read):
// the version asked for, 410 when that version is the deletion, 404 when there is none.
func fhirVRead(history endpoint.Endpoint) endpoint.Endpoint {
	return func(ctx context.Context, req any) (any, error) {
		vr, ok := req.(vreadRequest)
		if !ok {
			return history(ctx, req) // a rejected request: the guard answers first
		}
		resp, err := typed.Call[patient.HistoryResponse](ctx, history, vr.HistoryRequest)
		if err != nil {
			return nil, err
		}
		for _, v := range resp.Versions {
			if v.Version == vr.Version {
				if v.Change == patient.ChangeDeleted {
					return nil, errs.New(errs.Gone, "this version is the record's deletion")
				}
				return v, nil
			}
		}
		return nil, errs.New(errs.NotFound, "no such version of the patient")
	}
}

// businessRules marks the service's refusal of a well-formed resource as 422 (a request the
// transport rejected keeps its own status).
func businessRules(next endpoint.Endpoint) endpoint.Endpoint {
	return func(ctx context.Context, req any) (any, error) {
		resp, err := next(ctx, req)
		if _, rejected := req.(typed.Rejected); !rejected {
			err = unprocessable(err)
		}
		return resp, err
	}
}

// patientHeaders sets a resource's ETag and Last-Modified.
func patientHeaders(h http.Header, p patient.Patient) {
	h.Set("ETag", fhirETag(p.Version))
	if !p.UpdatedAt.IsZero() {
		h.Set("Last-Modified", p.UpdatedAt.UTC().Format(http.TimeFormat))
	}
}

func encodeFHIRPatient(_ context.Context, h http.Header, p patient.Patient) (int, any, error) {
	patientHeaders(h, p)
	return http.StatusOK, toFHIR(p), nil
}

func encodeFHIRCreated(ctx context.Context, h http.Header, p patient.Patient) (int, any, error) {
	patientHeaders(h, p)
	h.Set("Location", baseOf(ctx)+"/Patient/"+url.PathEscape(p.ID)+"/_history/"+strconv.FormatInt(p.Version, 10))
	return http.StatusCreated, toFHIR(p), nil
}

func encodeFHIRDeleted(context.Context, http.Header, patient.DeleteResponse) (int, any, error) {
	return http.StatusNoContent, nil, nil
}

// versionResource is a history version as a Patient resource: its version and change time.
func versionResource(v patient.Version) fhirPatient {
	p := v.Patient
	p.Version = v.Version
	p.UpdatedAt = v.ChangedAt
	return toFHIR(p)
}

func encodeFHIRVersion(_ context.Context, h http.Header, v patient.Version) (int, any, error) {
	h.Set("ETag", fhirETag(v.Version))
	h.Set("Last-Modified", v.ChangedAt.UTC().Format(http.TimeFormat))
	return http.StatusOK, versionResource(v), nil
}

// fhirBundle is the Bundle resource (searchset and history).
type fhirBundle struct {
	ResourceType string      `json:"resourceType"`
	Type         string      `json:"type"`
	Total        *int64      `json:"total,omitempty"`
	Link         []fhirLink  `json:"link,omitempty"`
	Entry        []fhirEntry `json:"entry,omitempty"`
}

type fhirLink struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

type fhirEntry struct {
	FullURL  string             `json:"fullUrl,omitempty"`
	Resource any                `json:"resource,omitempty"`
	Search   *fhirEntrySearch   `json:"search,omitempty"`
	Request  *fhirEntryRequest  `json:"request,omitempty"`
	Response *fhirEntryResponse `json:"response,omitempty"`
}

type fhirEntrySearch struct {
	// Extension carries $match's match-grade (fhir_match.go).
	Extension []fhirExtension `json:"extension,omitempty"`
	Mode      string          `json:"mode"`
	// Score is a $match candidate's score, 0..1.
	Score *float64 `json:"score,omitempty"`
}

type fhirEntryRequest struct {
	Method string `json:"method"`
	URL    string `json:"url"`
}

type fhirEntryResponse struct {
	Status       string `json:"status"`
	Etag         string `json:"etag,omitempty"`
	LastModified string `json:"lastModified,omitempty"`
}

// encodeFHIRHistory writes the history Bundle, newest version first; a deletion is an entry
// without a resource.
func encodeFHIRHistory(ctx context.Context, _ http.Header, r patient.HistoryResponse) (int, any, error) {
	n := int64(len(r.Versions))
	b := fhirBundle{ResourceType: "Bundle", Type: "history", Total: &n, Entry: []fhirEntry{}}
	for i := len(r.Versions) - 1; i >= 0; i-- {
		v := r.Versions[i]
		path := "Patient/" + url.PathEscape(v.Patient.ID)
		e := fhirEntry{FullURL: baseOf(ctx) + "/" + path,
			Response: &fhirEntryResponse{Etag: fhirETag(v.Version), LastModified: fhirInstant(v.ChangedAt)}}
		switch v.Change {
		case patient.ChangeCreated:
			e.Request, e.Response.Status = &fhirEntryRequest{Method: http.MethodPost, URL: "Patient"}, "201 Created"
		case patient.ChangeDeleted:
			e.Request, e.Response.Status = &fhirEntryRequest{Method: http.MethodDelete, URL: path}, "204 No Content"
		default:
			e.Request, e.Response.Status = &fhirEntryRequest{Method: http.MethodPut, URL: path}, "200 OK"
		}
		if v.Change != patient.ChangeDeleted {
			e.Resource = versionResource(v)
		}
		b.Entry = append(b.Entry, e)
	}
	if len(b.Entry) == 0 {
		b.Entry = nil
	}
	return http.StatusOK, b, nil
}
