package httptransport

import (
	"regexp"
	"time"

	"github.com/pms/pms/pkg/platform/errs"
)

// FHIR search parameter values the Patient search parses beyond plain text: gender tokens and
// birthdate with its prefixes and precisions (docs/fhir.md, "Search").

// genderSystem is FHIR's administrative-gender code system, the optional system of a gender
// token (gender=http://hl7.org/fhir/administrative-gender|female).
const genderSystem = "http://hl7.org/fhir/administrative-gender"

// fhirGenders are the administrative-gender codes.
var fhirGenders = map[string]bool{"male": true, "female": true, "other": true, "unknown": true}

// fhirDate is a FHIR date search value: an optional two-letter prefix, then a year, a month
// or a day.
var fhirDate = regexp.MustCompile(`^([a-z]{2})?([0-9]{4})(-[0-9]{2})?(-[0-9]{2})?$`)

// servedPrefixes are the date prefixes the service's inclusive bounds can express.
var servedPrefixes = map[string]bool{"eq": true, "lt": true, "le": true, "gt": true, "ge": true}

// knownPrefixes are FHIR's other prefixes: valid, not served (lenient: ignored, strict: 400).
var knownPrefixes = map[string]bool{"ne": true, "sa": true, "eb": true, "ap": true}

const dayLayout = "2006-01-02"

// birthdate applies one birthdate value to the query's bounds: the value's period (a year, a
// month or a day) is [start, end], and eq keeps start..end, ge from start, gt after end, le
// until end, lt before start. Several values narrow the range (AND); a range that ends up
// empty matches nothing. A malformed date or an unknown prefix is 400; ne, sa, eb and ap are
// FHIR's but not served (unsupported). It reports whether the value was applied.
func (sr *searchRequest) birthdate(v string, bad *errs.Fields, unsupported func(name, why string)) bool {
	m := fhirDate.FindStringSubmatch(v)
	if m == nil {
		bad.Add("birthdate", "must be a date YYYY, YYYY-MM or YYYY-MM-DD with an optional prefix eq, lt, le, gt or ge")
		return false
	}
	prefix := m[1]
	if prefix == "" {
		prefix = "eq"
	}
	if knownPrefixes[prefix] {
		unsupported("birthdate", "the prefix "+prefix+" is not supported (eq, lt, le, gt, ge are)")
		return false
	}
	if !servedPrefixes[prefix] {
		bad.Add("birthdate", "has an unknown prefix (eq, lt, le, gt, ge are supported)")
		return false
	}
	var start, end time.Time
	var err error
	switch text := v[len(m[1]):]; {
	case m[4] != "":
		start, err = time.Parse(dayLayout, text)
		end = start
	case m[3] != "":
		start, err = time.Parse("2006-01", text)
		end = start.AddDate(0, 1, -1)
	default:
		start, err = time.Parse("2006", text)
		end = start.AddDate(1, 0, -1)
	}
	if err != nil || start.Year() < 1 {
		bad.Add("birthdate", "must be a real date")
		return false
	}
	var from, to time.Time
	switch prefix {
	case "eq":
		from, to = start, end
	case "ge":
		from = start
	case "gt":
		from = end.AddDate(0, 0, 1)
	case "le":
		to = end
	case "lt":
		to = start.AddDate(0, 0, -1)
	}
	lo, hi := "", ""
	if !from.IsZero() {
		lo = from.Format(dayLayout)
	}
	if !to.IsZero() {
		hi = to.Format(dayLayout)
	}
	// Past the four-digit years (gt9999, lt0001): nothing is born there.
	if from.Year() > 9999 || !to.IsZero() && to.Year() < 1 {
		lo, hi = "9999-12-31", "0001-01-01"
	}
	if lo != "" && (sr.Query.BornFrom == "" || lo > sr.Query.BornFrom) {
		sr.Query.BornFrom = lo
	}
	if hi != "" && (sr.Query.BornTo == "" || hi < sr.Query.BornTo) {
		sr.Query.BornTo = hi
	}
	return true
}
