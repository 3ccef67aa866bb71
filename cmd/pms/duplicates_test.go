package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// adaJSON and adaAgainJSON are one woman registered twice: the second time with her day and
// month swapped, a nickname-free given name and her phone in national format.
const (
	adaJSON      = `{"family":"Lovelace","given":["Augusta","Ada"],"gender":"female","phone":"+44 20 7946 0958","email":"ada@example.org","address":"12 St James's Square, London","dateOfBirth":"1915-12-10"}`
	adaAgainJSON = `{"family":"Lovelace","given":["Ada"],"gender":"female","phone":"020 7946 0958","address":"12 St James's Square, London","dateOfBirth":"1915-10-12"}`
)

// duplicateCandidates reads a 409 possible_duplicate's candidates.
func duplicateCandidates(t *testing.T, b []byte) []struct {
	ID      string          `json:"id"`
	Score   float64         `json:"score"`
	Reasons json.RawMessage `json:"reasons"`
} {
	t.Helper()
	var body struct {
		Error      string `json:"error"`
		Candidates []struct {
			ID      string          `json:"id"`
			Score   float64         `json:"score"`
			Reasons json.RawMessage `json:"reasons"`
		} `json:"candidates"`
	}
	if err := json.Unmarshal(b, &body); err != nil || body.Error != "possible_duplicate" {
		t.Fatalf("not a possible_duplicate: %s", b)
	}
	return body.Candidates
}

