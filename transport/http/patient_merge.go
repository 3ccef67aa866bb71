package httptransport

import (
	"context"
	"net/http"

	"github.com/gorilla/mux"
	"github.com/pms/pms/pkg/patient"
)

// handleMerge adds the merge routes of API.md ("Merge and unmerge") to r.
func handleMerge(r *mux.Router, o Options, set patient.Set) {
	Handle(r, o, http.MethodPost, "/patients/{id}/merge", set.MergeEndpoint, decodeMerge, encodeOK[patient.MergeRecord])
	Handle(r, o, http.MethodPost, "/patients/{id}/unmerge", set.UnmergeEndpoint, decodeUnmerge, encodeOK[patient.MergeRecord])
}

// mergeBody is the body of POST /patients/{survivor}/merge.
type mergeBody struct {
	DuplicateID string `json:"duplicateId"`
	Reason      string `json:"reason"`
}

// decodeMerge reads POST /patients/{survivor}/merge {"duplicateId": ..., "reason": ...}.
func decodeMerge(_ context.Context, r *http.Request) (patient.MergeRequest, error) {
	id, err := pathID(r)
	if err != nil {
		return patient.MergeRequest{}, err
	}
	if err := noQuery(r); err != nil {
		return patient.MergeRequest{}, err
	}
	b, err := DecodeJSON[mergeBody](r)
	return patient.MergeRequest{SurvivorID: id, DuplicateID: b.DuplicateID, Reason: b.Reason}, err
}

// decodeUnmerge reads POST /patients/{id}/unmerge {"reason": ...}.
func decodeUnmerge(_ context.Context, r *http.Request) (patient.UnmergeRequest, error) {
	id, err := pathID(r)
	if err != nil {
		return patient.UnmergeRequest{}, err
	}
	if err := noQuery(r); err != nil {
		return patient.UnmergeRequest{}, err
	}
	b, err := DecodeJSON[reasonBody](r)
	return patient.UnmergeRequest{ID: id, Reason: b.Reason}, err
}

// mergedRedirect is the body of the 308 that answers the GET of a merged record: ids only,
// so the duplicate's data is shown nowhere but in its history.
type mergedRedirect struct {
	ID         string `json:"id"`
	MergedInto string `json:"mergedInto"`
}

// encodeGotPatient writes the patient of a GET with its ETag, or, for a merged record, 308
// Permanent Redirect to its survivor (under the prefix the caller addressed, /api through
// the gateway): a client that follows it reads the survivor with the same method.
func encodeGotPatient(prefix string) func(context.Context, http.Header, patient.Patient) (int, any) {
	return func(ctx context.Context, h http.Header, p patient.Patient) (int, any) {
		if p.MergedInto != "" {
			h.Set("Location", patientPath(prefix, p.MergedInto))
			return http.StatusPermanentRedirect, mergedRedirect{ID: p.ID, MergedInto: p.MergedInto}
		}
		return encodePatient(ctx, h, p)
	}
}

// mergeClient adds the merge endpoints of the HTTP client to set.
func mergeClient(c *client, set patient.Set) patient.Set {
	set.MergeEndpoint = clientEndpoint(c, func(r patient.MergeRequest) (call, error) {
		cl, err := patientCall(http.MethodPost, r.SurvivorID, "/merge")
		cl.body = mergeBody{DuplicateID: r.DuplicateID, Reason: r.Reason}
		return cl, err
	}, decodeJSONResponse[patient.MergeRecord])
	set.UnmergeEndpoint = clientEndpoint(c, func(r patient.UnmergeRequest) (call, error) {
		cl, err := patientCall(http.MethodPost, r.ID, "/unmerge")
		cl.body = reasonBody{Reason: r.Reason}
		return cl, err
	}, decodeJSONResponse[patient.MergeRecord])
	return set
}
