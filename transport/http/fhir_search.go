package httptransport

import (
	"context"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/go-kit/kit/endpoint"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/typed"
	"github.com/pms/pms/transport/wire"
)

// FHIR Patient search (docs/fhir.md, "Search") over the service's ListPatients: name (the
// service's q: a substring of the name, or of the email), email (exact), birthdate (an exact
// date: the eq prefix or none), _count and the page token of Bundle.link next. Unknown or
// unsupported parameters are ignored and reported in an OperationOutcome entry by default
// (lenient), refused (400) under Prefer: handling=strict, as FHIR says.

// fhirPageToken is the parameter of the next page's link (the service's opaque page token).
const fhirPageToken = "_pageToken"

// searchRequest is a search as the facade read it: the service's query, the parameters it
// applied (for the self and next links) and those it ignored, and whether it came by POST.
type searchRequest struct {
	Query   patient.ListQuery
	Applied url.Values
	Ignored []string
	Post    bool
}

// searchResponse is the service's page with the request it answers.
type searchResponse struct {
	Page patient.Page
	Req  searchRequest
}

// fhirSearch adapts the list endpoint to searchRequest and searchResponse.
func fhirSearch(list endpoint.Endpoint) endpoint.Endpoint {
	return func(ctx context.Context, req any) (any, error) {
		sr, ok := req.(searchRequest)
		if !ok {
			return list(ctx, req) // a rejected request: the guard answers first
		}
		pg, err := typed.Call[patient.Page](ctx, list, sr.Query)
		if err != nil {
			return nil, err
		}
		return searchResponse{Page: pg, Req: sr}, nil
	}
}

// decodeFHIRSearchGet reads GET /Patient?name=&email=&birthdate=&_count=&_pageToken=.
func decodeFHIRSearchGet(_ context.Context, r *http.Request) (searchRequest, error) {
	values, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return searchRequest{}, errs.Wrap(errs.InvalidArgument, "the query string is malformed", err)
	}
	return parseSearch(values, strictHandling(r.Header), false)
}

// decodeFHIRSearchPost reads POST /Patient/_search: the parameters form-encoded in the body,
// so that no patient data travels in the URL; the URL may hold only _format, _count and the
// page token (what the next link carries).
func decodeFHIRSearchPost(_ context.Context, r *http.Request) (searchRequest, error) {
	q, err := ParseQuery(r, append([]string{"_count", fhirPageToken}, fhirFormatParams...)...)
	if err != nil {
		return searchRequest{}, err
	}
	ct := r.Header.Values("Content-Type")
	if mt, _, err := mimeType(ct); err != nil || mt != "application/x-www-form-urlencoded" {
		return searchRequest{}, errs.New(errs.UnsupportedMediaType, "the search body must be application/x-www-form-urlencoded")
	}
	raw, err := wire.ReadBody(r.Body, r.ContentLength)
	if err != nil {
		return searchRequest{}, err
	}
	values, err := url.ParseQuery(string(raw))
	if err != nil {
		return searchRequest{}, errs.Wrap(errs.InvalidArgument, "the form body is malformed", err)
	}
	for _, k := range []string{"_count", fhirPageToken, "_format"} {
		if v := q.Get(k); v != "" {
			if _, dup := values[k]; dup {
				return searchRequest{}, errs.Invalid(map[string]string{k: "must be given at most once"})
			}
			values.Set(k, v)
		}
	}
	return parseSearch(values, strictHandling(r.Header), true)
}

func mimeType(values []string) (string, map[string]string, error) {
	if len(values) != 1 {
		return "", nil, errs.New(errs.UnsupportedMediaType, "one Content-Type")
	}
	return mime.ParseMediaType(values[0])
}

// strictHandling reports whether the caller sent Prefer: handling=strict.
func strictHandling(h http.Header) bool {
	for _, v := range h.Values("Prefer") {
		for _, p := range strings.Split(v, ",") {
			if k, val, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(strings.TrimSpace(k), "handling") {
				return strings.EqualFold(strings.Trim(strings.TrimSpace(val), `"`), "strict")
			}
		}
	}
	return false
}

