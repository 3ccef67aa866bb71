package main

import (
	"strings"

	"github.com/pms/pms/pkg/platform/errs"
)

// duplicateCases are the hostile requests of duplicate detection (issue 19 item 2): malformed
// Prefer headers on a registration, the strict check refusing a registration like p1's,
// GET /api/patients/{id}/duplicates by the wrong roles and with bad counts, and
// FHIR Patient/$match with bodies that are no Parameters, bad parameters, and the wrong roles.
func (w *attackWorld) duplicateCases() []hostile {
	var out []hostile
	body := w.patientBody("dup-never@example.org")
	for _, p := range []string{"duplicate-check=lenient", "duplicate-check", "duplicate-check=", "duplicate-check=strict, duplicate-check=off",
		"duplicate-check=strïct", strings.Repeat("a=b, ", 300) + "duplicate-check=strict"} {
		out = append(out, hostile{cat: catHeaders, name: "Prefer " + trimName(p), method: "POST", path: "/api/patients", token: w.clin, body: body,
			headers: []string{"Prefer", p}, want: []int{400}})
	}
	// p1 is "Hostile Test", 1980-01-01: a registration of the same name and date is refused
	// under the strict check, with or without a confirmation naming someone else.
	out = append(out,
		hostile{cat: catState, name: "strict check of p1 again", method: "POST", path: "/api/patients", token: w.clin, body: body,
			headers: []string{"Prefer", "duplicate-check=strict"}, want: []int{409}, check: wantWord(errs.PossibleDuplicate)},
		hostile{cat: catState, name: "strict check confirmed for an unknown id", method: "POST", path: "/api/patients", token: w.clin, body: body,
			headers: []string{"Prefer", "duplicate-check=strict", "X-Confirm-Not-Duplicate", "7b0c2f8e-9a51-4a7e-8a3e-0f1d2c3b4a59"}, want: []int{409},
			check: wantWord(errs.PossibleDuplicate)},
	)
	dup := "/api/patients/" + w.p1 + "/duplicates"
	for _, q := range []string{"count=0", "count=-1", "count=51", "count=abc", "count=99999999999999999999", "count=1&count=2", "count=1.5",
		"minScore=0.1", "unknown=1", "count=%00"} {
		out = append(out, hostile{cat: catQuery, name: "duplicates ?" + q, method: "GET", path: dup + "?" + q, token: w.clin, want: []int{400}})
	}
	out = append(out,
		hostile{cat: catRoles, name: "duplicates as billing", method: "GET", path: dup, token: w.bill, want: []int{403}},
		hostile{cat: catRoles, name: "duplicates as analyst", method: "GET", path: dup, token: w.analyst, want: []int{403}},
		hostile{cat: catJWT, name: "duplicates without a token", method: "GET", path: dup, want: []int{401}},
		hostile{cat: catRoutes, name: "POST duplicates", method: "POST", path: dup, token: w.clin, body: `{}`, want: []int{405}},
	)

	resource := `{"resourceType":"Patient","name":[{"family":"Test","given":["Hostile"]}],"birthDate":"1980-01-01"}`
	params := func(extra string) string {
		return `{"resourceType":"Parameters","parameter":[{"name":"resource","resource":` + resource + `}` + extra + `]}`
	}
	deep := strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000)
	for name, b := range map[string]string{
		"not Parameters":                resource,
		"no resourceType":               `{"parameter":[]}`,
		"no parameters":                 `{"resourceType":"Parameters"}`,
		"empty parameter list":          `{"resourceType":"Parameters","parameter":[]}`,
		"parameter not an array":        `{"resourceType":"Parameters","parameter":{"name":"resource"}}`,
		"resource twice":                params(`,{"name":"resource","resource":` + resource + `}`),
		"resource an Observation":       `{"resourceType":"Parameters","parameter":[{"name":"resource","resource":{"resourceType":"Observation","status":"final"}}]}`,
		"resource a string":             `{"resourceType":"Parameters","parameter":[{"name":"resource","resource":"Patient"}]}`,
		"resource with valueBoolean":    `{"resourceType":"Parameters","parameter":[{"name":"resource","valueBoolean":true}]}`,
		"empty Patient":                 `{"resourceType":"Parameters","parameter":[{"name":"resource","resource":{"resourceType":"Patient"}}]}`,
		"bad birthDate":                 strings.Replace(params(""), "1980-01-01", "1980-02-30", 1),
		"unknown Patient element":       strings.Replace(params(""), `"birthDate"`, `"nickname":"x","birthDate"`, 1),
		"count 0":                       params(`,{"name":"count","valueInteger":0}`),
		"count 51":                      params(`,{"name":"count","valueInteger":51}`),
		"count huge":                    params(`,{"name":"count","valueInteger":99999999999999999999}`),
		"count a string":                params(`,{"name":"count","valueInteger":"3"}`),
		"count a float":                 params(`,{"name":"count","valueInteger":1.5}`),
		"count twice":                   params(`,{"name":"count","valueInteger":1},{"name":"count","valueInteger":2}`),
		"onlyCertainMatches a string":   params(`,{"name":"onlyCertainMatches","valueBoolean":"yes"}`),
		"onlyCertainMatches as integer": params(`,{"name":"onlyCertainMatches","valueInteger":1}`),
		"unknown parameter":             params(`,{"name":"limit","valueInteger":3}`),
		"unknown value type":            params(`,{"name":"count","valueString":"3"}`),
		"parameter without name":        params(`,{"valueInteger":3}`),
		"NUL in family":                 strings.Replace(params(""), `"Test"`, `"Te\u0000st"`, 1),
		"invalid UTF-8":                 strings.Replace(params(""), "Hostile", "Host\xffile", 1),
		"deeply nested":                 `{"resourceType":"Parameters","parameter":[{"name":"resource","resource":` + deep + `}]}`,
		"truncated":                     params("")[:70],
		"invalid JSON":                  `{"resourceType":"Parameters",`,
		"two objects":                   params("") + params(""),
		"huge family":                   strings.Replace(params(""), `"Test"`, `"`+strings.Repeat("T", 2<<20)+`"`, 1),
	} {
		out = append(out, hostile{cat: catMalformed, name: "$match " + name, method: "POST", path: "/fhir/Patient/$match", token: w.clin, body: b,
			ctype: "application/fhir+json"})
	}
	ok := params("")
	out = append(out,
		hostile{cat: catRoles, name: "$match as billing", method: "POST", path: "/fhir/Patient/$match", token: w.bill, body: ok, ctype: "application/fhir+json", want: []int{403}},
		hostile{cat: catRoles, name: "$match as analyst", method: "POST", path: "/fhir/Patient/$match", token: w.analyst, body: ok, ctype: "application/fhir+json", want: []int{403}},
		hostile{cat: catJWT, name: "$match without a token", method: "POST", path: "/fhir/Patient/$match", body: ok, ctype: "application/fhir+json", want: []int{401}},
		hostile{cat: catHeaders, name: "$match as text/plain", method: "POST", path: "/fhir/Patient/$match", token: w.clin, body: ok, ctype: "text/plain", want: []int{415}},
		hostile{cat: catQuery, name: "$match with a query", method: "POST", path: "/fhir/Patient/$match?count=3", token: w.clin, body: ok, ctype: "application/fhir+json", want: []int{400}},
		hostile{cat: catRoutes, name: "GET $match", method: "GET", path: "/fhir/Patient/$match", token: w.clin, want: []int{400}},
	)
	return out
}