// TestDuplicatesJourney is issue 19 item 2 through the gateway (REST → gRPC → the patient
// service) on PostgreSQL: a registration of someone already registered succeeds under the
// default policy with X-Possible-Duplicates; with Prefer: duplicate-check=strict it is 409
// possible_duplicate with the scored candidates, until X-Confirm-Not-Duplicate names them;
// malformed Prefer and confirmation headers are 400; GET /api/patients/{id}/duplicates lists
// the other registrations to clinicians and refuses billing staff; FHIR Patient/$match
// answers a searchset with scores and match grades, valid against the FHIR R4 schema.
func TestDuplicatesJourney(t *testing.T) {
	c, tok, a := fhirWorld(t)
	api := "http://" + a["gateway/http"] + "/api/patients"
	clin := tok["clinician"]
	create := func(body string, headers ...string) (int, []byte, string) {
		t.Helper()
		resp, b := call(t, "POST", api, clin, body, headers...)
		var p struct{ ID string }
		_ = json.Unmarshal(b, &p)
		return resp.StatusCode, b, resp.Header.Get("X-Possible-Duplicates") + "|" + p.ID
	}
	st, b, first := create(adaJSON)
	if st != 201 || !strings.HasPrefix(first, "|") {
		t.Fatalf("first registration: %d %s (%s)", st, b, first)
	}
	firstID := strings.TrimPrefix(first, "|")
	st, b, warned := create(adaAgainJSON)
	if st != 201 || !strings.HasPrefix(warned, "1|") {
		t.Fatalf("warn: %d %s, X-Possible-Duplicates|id = %s", st, b, warned)
	}
	secondID := strings.TrimPrefix(warned, "1|")

	st, b, _ = create(adaAgainJSON, "Prefer", "duplicate-check=strict")
	cs := duplicateCandidates(t, b)
	if st != 409 || len(cs) != 2 || cs[0].Score < 0.5 || len(cs[0].Reasons) < 3 {
		t.Fatalf("strict: %d %s", st, b)
	}
	for _, h := range [][]string{
		{"Prefer", "duplicate-check=maybe"}, {"Prefer", strings.Repeat("x=y,", 300)},
		{"X-Confirm-Not-Duplicate", "not-a-uuid"}, {"X-Confirm-Not-Duplicate", strings.Repeat(firstID+",", 60)},
	} {
		if st, b, _ := create(adaAgainJSON, append([]string{"Prefer", "duplicate-check=strict"}, h...)...); st != 400 || !strings.Contains(string(b), `"invalid_argument"`) {
			t.Fatalf("%s: %s → %d %s", h[0], h[1][:min(len(h[1]), 40)], st, b)
		}
	}
	if st, b, _ := create(adaAgainJSON, "Prefer", "duplicate-check=strict", "X-Confirm-Not-Duplicate", firstID); st != 409 {
		t.Fatalf("half confirmed: %d %s", st, b)
	}
	st, b, third := create(adaAgainJSON, "Prefer", "duplicate-check=strict", "X-Confirm-Not-Duplicate", firstID+", "+secondID)
	if st != 201 || !strings.HasPrefix(third, "2|") {
		t.Fatalf("confirmed: %d %s (%s)", st, b, third)
	}

	resp, b := call(t, "GET", api+"/"+firstID+"/duplicates", clin, "")
	var dups []struct {
		ID      string
		Score   float64
		Grade   string
		Patient struct{ Family string }
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &dups) != nil || len(dups) != 2 || dups[0].Patient.Family != "Lovelace" || dups[0].Grade == "" {
		t.Fatalf("duplicates: %d %s", resp.StatusCode, b)
	}
	if resp, b := call(t, "GET", api+"/"+firstID+"/duplicates?count=1", clin, ""); resp.StatusCode != 200 || strings.Count(string(b), `"score"`) != 1 {
		t.Fatalf("count=1: %d %s", resp.StatusCode, b)
	}
	for _, q := range []string{"?count=0", "?count=x", "?score=1"} {
		if resp, b := call(t, "GET", api+"/"+firstID+"/duplicates"+q, clin, ""); resp.StatusCode != 400 {
			t.Fatalf("%s: %d %s", q, resp.StatusCode, b)
		}
	}
	if resp, _ := call(t, "GET", api+"/"+firstID+"/duplicates", tok["billing"], ""); resp.StatusCode != 403 {
		t.Fatalf("billing staff read duplicates: %d", resp.StatusCode)
	}

	// FHIR $match.
	match := func(params string) string {
		return `{"resourceType":"Parameters","parameter":[{"name":"resource","resource":{"resourceType":"Patient","name":[{"family":"Lovelace","given":["Ada"]}],"gender":"female","birthDate":"1915-10-12"}}` + params + `]}`
	}
	m := c.do("POST", "/Patient/$match", clin, match("")).want(t, "$match", 200)
	es := m.entries("match")
	if m.res["type"] != "searchset" || len(es) != 3 {
		t.Fatalf("$match: %s", m.body)
	}
	s0 := es[0]["search"].(map[string]any)
	ext := s0["extension"].([]any)[0].(map[string]any)
	if s0["score"].(float64) < 0.5 || ext["url"] != "http://hl7.org/fhir/StructureDefinition/match-grade" || ext["valueCode"] == "" {
		t.Fatalf("$match entry: %v", s0)
	}
	if m := c.do("POST", "/Patient/$match", clin, match(`,{"name":"count","valueInteger":1}`)).want(t, "$match count", 200); len(m.entries("match")) != 1 {
		t.Fatalf("$match count=1: %s", m.body)
	}
	c.do("POST", "/Patient/$match", clin, match(`,{"name":"onlyCertainMatches","valueBoolean":true}`)).want(t, "$match onlyCertain", 200)
	c.do("POST", "/Patient/$match", tok["billing"], match("")).want(t, "$match by billing", 403)
	// A FHIR create honours the same headers: the refusal is an OperationOutcome naming the
	// candidates as "duplicate" issues; confirmed, it registers.
	fhirAda := `{"resourceType":"Patient","name":[{"family":"Lovelace","given":["Ada"]}],"gender":"female","birthDate":"1915-10-12","address":[{"text":"12 St James's Square, London"}]}`
	o := c.do("POST", "/Patient", clin, fhirAda, "Prefer", "duplicate-check=strict").want(t, "FHIR strict create", 409)
	if !strings.Contains(string(o.body), `"code":"duplicate"`) || !strings.Contains(string(o.body), "Patient/"+firstID) {
		t.Fatalf("FHIR refusal: %s", o.body)
	}
	c.do("POST", "/Patient", clin, fhirAda, "Prefer", "duplicate-check=nope").want(t, "FHIR bad Prefer", 400)
	var all []string
	for _, i := range o.res["issue"].([]any) {
		if d, _ := i.(map[string]any)["diagnostics"].(string); strings.HasPrefix(d, "possible duplicate Patient/") {
			all = append(all, strings.Fields(strings.TrimPrefix(d, "possible duplicate Patient/"))[0])
		}
	}
	c.do("POST", "/Patient", clin, fhirAda, "Prefer", "duplicate-check=strict", "X-Confirm-Not-Duplicate", strings.Join(all, ",")).want(t, "FHIR confirmed create", 201)
	cap := c.do("GET", "/metadata", "", "").want(t, "metadata", 200)
	if !strings.Contains(string(cap.body), `"name":"match"`) {
		t.Fatalf("$match not in the CapabilityStatement: %s", cap.body)
	}
	for name, body := range map[string]string{
		"not Parameters":         `{"resourceType":"Patient"}`,
		"no resource":            `{"resourceType":"Parameters","parameter":[{"name":"count","valueInteger":3}]}`,
		"two resources":          strings.Replace(match(""), `]}`, `,{"name":"resource","resource":{"resourceType":"Patient"}}]}`, 1),
		"resource not a Patient": `{"resourceType":"Parameters","parameter":[{"name":"resource","resource":{"resourceType":"Observation"}}]}`,
		"count too big":          match(`,{"name":"count","valueInteger":1000}`),
		"count a string":         match(`,{"name":"count","valueInteger":"3"}`),
		"unknown parameter":      match(`,{"name":"limit","valueInteger":3}`),
		"empty Patient":          `{"resourceType":"Parameters","parameter":[{"name":"resource","resource":{"resourceType":"Patient"}}]}`,
		"bad birthDate":          strings.Replace(match(""), "1915-10-12", "1915-13-45", 1),
		"truncated":              match("")[:60],
		"parameter an object":    `{"resourceType":"Parameters","parameter":{"name":"resource"}}`,
	} {
		a := c.do("POST", "/Patient/$match", clin, body)
		if a.status < 400 || a.status >= 500 {
			t.Fatalf("%s: %d %s", name, a.status, a.body)
		}
	}
}
