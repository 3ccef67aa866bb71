package httptransport

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/gorilla/mux"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/errs"
)

// handleDuplicates adds GET /patients/{id}/duplicates (docs/api.md, "Duplicates"): the scored
// possible duplicates of a record.
func handleDuplicates(r *mux.Router, o Options, set patient.Set) {
	Handle(r, o, http.MethodGet, "/patients/{id}/duplicates", set.DuplicatesEndpoint, decodeDuplicates, encodeDuplicates)
}

// decodeDuplicates reads GET /patients/{id}/duplicates?count=.
func decodeDuplicates(_ context.Context, r *http.Request) (patient.DuplicatesRequest, error) {
	id, err := pathID(r)
	if err != nil {
		return patient.DuplicatesRequest{}, err
	}
	q, err := ParseQuery(r, "count")
	if err != nil {
		return patient.DuplicatesRequest{}, err
	}
	return patient.DuplicatesRequest{ID: id, Count: q.Int("count", 0, 1, patient.MaxDuplicateCount)}, q.Err()
}

// encodeDuplicates writes the candidates, best first (never null).
func encodeDuplicates(_ context.Context, _ http.Header, r patient.DuplicatesResponse) (int, any) {
	return http.StatusOK, nonNil(r.Candidates)
}

// duplicatesClient is the client side of handleDuplicates. Demographics (FHIR $match) have
// no REST route: the gateway reaches the patient service over gRPC.
func duplicatesClient(c *client, set patient.Set) patient.Set {
	set.DuplicatesEndpoint = clientEndpoint(c, func(r patient.DuplicatesRequest) (call, error) {
		if r.ID == "" {
			return call{}, errs.Invalid(map[string]string{"id": "matching demographics is not offered over REST; use FHIR Patient/$match"})
		}
		cl, err := patientCall(http.MethodGet, r.ID, "/duplicates")
		if r.Count != 0 {
			cl.query = url.Values{"count": {strconv.Itoa(r.Count)}}
		}
		return cl, err
	}, func(resp *http.Response) (patient.DuplicatesResponse, error) {
		cs, err := decodeJSONResponse[[]patient.Candidate](resp)
		return patient.DuplicatesResponse{Candidates: cs}, err
	})
	return set
}