// fhirSearchParams are the parameters a Patient search understands.
var fhirSearchParams = map[string]bool{"name": true, "name:contains": true, "email": true, "birthdate": true, "identifier": true,
	"family": true, "given": true, "phone": true, "gender": true,
	"_count": true, fhirPageToken: true, "_format": true, "_pretty": true}

// repeatable are the parameters that may be given more than once: their values are ANDed
// (birthdate=ge1990-01-01&birthdate=lt2000-01-01 is a range).
var repeatable = map[string]bool{"birthdate": true}

// parseSearch turns search parameters into the service's query.
func parseSearch(values url.Values, strict, post bool) (searchRequest, error) {
	sr := searchRequest{Applied: url.Values{}, Post: post}
	var bad errs.Fields
	unsupported := func(name, why string) {
		if strict {
			bad.Add(wire.EchoName(name), why)
		} else {
			sr.Ignored = append(sr.Ignored, wire.EchoName(name)+": "+why)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(values)) {
		vs := values[name]
		if !plainText(name) {
			unsupported(name, "unknown search parameter")
			continue
		}
		if !fhirSearchParams[name] {
			unsupported(name, "unknown or unsupported search parameter")
			continue
		}
		if len(vs) > 1 && !repeatable[name] {
			bad.Add(name, "must be given at most once")
			continue
		}
		for _, v := range vs {
			sr.parseParam(name, v, &bad, unsupported)
		}
	}
	return sr, bad.Err()
}

// parseParam applies one value of a known search parameter to sr.
func (sr *searchRequest) parseParam(name, v string, bad *errs.Fields, unsupported func(name, why string)) {
	if !plainText(v) {
		bad.Add(name, plainTextMessage)
		return
	}
	if v == "" {
		return // FHIR: an empty parameter is ignored
	}
	{
		switch name {
		case "name", "name:contains":
			sr.Query.Q = v
		case "email":
			sr.Query.Email = v
		case "identifier":
			sr.Query.Identifier = v // system|value; the service checks its form
		case "family":
			sr.Query.Family = v
		case "given":
			sr.Query.Given = v
		case "phone":
			sr.Query.Phone = v // the service checks its form
		case "gender":
			g := strings.TrimPrefix(v, genderSystem+"|")
			if !fhirGenders[g] {
				bad.Add(name, "must be one of male, female, other, unknown")
				return
			}
			sr.Query.Gender = g
		case "birthdate":
			if ok := sr.birthdate(v, bad, unsupported); !ok {
				return
			}
		case "_count":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				bad.Add(name, "must be a positive integer")
				return
			}
			sr.Query.Limit = min(n, patient.MaxLimit)
			v = strconv.Itoa(sr.Query.Limit)
		case fhirPageToken:
			sr.Query.PageToken = v
			return // the links set their own
		case "_pretty":
			return
		}
		sr.Applied.Add(name, v)
	}
}

// phiFree are the search parameters a link of a POST search may carry in its URL.
var phiFree = []string{"_count", "_format"}

// searchLink is the URL of a search page: a GET search repeats its parameters (the caller
// put them in the URL), a POST search's link carries only _count, _format and the token,
// and the caller POSTs its form again to it.
func searchLink(base string, sr searchRequest, token string) string {
	v := url.Values{}
	path := "/Patient"
	if sr.Post {
		path = "/Patient/_search"
		for _, k := range phiFree {
			if x := sr.Applied.Get(k); x != "" {
				v.Set(k, x)
			}
		}
	} else {
		for k, x := range sr.Applied {
			v[k] = x
		}
	}
	if token != "" {
		v.Set(fhirPageToken, token)
	}
	if len(v) == 0 {
		return base + path
	}
	return base + path + "?" + v.Encode()
}

