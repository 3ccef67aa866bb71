package httptransport

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/transport/wire"
)

// NewPatientHandler serves the patient API of API.md ("Patients") from the endpoint set,
// under o.Prefix, behind Wrap.
func NewPatientHandler(set patient.Set, o Options) http.Handler {
	r := NewRouter()
	p := o.prefix()
	Handle(r, o, http.MethodPost, "/patients", set.CreateEndpoint, decodeCreatePatient, encodeCreatedPatient(p))
	Handle(r, o, http.MethodGet, "/patients", set.ListEndpoint, decodeListPatients, encodePatientPage(p))
	Handle(r, o, http.MethodPost, "/patients/_search", set.ListEndpoint, decodeSearchPatients, encodeSearchPage(p))
	Handle(r, o, http.MethodGet, "/patients/{id}/access-log", set.AccessLogEndpoint, decodeAccessLog, encodeAccessLog(p))
	Handle(r, o, http.MethodGet, "/patients/{id}", set.GetEndpoint, decodeGetPatient, encodeGotPatient(p))
	Handle(r, o, http.MethodPut, "/patients/{id}", set.UpdateEndpoint, decodeUpdatePatient, encodePatient)
	Handle(r, o, http.MethodDelete, "/patients/{id}", set.DeleteEndpoint, decodeDeletePatient, encodeNoContent[patient.DeleteResponse])
	Handle(r, o, http.MethodGet, "/patients/{id}/history", set.HistoryEndpoint, decodeHistory, encodeHistory)
	Handle(r, o, http.MethodGet, "/audit", set.AuditEndpoint, decodeAudit, encodeAudit)
	Handle(r, o, http.MethodGet, "/audit/verify", set.VerifyAuditEndpoint, decodeVerifyAudit[patient.VerifyAuditRequest], encodeOK[audit.Report])
	Handle(r, o, http.MethodGet, "/patients/{id}/billing-account", set.BillingAccountEndpoint, decodeBillingAccount, encodeOK[patient.BillingAccount])
	Handle(r, o, http.MethodGet, "/patients/{id}/invoices", set.InvoicesEndpoint, decodePatientInvoices, encodePatientInvoices)
	handleBreakGlass(r, o, set)
	handleDuplicates(r, o, set)
	handleMerge(r, o, set)
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
	confirm, err := wire.ConfirmNotDuplicate(r.Header.Values(wire.HeaderConfirmNotDuplicate))
	if err != nil {
		return patient.CreateRequest{}, err
	}
	check, err := wire.DuplicateCheck(r.Header.Values(wire.HeaderPrefer))
	if err != nil {
		return patient.CreateRequest{}, err
	}
	req, err := DecodeJSON[patient.CreateRequest](r)
	req.IdempotencyKey = key
	req.ConfirmNotDuplicate = confirm
	req.DuplicateCheck = check
	return req, err
}

