package httptransport

import (
	"context"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/transport/wire"
)

// The searches of the resources other than Patient (Account, Invoice, AuditEvent): each is a
// search by patient, so they share the parsing of the patient reference, _count, the page
// token, the lenient/strict handling of what they do not know, and the Bundle they answer.

// resourceSearch is a search of one resource type by patient as the facade read it.
type resourceSearch struct {
	Type      string // Account, Invoice, AuditEvent
	PatientID string
	Status    string // Invoice: the billing status asked for
	Count     int
	PageToken string
	Applied   url.Values
	Ignored   []string
}

// patientRefParams are the parameters that name the patient, per resource type.
var patientRefParams = map[string][]string{
	"Account":    {"patient", "subject"},
	"Invoice":    {"patient", "subject"},
	"AuditEvent": {"patient", "entity"},
}

// paramResult is what a resource type's own parameter parser made of a parameter.
type paramResult int

const (
	paramUnknown paramResult = iota // not one of the type's parameters
	paramApplied                    // applied: it goes into the links
	paramDropped                    // refused (bad) or ignored (unsupported): not in the links
)

// extraParams parses the parameters of a resource type beyond the patient and paging ones.
type extraParams func(rs *resourceSearch, name, v string, bad *errs.Fields, unsupported func(name, why string)) paramResult

// parseResourceSearch reads GET /{Type}?patient=Patient/{id}&_count=&_pageToken= (and the
// type's other parameters, handled by extra): exactly one patient reference is required.
func parseResourceSearch(r *http.Request, typ string, extra extraParams) (resourceSearch, error) {
	values, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return resourceSearch{}, errs.Wrap(errs.InvalidArgument, "the query string is malformed", err)
	}
	strict := strictHandling(r.Header)
	rs := resourceSearch{Type: typ, Applied: url.Values{}}
	var bad errs.Fields
	unsupported := func(name, why string) {
		if strict {
			bad.Add(wire.EchoName(name), why)
		} else {
			rs.Ignored = append(rs.Ignored, wire.EchoName(name)+": "+why)
		}
	}
	refs := map[string]bool{}
	for _, p := range patientRefParams[typ] {
		refs[p] = true
	}
	for _, name := range slices.Sorted(maps.Keys(values)) {
		vs := values[name]
		if !plainText(name) {
			unsupported(name, "unknown search parameter")
			continue
		}
		if len(vs) > 1 {
			bad.Add(name, "must be given at most once")
			continue
		}
		v := vs[0]
		if !plainText(v) {
			bad.Add(name, plainTextMessage)
			continue
		}
		if v == "" {
			continue // FHIR: an empty parameter is ignored
		}
		switch {
		case refs[name]:
			id, ok := patientReference(v)
			if !ok {
				bad.Add(name, "must reference a patient: Patient/{id}")
				continue
			}
			if rs.PatientID != "" && rs.PatientID != id {
				bad.Add(name, "names another patient than "+strings.Join(patientRefParams[typ], " or "))
				continue
			}
			rs.PatientID = id
		case name == "_count":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				bad.Add(name, "must be a positive integer")
				continue
			}
			rs.Count = min(n, 500)
			v = strconv.Itoa(rs.Count)
		case name == fhirPageToken:
			rs.PageToken = v
			continue // the links set their own
		case name == "_format":
		case name == "_pretty":
			continue
		default:
			res := paramUnknown
			if extra != nil {
				res = extra(&rs, name, v, &bad, unsupported)
			}
			if res == paramUnknown {
				unsupported(name, "unknown or unsupported search parameter")
			}
			if res != paramApplied {
				continue
			}
		}
		rs.Applied.Set(name, v)
	}
	if rs.PatientID == "" && bad.Err() == nil {
		bad.Add(patientRefParams[typ][0], "is required: the "+typ+" search is by patient (Patient/{id})")
	}
	return rs, bad.Err()
}

// patientReference reads a reference to a patient: Patient/{id}, an absolute URL ending in
// it, or a bare id. The id is the service's to check.
func patientReference(v string) (string, bool) {
	if i := strings.LastIndex(v, "Patient/"); i >= 0 {
		if i > 0 && v[i-1] != '/' {
			return "", false
		}
		v = v[i+len("Patient/"):]
	} else if strings.Contains(v, "/") {
		return "", false // a reference to another resource type
	}
	if v == "" || strings.ContainsAny(v, "/?#") {
		return "", false
	}
	return v, true
}

