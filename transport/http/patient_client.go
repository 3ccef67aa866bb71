package httptransport

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/pms/pms/pkg/patient"
)

// NewPatientClient returns the patient endpoint set speaking HTTP to the patient API at
// baseURL (e.g. "http://127.0.0.1:4000", or "http://gateway:4004/api" through the gateway).
// The Set implements patient.Service; errors come back as the *errs.Error the server sent, so
// errors.Is(err, patient.ErrNotFound) holds.
func NewPatientClient(baseURL string, o ClientOptions) (patient.Set, error) {
	c, err := newClient(baseURL, o)
	if err != nil {
		return patient.Set{}, err
	}
	return patient.Set{
		CreateEndpoint: clientEndpoint(c, encodeCreateCall, decodeJSONResponse[patient.Patient]),
		GetEndpoint: clientEndpoint(c, func(r patient.GetRequest) (call, error) {
			return patientCall(http.MethodGet, r.ID, "")
		}, decodeJSONResponse[patient.Patient]),
		ListEndpoint:   clientEndpoint(c, encodeListCall, decodePageResponse),
		UpdateEndpoint: clientEndpoint(c, encodeUpdateCall, decodeJSONResponse[patient.Patient]),
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
		BillingAccountEndpoint: clientEndpoint(c, func(r patient.BillingAccountRequest) (call, error) {
			return patientCall(http.MethodGet, r.ID, "/billing-account")
		}, decodeJSONResponse[patient.BillingAccount]),
		InvoicesEndpoint: clientEndpoint(c, func(r patient.InvoicesRequest) (call, error) {
			return patientCall(http.MethodGet, r.ID, "/invoices")
		}, func(resp *http.Response) (patient.InvoicesResponse, error) {
			v, err := decodeJSONResponse[[]patient.Invoice](resp)
			return patient.InvoicesResponse{Invoices: v}, err
		}),
	}, nil
}

func encodeCreateCall(r patient.CreateRequest) (call, error) {
	cl := call{method: http.MethodPost, path: "/patients", header: http.Header{}, body: r}
	if r.IdempotencyKey != "" {
		cl.header.Set("Idempotency-Key", r.IdempotencyKey)
	}
	return cl, nil
}

func encodeUpdateCall(r patient.UpdateRequest) (call, error) {
	cl, err := patientCall(http.MethodPut, r.ID, "")
	if err != nil {
		return call{}, err
	}
	cl.body = updateBody{Name: r.Name, Email: r.Email, Address: r.Address, DateOfBirth: r.DateOfBirth, ReadOnlyFields: r.Unchanged}
	setIfMatch(cl.header, r.IfMatch)
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
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	setParam(v, "pageToken", q.PageToken)
	return call{method: http.MethodGet, path: "/patients", query: v}, nil
}

func encodeAuditCall(q patient.AuditQuery) (call, error) {
	v := url.Values{}
	setParam(v, "patientId", q.PatientID)
	setParam(v, "actor", q.Actor)
	if !q.From.IsZero() {
		v.Set("from", q.From.UTC().Format(time.RFC3339Nano))
	}
	if !q.To.IsZero() {
		v.Set("to", q.To.UTC().Format(time.RFC3339Nano))
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return call{method: http.MethodGet, path: "/audit", query: v}, nil
}

// decodePageResponse reads a search page: the array, X-Total-Count, and the next page's token
// from the Link header.
func decodePageResponse(resp *http.Response) (patient.Page, error) {
	ps, err := decodeJSONResponse[[]patient.Patient](resp)
	if err != nil {
		return patient.Page{}, err
	}
	total, _ := strconv.ParseInt(resp.Header.Get("X-Total-Count"), 10, 64)
	return patient.Page{Patients: ps, Total: total, NextPageToken: nextPageToken(resp.Header)}, nil
}

// patientCall addresses one patient (and a sub-resource).
func patientCall(method, id, sub string) (call, error) {
	return resourceCall(method, "/patients", id, sub)
}
