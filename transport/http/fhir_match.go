package httptransport

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/transport/wire"
)

// FHIR Patient/$match (docs/fhir.md, "$match"): the matching engine behind the duplicate
// check, asked with a Patient resource that need not be registered. The answer is a
// searchset Bundle of the candidates scoring at least patient.PossibleScore, best first, each
// with its score in entry.search.score and its grade in the match-grade extension.

// MatchGradeExtension is the URL of FHIR's match-grade extension on Bundle.entry.search.
const MatchGradeExtension = "http://hl7.org/fhir/StructureDefinition/match-grade"

// fhirParameters is the body of POST /Patient/$match.
type fhirParameters struct {
	ResourceType string          `json:"resourceType"`
	ID           string          `json:"id,omitempty"`
	Parameter    []fhirParameter `json:"parameter"`
}

// fhirParameter is one of $match's parameters: resource (a Patient), onlyCertainMatches
// (valueBoolean) or count (valueInteger).
type fhirParameter struct {
	Name         string          `json:"name"`
	Resource     json.RawMessage `json:"resource,omitempty"`
	ValueBoolean *bool           `json:"valueBoolean,omitempty"`
	ValueInteger *int            `json:"valueInteger,omitempty"`
}

// fhirExtension is an extension with a code value (match-grade).
type fhirExtension struct {
	URL       string `json:"url"`
	ValueCode string `json:"valueCode"`
}

// decodeFHIRMatch reads POST /Patient/$match: a Parameters resource with exactly one
// resource (a Patient), and at most one onlyCertainMatches and count.
func decodeFHIRMatch(_ context.Context, r *http.Request) (patient.DuplicatesRequest, error) {
	if _, err := ParseQuery(r, fhirFormatParams...); err != nil {
		return patient.DuplicatesRequest{}, err
	}
	if err := checkFHIRContentType(r.Header.Values("Content-Type")); err != nil {
		return patient.DuplicatesRequest{}, err
	}
	raw, err := wire.ReadBody(r.Body, r.ContentLength)
	if err != nil {
		return patient.DuplicatesRequest{}, err
	}
	params, err := wire.DecodeBody[fhirParameters](raw)
	if err != nil {
		return patient.DuplicatesRequest{}, err
	}
	if params.ResourceType != "Parameters" {
		return patient.DuplicatesRequest{}, errs.Invalid(map[string]string{"resourceType": "must be Parameters"})
	}
	req := patient.DuplicatesRequest{MinScore: patient.PossibleScore}
	seen := map[string]bool{}
	for i, p := range params.Parameter {
		field := "parameter[" + strconv.Itoa(i) + "]"
		if seen[p.Name] {
			return req, errs.Invalid(map[string]string{field: p.Name + " is given twice"})
		}
		seen[p.Name] = true
		switch {
		case p.Name == "resource" && len(p.Resource) > 0 && p.ValueBoolean == nil && p.ValueInteger == nil:
			res, err := wire.DecodeBody[fhirPatient](p.Resource)
			if err != nil {
				return req, err
			}
			f, err := fromFHIR(res)
			if err != nil {
				return req, err
			}
			req.Patient = &patient.CreateRequest{Name: f.Name, Family: f.Family, Given: f.Given, Gender: f.Gender, Phone: f.Phone,
				Identifiers: f.Identifiers, Email: f.Email, Address: f.Address, DateOfBirth: f.DateOfBirth}
		case p.Name == "onlyCertainMatches" && p.ValueBoolean != nil && p.ValueInteger == nil && len(p.Resource) == 0:
			req.OnlyCertain = *p.ValueBoolean
		case p.Name == "count" && p.ValueInteger != nil && p.ValueBoolean == nil && len(p.Resource) == 0:
			if *p.ValueInteger < 1 || *p.ValueInteger > patient.MaxDuplicateCount {
				return req, errs.Invalid(map[string]string{"count": "must be between 1 and " + strconv.Itoa(patient.MaxDuplicateCount)})
			}
			req.Count = *p.ValueInteger
		default:
			return req, errs.Invalid(map[string]string{field: "must be resource (a Patient), onlyCertainMatches (valueBoolean) or count (valueInteger)"})
		}
	}
	if req.Patient == nil {
		return req, errs.Invalid(map[string]string{"resource": "a Patient resource is required"})
	}
	return req, nil
}

// encodeFHIRMatch writes the candidates as a searchset Bundle, best first.
func encodeFHIRMatch(ctx context.Context, _ http.Header, r patient.DuplicatesResponse) (int, any, error) {
	base := baseOf(ctx)
	total := int64(len(r.Candidates))
	b := fhirBundle{ResourceType: "Bundle", Type: "searchset", Total: &total}
	for _, c := range r.Candidates {
		score := c.Score
		b.Entry = append(b.Entry, fhirEntry{FullURL: base + "/Patient/" + url.PathEscape(c.ID), Resource: toFHIR(c.Patient),
			Search: &fhirEntrySearch{Mode: "match", Score: &score,
				Extension: []fhirExtension{{URL: MatchGradeExtension, ValueCode: c.Grade}}}})
	}
	return http.StatusOK, b, nil
}

// duplicateHeaders reads a FHIR create's Prefer: duplicate-check=strict and
// X-Confirm-Not-Duplicate, as REST does (the same check, the same confirmation).
func duplicateHeaders(h http.Header) (string, []string, error) {
	check, err := wire.DuplicateCheck(h.Values(wire.HeaderPrefer))
	if err != nil {
		return "", nil, err
	}
	confirm, err := wire.ConfirmNotDuplicate(h.Values(wire.HeaderConfirmNotDuplicate))
	return check, confirm, err
}

// duplicateIssues are the OperationOutcome issues of a possible_duplicate refusal of a FHIR
// create: one "duplicate" issue per candidate naming it, its score and grade (the record itself
// is read with its own audited GET).
func duplicateIssues(body wire.ErrorBody) []fhirIssue {
	if body.Error != errs.PossibleDuplicate {
		return nil
	}
	var cs []struct {
		ID    string  `json:"id"`
		Score float64 `json:"score"`
		Grade string  `json:"grade"`
	}
	_ = json.Unmarshal(body.Candidates, &cs) // written by the service (or its gRPC relay)
	out := make([]fhirIssue, 0, len(cs))
	for _, c := range cs {
		out = append(out, fhirIssue{Severity: "error", Code: "duplicate",
			Diagnostics: "possible duplicate Patient/" + c.ID + " (score " + strconv.FormatFloat(c.Score, 'f', 2, 64) + ", " + c.Grade + ")"})
	}
	return out
}