// setConfirmNotDuplicate is the client side of wire.ConfirmNotDuplicate.
func setConfirmNotDuplicate(h http.Header, ids []string) {
	if len(ids) > 0 {
		h.Set(wire.HeaderConfirmNotDuplicate, strings.Join(ids, ","))
	}
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
	confirm, err := wire.ConfirmNotDuplicate(r.Header.Values(wire.HeaderConfirmNotDuplicate))
	if err != nil {
		return patient.UpdateRequest{}, err
	}
	b, err := DecodeJSON[patient.UpdateBody](r)
	if err != nil {
		return patient.UpdateRequest{}, err
	}
	return b.Request(id, ifMatch, confirm), nil
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

// decodeListPatients reads GET /patients?q=&email=&dateOfBirth=&identifier=&family=&given=
// &phone=&gender=&dateOfBirthFrom=&dateOfBirthTo=&limit=&pageToken=.
func decodeListPatients(_ context.Context, r *http.Request) (patient.ListQuery, error) {
	q, err := ParseQuery(r, "q", "email", "dateOfBirth", "identifier", "family", "given", "phone", "gender",
		"dateOfBirthFrom", "dateOfBirthTo", "limit", "pageToken")
	if err != nil {
		return patient.ListQuery{}, err
	}
	lq := patient.ListQuery{
		Q: q.Get("q"), Email: q.Get("email"), DateOfBirth: q.Get("dateOfBirth"), Identifier: q.Get("identifier"),
		Family: q.Get("family"), Given: q.Get("given"), Phone: q.Get("phone"), Gender: q.Get("gender"),
		BornFrom: q.Get("dateOfBirthFrom"), BornTo: q.Get("dateOfBirthTo"),
		Limit: q.Int("limit", 0, 1, patient.MaxLimit), PageToken: q.Get("pageToken"),
	}
	return lq, q.Err()
}

// decodeAudit reads GET /audit?patientId=&actor=&from=&to=&limit= (decodeAuditQuery).
func decodeAudit(ctx context.Context, r *http.Request) (patient.AuditQuery, error) {
	q, err := decodeAuditQuery("patientId")(ctx, r)
	return patient.AuditQuery{PatientID: q.SubjectID, Actor: q.Actor, From: q.From, To: q.To, Limit: q.Limit}, err
}

// patientPath is the path of one patient as the client addresses it.
func patientPath(prefix, id string) string { return prefix + "/patients/" + url.PathEscape(id) }

// encodePatient writes a patient with its ETag (GET and PUT).
func encodePatient(_ context.Context, h http.Header, p patient.Patient) (int, any) {
	h.Set("ETag", wire.ETag(p.Version))
	return http.StatusOK, p
}

// encodeCreatedPatient writes 201 with the new record's Location and ETag.
func encodeCreatedPatient(prefix string) func(context.Context, http.Header, patient.Patient) (int, any) {
	return func(ctx context.Context, h http.Header, p patient.Patient) (int, any) {
		h.Set("Location", patientPath(prefix, p.ID))
		if p.PossibleDuplicates > 0 {
			h.Set(wire.HeaderPossibleDuplicates, strconv.Itoa(p.PossibleDuplicates))
		}
		_, body := encodePatient(ctx, h, p)
		return http.StatusCreated, body
	}
}

// TotalEstimatedHeader is "true" on a search page whose X-Total-Count is an estimate (more
// than patient.ExactCountLimit matches; docs/api.md).
const TotalEstimatedHeader = "X-Total-Count-Estimated"

// setTotal writes a page's X-Total-Count and, when it is an estimate, says so.
func setTotal(h http.Header, pg patient.Page) {
	h.Set("X-Total-Count", strconv.FormatInt(pg.Total, 10))
	if pg.TotalEstimated {
		h.Set(TotalEstimatedHeader, "true")
	}
}

// encodePatientPage writes a search page: the array (never null), X-Total-Count, and a Link
// to the next page that repeats the caller's filters.
func encodePatientPage(prefix string) func(context.Context, http.Header, patient.Page) (int, any) {
	return func(ctx context.Context, h http.Header, pg patient.Page) (int, any) {
		setTotal(h, pg)
		if pg.NextPageToken != "" {
			q := requestQuery(ctx)
			q.Set("pageToken", pg.NextPageToken)
			h.Set("Link", "<"+prefix+"/patients?"+q.Encode()+`>; rel="next"`)
		}
		return http.StatusOK, patient.Patients(nonNil(pg.Patients))
	}
}

func encodeHistory(_ context.Context, _ http.Header, r patient.HistoryResponse) (int, any) {
	return http.StatusOK, nonNil(r.Versions)
}

func encodeAudit(_ context.Context, _ http.Header, r patient.AuditResponse) (int, any) {
	return http.StatusOK, nonNil(r.Entries)
}

// NewPatientClient returns the patient endpoint set speaking HTTP to the patient API at
// baseURL (e.g. "http://127.0.0.1:4000", or "http://gateway:4004/api" through the gateway).
// The Set implements patient.Service; errors come back as the *errs.Error the server sent, so
// errors.Is(err, patient.ErrNotFound) holds.
func NewPatientClient(baseURL string, o ClientOptions) (patient.Set, error) {
	c, err := newClient(baseURL, o)
	if err != nil {
		return patient.Set{}, err
	}
	return duplicatesClient(c, mergeClient(c, breakGlassClient(c, patient.Set{
		CreateEndpoint: clientEndpoint(c, encodeCreateCall, decodeCreatedPatient),
		GetEndpoint: clientEndpoint(c, func(r patient.GetRequest) (call, error) {
			return patientCall(http.MethodGet, r.ID, "")
		}, decodeJSONResponse[patient.Patient]),
		ListEndpoint:      clientEndpoint(c, encodeSearchCall, decodePageResponse),
		AccessLogEndpoint: clientEndpoint(c, encodeAccessLogCall, decodeAccessLogResponse),
		UpdateEndpoint:    clientEndpoint(c, encodeUpdateCall, decodeJSONResponse[patient.Patient]),
		DeleteEndpoint: clientEndpoint(c, encodeDeleteCall, func(*http.Response) (patient.DeleteResponse, error) {
			return patient.DeleteResponse{}, nil
		}),
		HistoryEndpoint: clientEndpoint(c, func(r patient.HistoryRequest) (call, error) {
			return patientCall(http.MethodGet, r.ID, "/history")
		}, func(resp *http.Response) (patient.HistoryResponse, error) {
			v, err := decodeJSONResponse[[]patient.Version](resp)
			return patient.HistoryResponse{Versions: v}, err
		}),
		AuditEndpoint: clientEndpoint(c, encodeAuditCall, func(resp *http.Response) (patient.AuditResponse, error) {
			e, err := decodeJSONResponse[[]patient.AuditEntry](resp)
			return patient.AuditResponse{Entries: e}, err
		}),
		VerifyAuditEndpoint: clientEndpoint(c, verifyCall[patient.VerifyAuditRequest]("/audit/verify"), decodeJSONResponse[audit.Report]),
		BillingAccountEndpoint: clientEndpoint(c, func(r patient.BillingAccountRequest) (call, error) {
			return patientCall(http.MethodGet, r.ID, "/billing-account")
		}, decodeJSONResponse[patient.BillingAccount]),
		InvoicesEndpoint: clientEndpoint(c, func(r patient.InvoicesRequest) (call, error) {
			return patientCall(http.MethodGet, r.ID, "/invoices")
		}, func(resp *http.Response) (patient.InvoicesResponse, error) {
			v, err := decodeJSONResponse[[]patient.Invoice](resp)
			return patient.InvoicesResponse{Invoices: v}, err
		}),
	}))), nil
}

// decodeCreatedPatient reads a 201 with its X-Possible-Duplicates.
func decodeCreatedPatient(resp *http.Response) (patient.Patient, error) {
	p, err := decodeJSONResponse[patient.Patient](resp)
	p.PossibleDuplicates = wire.PossibleDuplicates(resp.Header.Get(wire.HeaderPossibleDuplicates))
	return p, err
}

func encodeCreateCall(r patient.CreateRequest) (call, error) {
	cl := call{method: http.MethodPost, path: "/patients", header: http.Header{}, body: r}
	if r.IdempotencyKey != "" {
		cl.header.Set("Idempotency-Key", r.IdempotencyKey)
	}
	setConfirmNotDuplicate(cl.header, r.ConfirmNotDuplicate)
	if r.DuplicateCheck != "" {
		cl.header.Set(wire.HeaderPrefer, "duplicate-check="+r.DuplicateCheck)
	}
	return cl, nil
}

func encodeUpdateCall(r patient.UpdateRequest) (call, error) {
	cl, err := patientCall(http.MethodPut, r.ID, "")
	if err != nil {
		return call{}, err
	}
	cl.body = patient.BodyOf(r)
	setIfMatch(cl.header, r.IfMatch)
	setConfirmNotDuplicate(cl.header, r.ConfirmNotDuplicate)
	return cl, nil
}

func encodeDeleteCall(r patient.DeleteRequest) (call, error) {
	cl, err := patientCall(http.MethodDelete, r.ID, "")
	if err != nil {
		return call{}, err
	}
	setIfMatch(cl.header, r.IfMatch)
	return cl, nil
}

func encodeListCall(q patient.ListQuery) (call, error) {
	v := url.Values{}
	setParam(v, "q", q.Q)
	setParam(v, "email", q.Email)
	setParam(v, "dateOfBirth", q.DateOfBirth)
	setParam(v, "identifier", q.Identifier)
	setParam(v, "family", q.Family)
	setParam(v, "given", q.Given)
	setParam(v, "phone", q.Phone)
	setParam(v, "gender", q.Gender)
	setParam(v, "dateOfBirthFrom", q.BornFrom)
	setParam(v, "dateOfBirthTo", q.BornTo)
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	setParam(v, "pageToken", q.PageToken)
	return call{method: http.MethodGet, path: "/patients", query: v}, nil
}

func encodeAuditCall(q patient.AuditQuery) (call, error) {
	return auditCall("/audit", "patientId")(audit.Query{SubjectID: q.PatientID, Actor: q.Actor, From: q.From, To: q.To, Limit: q.Limit})
}

// decodePageResponse reads a search page: the array, X-Total-Count, and the next page's token
// from the Link header.
func decodePageResponse(resp *http.Response) (patient.Page, error) {
	ps, err := decodeJSONResponse[[]patient.Patient](resp)
	if err != nil {
		return patient.Page{}, err
	}
	total, _ := strconv.ParseInt(resp.Header.Get("X-Total-Count"), 10, 64)
	return patient.Page{Patients: ps, Total: total, TotalEstimated: resp.Header.Get(TotalEstimatedHeader) == "true",
		NextPageToken: nextPageToken(resp.Header)}, nil
}

// patientCall addresses one patient (and a sub-resource).
func patientCall(method, id, sub string) (call, error) {
	return resourceCall(method, "/patients", id, sub)
}