// resourceLink is the URL of a page of a resource search: its parameters and the token.
func resourceLink(base string, rs resourceSearch, token string) string {
	v := url.Values{}
	for k, x := range rs.Applied {
		v[k] = x
	}
	if token != "" {
		v.Set(fhirPageToken, token)
	}
	if len(v) == 0 {
		return base + "/" + rs.Type
	}
	return base + "/" + rs.Type + "?" + v.Encode()
}

// resourceBundle is the searchset of a resource search: self and next links, one match
// entry per resource (fullUrl when it can be read), the outcome of what was ignored, and the
// total when it is known (a single page).
func resourceBundle(ctx context.Context, rs resourceSearch, next string, ids []string, resources []any, readable bool) fhirBundle {
	base := baseOf(ctx)
	b := fhirBundle{ResourceType: "Bundle", Type: "searchset",
		Link: []fhirLink{{Relation: "self", URL: resourceLink(base, rs, rs.PageToken)}}}
	if next != "" {
		b.Link = append(b.Link, fhirLink{Relation: "next", URL: resourceLink(base, rs, next)})
	} else if rs.PageToken == "" {
		n := int64(len(resources))
		b.Total = &n
	}
	for i, res := range resources {
		e := fhirEntry{Resource: res, Search: &fhirEntrySearch{Mode: "match"}}
		if readable {
			e.FullURL = base + "/" + rs.Type + "/" + url.PathEscape(ids[i])
		}
		b.Entry = append(b.Entry, e)
	}
	if len(rs.Ignored) > 0 {
		o := fhirOutcome{ResourceType: "OperationOutcome"}
		for _, why := range rs.Ignored {
			o.Issue = append(o.Issue, fhirIssue{Severity: "warning", Code: "not-supported", Diagnostics: "ignored " + why})
		}
		b.Entry = append(b.Entry, fhirEntry{Resource: o, Search: &fhirEntrySearch{Mode: "outcome"}})
	}
	return b
}

// fhirReference is a FHIR Reference.
type fhirReference struct {
	Reference  string          `json:"reference,omitempty"`
	Identifier *fhirIdentifier `json:"identifier,omitempty"`
	Display    string          `json:"display,omitempty"`
}

// fhirCodeableConcept is a FHIR CodeableConcept.
type fhirCodeableConcept struct {
	Coding []fhirCoding `json:"coding,omitempty"`
	Text   string       `json:"text,omitempty"`
}

// otherResources are the capability statement's entries of the resources beside Patient.
func otherResources(withBilling bool) []any {
	param := func(name, typ, doc string) map[string]any {
		return map[string]any{"name": name, "type": typ, "documentation": doc}
	}
	byPatient := func(name string) map[string]any {
		return param(name, "reference", "Patient/{id}: the patient's resources (required)")
	}
	var out []any
	if withBilling {
		out = append(out,
			map[string]any{
				"type": "Account", "profile": "http://hl7.org/fhir/StructureDefinition/Account",
				"documentation": "A patient's billing account (one per patient); roles as on /api/billing",
				"interaction":   []any{map[string]any{"code": "read"}, map[string]any{"code": "search-type"}},
				"searchParam":   []any{byPatient("patient"), byPatient("subject")},
			},
			map[string]any{
				"type": "Invoice", "profile": "http://hl7.org/fhir/StructureDefinition/Invoice",
				"documentation": "Invoices (status: draft → draft, open → issued, paid → balanced, void → cancelled); roles as on /api/billing",
				"interaction":   []any{map[string]any{"code": "read"}, map[string]any{"code": "search-type"}},
				"searchParam": []any{byPatient("patient"), byPatient("subject"),
					param("status", "token", "draft, issued, balanced or cancelled")},
			})
	}
	return append(out, map[string]any{
		"type": "AuditEvent", "profile": "http://hl7.org/fhir/StructureDefinition/AuditEvent",
		"documentation": "The accesses to one patient's record (its access log), newest first; admin and privacy roles",
		"interaction":   []any{map[string]any{"code": "search-type"}},
		"searchParam":   []any{byPatient("patient"), byPatient("entity")},
	})
}