// encodeFHIRSearchset writes the searchset Bundle: total when exact, self and next links,
// one match entry per patient, and an outcome entry naming what was ignored.
func encodeFHIRSearchset(ctx context.Context, _ http.Header, r searchResponse) (int, any, error) {
	base := baseOf(ctx)
	b := fhirBundle{ResourceType: "Bundle", Type: "searchset",
		Link: []fhirLink{{Relation: "self", URL: searchLink(base, r.Req, r.Req.Query.PageToken)}}}
	if !r.Page.TotalEstimated {
		t := r.Page.Total
		b.Total = &t
	}
	if r.Page.NextPageToken != "" {
		b.Link = append(b.Link, fhirLink{Relation: "next", URL: searchLink(base, r.Req, r.Page.NextPageToken)})
	}
	for _, p := range r.Page.Patients {
		b.Entry = append(b.Entry, fhirEntry{FullURL: base + "/Patient/" + url.PathEscape(p.ID), Resource: toFHIR(p),
			Search: &fhirEntrySearch{Mode: "match"}})
	}
	if len(r.Req.Ignored) > 0 {
		o := fhirOutcome{ResourceType: "OperationOutcome"}
		for _, why := range r.Req.Ignored {
			o.Issue = append(o.Issue, fhirIssue{Severity: "warning", Code: "not-supported", Diagnostics: "ignored " + why})
		}
		b.Entry = append(b.Entry, fhirEntry{Resource: o, Search: &fhirEntrySearch{Mode: "outcome"}})
	}
	return http.StatusOK, b, nil
}

// capabilityStatement is GET /metadata: what the facade serves.
func capabilityStatement(base string, withBilling bool) map[string]any {
	param := func(name, typ, doc string) map[string]any {
		return map[string]any{"name": name, "type": typ, "documentation": doc}
	}
	return map[string]any{
		"resourceType": "CapabilityStatement",
		"status":       "active",
		"date":         fhirCapabilityDate,
		"publisher":    "PMS",
		"kind":         "instance",
		"software":     map[string]any{"name": "PMS"},
		"implementation": map[string]any{
			"description": "PMS patient registry, FHIR R4 facade",
			"url":         base,
		},
		"fhirVersion": FHIRVersion,
		"format":      []string{"json", FHIRContentType},
		"rest": []any{map[string]any{
			"mode":          "server",
			"documentation": "Every interaction but metadata needs a bearer token from POST /auth/login; roles as on /api/patients.",
			"security": map[string]any{
				"service": []any{map[string]any{"coding": []any{map[string]any{
					"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "OAuth"}}}},
				"description": "Bearer JWT (EdDSA) issued by the PMS auth service",
			},
			"resource": append([]any{map[string]any{
				"type":    "Patient",
				"profile": "http://hl7.org/fhir/StructureDefinition/Patient",
				"interaction": []any{
					map[string]any{"code": "read"}, map[string]any{"code": "vread"}, map[string]any{"code": "update"},
					map[string]any{"code": "delete"}, map[string]any{"code": "history-instance"},
					map[string]any{"code": "create"}, map[string]any{"code": "search-type"},
				},
				"operation": []any{map[string]any{"name": "match", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-match",
					"documentation": "the duplicate matcher: candidates scoring 0.2 or more, best first, score in entry.search.score and the match-grade extension; onlyCertainMatches and count (1..50, default 10)"}},
				"versioning":        "versioned-update",
				"readHistory":       true,
				"updateCreate":      false,
				"conditionalCreate": false,
				"conditionalRead":   "not-supported",
				"conditionalUpdate": false,
				"conditionalDelete": "not-supported",
				"searchParam": []any{
					param("name", "string", "a substring of the patient's name (or email), case-insensitive; name:contains too"),
					param("email", "token", "the email, exactly (case-insensitive)"),
					param("identifier", "token", "system|value: a live patient's identifier, the MRN under "+MRNSystem+" included"),
					param("birthdate", "date", "YYYY, YYYY-MM or YYYY-MM-DD with prefix eq (or none), lt, le, gt or ge; repeat it for a range"),
					param("family", "string", "the start of the family name, case-insensitive"),
					param("given", "string", "the start of any given name, case-insensitive"),
					param("phone", "token", "the phone number: its digits and leading + (spaces, hyphens, dots, parentheses ignored)"),
					param("gender", "token", "male, female, other or unknown (system "+genderSystem+" optional)"),
				},
			}}, otherResources(withBilling)...),
		}},
	}
}
