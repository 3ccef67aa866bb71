package httptransport

import (
	"context"
	"net/http"

	"github.com/gorilla/mux"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/audit"
)

// handleBreakGlass adds the break-glass routes of API.md ("Break-glass") to r: setting a
// record's confidentiality, the emergency grant, and the review of grants.
func handleBreakGlass(r *mux.Router, o Options, set patient.Set) {
	Handle(r, o, http.MethodPut, "/patients/{id}/confidentiality", set.ConfidentialityEndpoint, decodeConfidentiality, encodePatient)
	Handle(r, o, http.MethodPost, "/patients/{id}/break-glass", set.BreakGlassEndpoint, decodeBreakGlass, encodeGrant)
	Handle(r, o, http.MethodGet, "/audit/break-glass", set.BreakGlassGrantsEndpoint, decodeGrantQuery, encodeGrants)
	Handle(r, o, http.MethodPost, "/patients/{id}/erase", set.EraseEndpoint, decodeErase, encodeErasure)
}

// decodeErase reads POST /patients/{id}/erase {"reason": ...}.
func decodeErase(_ context.Context, r *http.Request) (patient.EraseRequest, error) {
	id, err := pathID(r)
	if err != nil {
		return patient.EraseRequest{}, err
	}
	if err := noQuery(r); err != nil {
		return patient.EraseRequest{}, err
	}
	b, err := DecodeJSON[reasonBody](r)
	return patient.EraseRequest{ID: id, Reason: b.Reason}, err
}

// encodeErasure writes 200 with the erase record.
func encodeErasure(_ context.Context, _ http.Header, e patient.Erasure) (int, any) {
	return http.StatusOK, e
}

// confidentialityBody is the body of PUT /patients/{id}/confidentiality.
type confidentialityBody struct {
	Confidentiality string `json:"confidentiality"`
}

// reasonBody is the body of POST /patients/{id}/break-glass and POST /patients/{id}/erase.
type reasonBody struct {
	Reason string `json:"reason"`
}

// decodeConfidentiality reads PUT /patients/{id}/confidentiality {"confidentiality": ...}.
func decodeConfidentiality(_ context.Context, r *http.Request) (patient.ConfidentialityRequest, error) {
	id, err := pathID(r)
	if err != nil {
		return patient.ConfidentialityRequest{}, err
	}
	if err := noQuery(r); err != nil {
		return patient.ConfidentialityRequest{}, err
	}
	b, err := DecodeJSON[confidentialityBody](r)
	return patient.ConfidentialityRequest{ID: id, Confidentiality: b.Confidentiality}, err
}

// decodeBreakGlass reads POST /patients/{id}/break-glass {"reason": ...}.
func decodeBreakGlass(_ context.Context, r *http.Request) (patient.BreakGlassRequest, error) {
	id, err := pathID(r)
	if err != nil {
		return patient.BreakGlassRequest{}, err
	}
	if err := noQuery(r); err != nil {
		return patient.BreakGlassRequest{}, err
	}
	b, err := DecodeJSON[reasonBody](r)
	return patient.BreakGlassRequest{ID: id, Reason: b.Reason}, err
}

// decodeGrantQuery reads GET /audit/break-glass?patientId=&actor=&from=&to=&limit=, the
// audit log's query (actor is the grant's holder, from and to bound its creation).
func decodeGrantQuery(ctx context.Context, r *http.Request) (patient.GrantQuery, error) {
	q, err := decodeAuditQuery("patientId")(ctx, r)
	return patient.GrantQuery{PatientID: q.SubjectID, UserID: q.Actor, From: q.From, To: q.To, Limit: q.Limit}, err
}

// encodeGrant writes 201 with the new grant.
func encodeGrant(_ context.Context, _ http.Header, g patient.Grant) (int, any) {
	return http.StatusCreated, g
}

func encodeGrants(_ context.Context, _ http.Header, r patient.GrantsResponse) (int, any) {
	return http.StatusOK, nonNil(r.Grants)
}

// breakGlassClient adds the break-glass endpoints of the HTTP client to set.
func breakGlassClient(c *client, set patient.Set) patient.Set {
	set.ConfidentialityEndpoint = clientEndpoint(c, func(r patient.ConfidentialityRequest) (call, error) {
		cl, err := patientCall(http.MethodPut, r.ID, "/confidentiality")
		cl.body = confidentialityBody{Confidentiality: r.Confidentiality}
		return cl, err
	}, decodeJSONResponse[patient.Patient])
	set.BreakGlassEndpoint = clientEndpoint(c, func(r patient.BreakGlassRequest) (call, error) {
		cl, err := patientCall(http.MethodPost, r.ID, "/break-glass")
		cl.body = reasonBody{Reason: r.Reason}
		return cl, err
	}, decodeJSONResponse[patient.Grant])
	set.BreakGlassGrantsEndpoint = clientEndpoint(c, func(q patient.GrantQuery) (call, error) {
		return auditCall("/audit/break-glass", "patientId")(audit.Query{SubjectID: q.PatientID, Actor: q.UserID, From: q.From, To: q.To, Limit: q.Limit})
	}, func(resp *http.Response) (patient.GrantsResponse, error) {
		g, err := decodeJSONResponse[[]patient.GrantReview](resp)
		return patient.GrantsResponse{Grants: g}, err
	})
	set.EraseEndpoint = clientEndpoint(c, func(r patient.EraseRequest) (call, error) {
		cl, err := patientCall(http.MethodPost, r.ID, "/erase")
		cl.body = reasonBody{Reason: r.Reason}
		return cl, err
	}, decodeJSONResponse[patient.Erasure])
	return set
}
