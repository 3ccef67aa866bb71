package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/pms/pms/pkg/platform/db/dbtest"
)

// fhirClient calls the gateway's FHIR facade over real TCP and validates every answer that
// has a body against the official FHIR R4 JSON schema.
type fhirClient struct {
	t    *testing.T
	base string // http://host:port/fhir
}

// fhirAnswer is one answer of the facade.
type fhirAnswer struct {
	status int
	header http.Header
	body   []byte
	res    map[string]any
}

// do sends method path (under /fhir) with a FHIR JSON body (if any) and header pairs; the
// answer's body must be valid FHIR R4 JSON and an OperationOutcome when the status is an
// error.
func (c fhirClient) do(method, path, token, body string, headers ...string) fhirAnswer {
	c.t.Helper()
	return c.raw(method, path, token, "application/fhir+json", strings.NewReader(body), body != "", headers...)
}

func (c fhirClient) raw(method, path, token, contentType string, body io.Reader, hasBody bool, headers ...string) fhirAnswer {
	c.t.Helper()
	u := path
	if !strings.HasPrefix(path, "http") {
		u = c.base + path
	}
	if !hasBody {
		body = nil
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if hasBody {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := fhirAnswer{status: resp.StatusCode, header: resp.Header, body: b}
	what := fmt.Sprintf("%s %s → %d", method, path, resp.StatusCode)
	if resp.StatusCode >= 500 {
		c.t.Fatalf("%s: a server error: %s", what, b)
	}
	if len(b) > 0 {
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
			c.t.Fatalf("%s: Content-Type %q", what, ct)
		}
		validateFHIR(c.t, what, b)
		if err := json.Unmarshal(b, &a.res); err != nil {
			c.t.Fatalf("%s: %v", what, err)
		}
		if resp.StatusCode >= 400 && a.res["resourceType"] != "OperationOutcome" {
			c.t.Fatalf("%s: an error that is not an OperationOutcome: %s", what, b)
		}
	} else if resp.StatusCode != http.StatusNoContent {
		c.t.Fatalf("%s: no body", what)
	}
	return a
}

// want fails unless the answer has status.
func (a fhirAnswer) want(t *testing.T, what string, status int) fhirAnswer {
	t.Helper()
	if a.status != status {
		t.Fatalf("%s: %d, want %d: %s", what, a.status, status, a.body)
	}
	return a
}

// issueCode is the code of an OperationOutcome's first issue.
func (a fhirAnswer) issueCode() string {
	issues, _ := a.res["issue"].([]any)
	if len(issues) == 0 {
		return ""
	}
	i, _ := issues[0].(map[string]any)
	s, _ := i["code"].(string)
	return s
}

// link returns a Bundle's link of relation rel, "" when none.
func (a fhirAnswer) link(rel string) string {
	links, _ := a.res["link"].([]any)
	for _, l := range links {
		m, _ := l.(map[string]any)
		if m["relation"] == rel {
			s, _ := m["url"].(string)
			return s
		}
	}
	return ""
}

// entries returns a Bundle's entries of search mode mode ("" for any).
func (a fhirAnswer) entries(mode string) []map[string]any {
	var out []map[string]any
	es, _ := a.res["entry"].([]any)
	for _, e := range es {
		m, _ := e.(map[string]any)
		s, _ := m["search"].(map[string]any)
		if mode == "" || s["mode"] == mode {
			out = append(out, m)
		}
	}
	return out
}

// fhirPatientJSON is a Patient resource with the elements the facade maps today.
func fhirPatientJSON(id, name, email, dob string) string {
	idPart := ""
	if id != "" {
		idPart = `"id":"` + id + `",`
	}
	return `{"resourceType":"Patient",` + idPart + `"name":[{"text":"` + name + `"}],"telecom":[{"system":"email","value":"` + email +
		`"}],"address":[{"text":"1 Main St"}],"birthDate":"` + dob + `"}`
}

// fhirWorld starts `pms all` on PostgreSQL and returns the facade's client, an admin token
// and a token per other role.
func fhirWorld(t *testing.T) (fhirClient, map[string]string, map[string]string) {
	a, _ := startPMS(t, allAddrs, allArgs(t, dbtest.PostgresDatabase(t), "--gateway-client-rate=2000", "--gateway-client-burst=4000")...)
	waitReady(t, a["gateway/admin"])
	waitReady(t, a["patient/admin"])
	admin := allToken(t, a)
	tokens := map[string]string{"admin": admin}
	for _, role := range []string{"clinician", "billing", "analyst", "privacy"} {
		if resp, b := call(t, "POST", "http://"+a["auth/http"]+"/users", admin, `{"email":"fhir-`+role+`@example.org","password":"`+matrixPassword+`","role":"`+role+`"}`); resp.StatusCode != 201 {
			t.Fatalf("user %s: %d %s", role, resp.StatusCode, b)
		}
		resp, b := call(t, "POST", "http://"+a["auth/http"]+"/login", "", `{"email":"fhir-`+role+`@example.org","password":"`+matrixPassword+`"}`)
		var p struct{ Token string }
		if resp.StatusCode != 200 || json.Unmarshal(b, &p) != nil {
			t.Fatalf("login %s: %d %s", role, resp.StatusCode, b)
		}
		tokens[role] = p.Token
	}
	return fhirClient{t: t, base: "http://" + a["gateway/http"] + "/fhir"}, tokens, a
}

// TestFHIRJourney goes through the gateway's FHIR facade over real TCP on PostgreSQL:
// metadata, create, read, vread, update with the right and a stale version, search paged to
// the end (GET and form POST), history, delete then read (410), erasure (410), roles as on
// /api/patients, content negotiation and the lenient/strict search handling. Every answer
// is validated against the official FHIR R4 JSON schema.
func TestFHIRJourney(t *testing.T) {
	c, tok, a := fhirWorld(t)
	clin := tok["clinician"]

	// The capability statement needs no token.
	m := c.do("GET", "/metadata", "", "").want(t, "metadata", 200)
	if m.res["resourceType"] != "CapabilityStatement" || m.res["fhirVersion"] != "4.0.1" {
		t.Fatalf("metadata: %s", m.body)
	}

	// Create: 201, Location of the version, ETag W/"1", the MRN as an identifier.
	cr := c.do("POST", "/Patient", clin, fhirPatientJSON("", "Grace Fhir", "grace.fhir@example.org", "1990-12-10")).want(t, "create", 201)
	id, _ := cr.res["id"].(string)
	if cr.header.Get("ETag") != `W/"1"` || !strings.HasSuffix(cr.header.Get("Location"), "/fhir/Patient/"+id+"/_history/1") {
		t.Fatalf("create headers: %v", cr.header)
	}
	ident, _ := cr.res["identifier"].([]any)
	if len(ident) != 1 || ident[0].(map[string]any)["system"] != "urn:pms:mrn" {
		t.Fatalf("create: identifier %v", cr.res["identifier"])
	}
	mrn := ident[0].(map[string]any)["value"].(string)

	// Read; the REST API sees the same record.
	rd := c.do("GET", "/Patient/"+id, clin, "").want(t, "read", 200)
	if rd.header.Get("ETag") != `W/"1"` || rd.res["birthDate"] != "1990-12-10" || rd.res["meta"].(map[string]any)["versionId"] != "1" {
		t.Fatalf("read: %v %s", rd.header, rd.body)
	}
	if resp, b := call(t, "GET", "http://"+a["gateway/http"]+"/api/patients/"+id, clin, ""); resp.StatusCode != 200 || !strings.Contains(string(b), `"name":"Grace Fhir"`) {
		t.Fatalf("REST read: %d %s", resp.StatusCode, b)
	}

	// Update with the right version, then with the stale one (412); the MRN may be echoed.
	upd := `{"resourceType":"Patient","id":"` + id + `","identifier":[{"system":"urn:pms:mrn","value":"` + mrn +
		`"}],"name":[{"family":"Hopper","given":["Grace"]}],"telecom":[{"system":"email","value":"grace.fhir@example.org"}],"address":[{"line":["2 Main St"],"city":"Arlington"}],"birthDate":"1990-12-10"}`
	up := c.do("PUT", "/Patient/"+id, clin, upd, "If-Match", `W/"1"`).want(t, "update", 200)
	if up.header.Get("ETag") != `W/"2"` || up.res["name"].([]any)[0].(map[string]any)["text"] != "Grace Hopper" ||
		up.res["address"].([]any)[0].(map[string]any)["text"] != "2 Main St, Arlington" {
		t.Fatalf("update: %v %s", up.header, up.body)
	}
	if st := c.do("PUT", "/Patient/"+id, clin, upd, "If-Match", `W/"1"`).want(t, "stale update", 412); st.issueCode() != "conflict" {
		t.Fatalf("stale update: %s", st.body)
	}
	// The MRN is read-only: another value is a business-rule refusal.
	c.do("PUT", "/Patient/"+id, clin, strings.Replace(upd, mrn, "MRN-OTHER", 1), "If-Match", `W/"2"`).want(t, "changed MRN", 422)

	// Demographics (issue 19 item 1) through FHIR: the structured name, gender, phone and an
	// identifier of another system go in and come back; identifier=system|value finds the
	// record; an update that leaves the phone out removes it (a FHIR update replaces).
	const nid = "urn:oid:2.16.840.1.113883.2.4.6.3"
	demo := `{"resourceType":"Patient","identifier":[{"system":"` + nid + `","value":"999999990"}],` +
		`"name":[{"family":"Lovelace","given":["Ada","Augusta"]}],"gender":"female",` +
		`"telecom":[{"system":"email","value":"ada.fhir@example.org"},{"system":"phone","value":"+44 20 7946 0000"}],"address":[{"text":"12 St James Sq"}],"birthDate":"1915-12-10"}`
	dc := c.do("POST", "/Patient", clin, demo).want(t, "create with demographics", 201)
	did, _ := dc.res["id"].(string)
	dr := c.do("GET", "/Patient/"+did, clin, "").want(t, "read demographics", 200)
	if dr.res["gender"] != "female" || !strings.Contains(string(dr.body), `"family":"Lovelace"`) || !strings.Contains(string(dr.body), `"given":["Ada","Augusta"]`) ||
		!strings.Contains(string(dr.body), `"system":"phone","value":"+44 20 7946 0000"`) || !strings.Contains(string(dr.body), `"value":"999999990"`) ||
		!strings.Contains(string(dr.body), `"text":"Ada Augusta Lovelace"`) {
		t.Fatalf("read demographics: %s", dr.body)
	}
	if s := c.do("GET", "/Patient?identifier="+url.QueryEscape(nid+"|999999990"), clin, "").want(t, "search by identifier", 200); len(s.entries("match")) != 1 {
		t.Fatalf("search by identifier: %s", s.body)
	}
	noPhone := strings.Replace(demo, `,{"system":"phone","value":"+44 20 7946 0000"}`, "", 1)
	noPhone = strings.Replace(noPhone, `{"resourceType":"Patient",`, `{"resourceType":"Patient","id":"`+did+`",`, 1)
	if u := c.do("PUT", "/Patient/"+did, clin, noPhone, "If-Match", `W/"1"`).want(t, "update without the phone", 200); strings.Contains(string(u.body), `"phone"`) {
		t.Fatalf("update without the phone kept it: %s", u.body)
	}
	// A second live patient with the same identifier is a conflict.
	c.do("POST", "/Patient", clin, strings.Replace(demo, "ada.fhir@", "ada.second@", 1)).want(t, "identifier taken", 409)

	// vread: each version; an unknown version is 404.
	if v1 := c.do("GET", "/Patient/"+id+"/_history/1", clin, "").want(t, "vread 1", 200); v1.res["name"].([]any)[0].(map[string]any)["text"] != "Grace Fhir" || v1.header.Get("ETag") != `W/"1"` {
		t.Fatalf("vread 1: %s", v1.body)
	}
	c.do("GET", "/Patient/"+id+"/_history/2", clin, "").want(t, "vread 2", 200)
	c.do("GET", "/Patient/"+id+"/_history/9", clin, "").want(t, "vread 9", 404)
	c.do("GET", "/Patient/"+id+"/_history/x", clin, "").want(t, "vread x", 400)

	// History: a Bundle of type history, newest first.
	h := c.do("GET", "/Patient/"+id+"/_history", clin, "").want(t, "history", 200)
	if h.res["type"] != "history" || len(h.entries("")) != 2 || h.entries("")[0]["resource"].(map[string]any)["meta"].(map[string]any)["versionId"] != "2" {
		t.Fatalf("history: %s", h.body)
	}

	// Search paged to the end: 5 matches, 2 a page.
	ids := map[string]bool{id: true}
	for i := range 4 {
		r := c.do("POST", "/Patient", clin, fhirPatientJSON("", fmt.Sprintf("Grace Pager %d", i), fmt.Sprintf("pager%d@example.org", i), "1985-03-0"+fmt.Sprint(i+1))).want(t, "create", 201)
		ids[r.res["id"].(string)] = true
	}
	seen := map[string]bool{}
	next, pages := "/Patient?name=grace&_count=2", 0
	for next != "" {
		pg := c.do("GET", next, clin, "").want(t, "search page", 200)
		if pg.res["type"] != "searchset" || pg.res["total"] != float64(5) || pg.link("self") == "" {
			t.Fatalf("search page: %s", pg.body)
		}
		for _, e := range pg.entries("match") {
			rid := e["resource"].(map[string]any)["id"].(string)
			if seen[rid] || !strings.HasSuffix(e["fullUrl"].(string), "/fhir/Patient/"+rid) {
				t.Fatalf("entry %v (seen before: %v)", e, seen[rid])
			}
			seen[rid] = true
		}
		next, pages = pg.link("next"), pages+1
	}
	if len(seen) != 5 || pages != 3 {
		t.Fatalf("search: %d patients over %d pages", len(seen), pages)
	}
	for sid := range seen {
		if !ids[sid] {
			t.Fatalf("search found %s, not one of ours", sid)
		}
	}
	// The same by form POST: no patient data in any URL, the next link carries only the token.
	seen, pages = map[string]bool{}, 0
	for next := "/Patient/_search?_count=2"; next != ""; pages++ {
		pg := c.raw("POST", next, clin, "application/x-www-form-urlencoded", strings.NewReader("name=grace"), true).want(t, "POST search", 200)
		for _, e := range pg.entries("match") {
			seen[e["resource"].(map[string]any)["id"].(string)] = true
		}
		next = pg.link("next")
		if strings.Contains(next, "grace") || strings.Contains(pg.link("self"), "grace") {
			t.Fatalf("a POST search's links carry its parameters: %s", pg.body)
		}
	}
	if len(seen) != 5 || pages != 3 {
		t.Fatalf("POST search: %d patients over %d pages", len(seen), pages)
	}
	// birthdate: exact (eq or none; ranges in TestFHIRSearchDemographics); FHIR prefixes not
	// served and unsupported modifiers are ignored and said so (lenient), or refused under
	// Prefer: handling=strict; so are unknown parameters.
	for _, q := range []string{"birthdate=1990-12-10", "birthdate=eq1990-12-10"} {
		if pg := c.do("GET", "/Patient?"+q+"&email=grace.fhir@example.org", clin, "").want(t, q, 200); len(pg.entries("match")) != 1 {
			t.Fatalf("%s: %s", q, pg.body)
		}
	}
	for _, q := range []string{"birthdate=ne2000-01-01", "birthdate=ap1990", "family:exact=Pager", "name:exact=Grace"} {
		pg := c.do("GET", "/Patient?name=pager&"+q, clin, "").want(t, "lenient "+q, 200)
		if len(pg.entries("match")) != 4 || len(pg.entries("outcome")) != 1 || strings.Contains(pg.link("self"), url.QueryEscape(strings.Split(q, "=")[0])+"=") {
			t.Fatalf("lenient %s: %s", q, pg.body)
		}
		if st := c.do("GET", "/Patient?name=pager&"+q, clin, "", "Prefer", "handling=strict").want(t, "strict "+q, 400); st.issueCode() != "invalid" {
			t.Fatalf("strict %s: %s", q, st.body)
		}
	}
	c.do("GET", "/Patient?_count=0", clin, "").want(t, "_count=0", 400)
	c.do("GET", "/Patient?name=a&name=b", clin, "").want(t, "name twice", 400)
	c.do("GET", "/Patient?_pageToken=forged", clin, "").want(t, "forged page token", 400)

	// Content negotiation: JSON only.
	c.do("GET", "/Patient/"+id+"?_format=xml", clin, "").want(t, "_format=xml", 406)
	c.do("GET", "/metadata?_format=application/fhir%2Bxml", "", "").want(t, "_format=fhir+xml", 406)
	c.do("GET", "/Patient/"+id, clin, "", "Accept", "application/fhir+xml").want(t, "Accept xml", 406)
	c.do("GET", "/Patient/"+id+"?_format=json", clin, "", "Accept", "application/json").want(t, "_format=json", 200)
	c.raw("POST", "/Patient", clin, "application/fhir+xml", strings.NewReader("<Patient/>"), true).want(t, "XML body", 415)
	c.raw("POST", "/Patient", clin, "application/json", strings.NewReader(fhirPatientJSON("", "Json Type", "json.type@example.org", "1970-01-01")), true).want(t, "application/json body", 201)

	// Roles as on /api/patients: billing reads but does not write, analysts see nothing, no
	// token is 401.
	c.do("GET", "/Patient/"+id, tok["billing"], "").want(t, "billing read", 200)
	c.do("GET", "/Patient?name=grace", tok["billing"], "").want(t, "billing search", 200)
	if r := c.do("POST", "/Patient", tok["billing"], fhirPatientJSON("", "No", "no@example.org", "1970-01-01")).want(t, "billing create", 403); r.issueCode() != "forbidden" {
		t.Fatalf("billing create: %s", r.body)
	}
	c.do("PUT", "/Patient/"+id, tok["billing"], upd).want(t, "billing update", 403)
	c.do("DELETE", "/Patient/"+id, tok["billing"], "").want(t, "billing delete", 403)
	// 403 comes before the body is judged, as on REST.
	c.do("POST", "/Patient", tok["billing"], `{"resourceType":"Observation"}`).want(t, "billing bad create", 403)
	for _, p := range []string{"/Patient/" + id, "/Patient?name=grace", "/Patient/" + id + "/_history", "/Patient/" + id + "/_history/1"} {
		c.do("GET", p, tok["analyst"], "").want(t, "analyst "+p, 403)
		if r := c.do("GET", p, "", "").want(t, "no token "+p, 401); r.issueCode() != "login" || r.header.Get("WWW-Authenticate") == "" {
			t.Fatalf("no token: %v %s", r.header, r.body)
		}
	}
	// Unknown paths and methods are OperationOutcomes too.
	c.do("GET", "/Observation/1", clin, "").want(t, "unknown resource", 404)
	c.do("PATCH", "/Patient/"+id, clin, `{}`).want(t, "PATCH", 405)

	// Delete (a stale If-Match first), then read: 410 Gone; history is still there.
	c.do("DELETE", "/Patient/"+id, clin, "", "If-Match", `W/"1"`).want(t, "stale delete", 412)
	c.do("DELETE", "/Patient/"+id, clin, "", "If-Match", `W/"2"`).want(t, "delete", 204)
	if g := c.do("GET", "/Patient/"+id, clin, "").want(t, "read deleted", 410); g.issueCode() != "deleted" {
		t.Fatalf("read deleted: %s", g.body)
	}
	if h := c.do("GET", "/Patient/"+id+"/_history", clin, "").want(t, "history of deleted", 200); len(h.entries("")) != 3 {
		t.Fatalf("history of deleted: %s", h.body)
	} else if e := h.entries("")[0]; e["resource"] != nil || e["request"].(map[string]any)["method"] != "DELETE" {
		t.Fatalf("the deletion's entry: %v", e)
	}
	c.do("GET", "/Patient/"+id+"/_history/3", clin, "").want(t, "vread deletion", 410)
	c.do("PUT", "/Patient/"+id, clin, upd).want(t, "update deleted", 410)

	// Erased (REST, admin): read and history answer 410.
	if resp, b := call(t, "POST", "http://"+a["gateway/http"]+"/api/patients/"+id+"/erase", tok["admin"], `{"reason":"FHIR journey erasure"}`); resp.StatusCode != 200 {
		t.Fatalf("erase: %d %s", resp.StatusCode, b)
	}
	c.do("GET", "/Patient/"+id, clin, "").want(t, "read erased", 410)
	c.do("GET", "/Patient/"+id+"/_history", clin, "").want(t, "history of erased", 410)
	c.do("GET", "/Patient/"+id+"/_history/1", clin, "").want(t, "vread erased", 410)
}

// TestFHIRHostile sends malformed and hostile FHIR JSON and requests to the facade: each is
// a 4xx OperationOutcome valid against the FHIR schema, never a 5xx, and no record is made.
func TestFHIRHostile(t *testing.T) {
	c, tok, a := fhirWorld(t)
	clin := tok["clinician"]
	id := c.do("POST", "/Patient", clin, fhirPatientJSON("", "Hostile Target", "target@example.org", "1980-01-01")).want(t, "create", 201).res["id"].(string)
	good := fhirPatientJSON("", "Eve", "eve@example.org", "1980-01-01")
	deep := strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000)
	cases := []struct {
		name, method, path, body string
		want                     int
	}{
		{"wrong resourceType", "POST", "/Patient", `{"resourceType":"Observation","status":"final"}`, 400},
		{"no resourceType", "POST", "/Patient", `{"name":[{"text":"Eve"}]}`, 400},
		{"invalid JSON", "POST", "/Patient", `{"resourceType":"Patient",`, 400},
		{"truncated", "POST", "/Patient", good[:len(good)/2], 400},
		{"not an object", "POST", "/Patient", `["Patient"]`, 400},
		{"empty body", "POST", "/Patient", ``, 400},
		{"two objects", "POST", "/Patient", good + good, 400},
		{"unknown element", "POST", "/Patient", strings.Replace(good, `"birthDate"`, `"nickname":"x","birthDate"`, 1), 400},
		{"unknown nested element", "POST", "/Patient", strings.Replace(good, `{"text":"Eve"}`, `{"text":"Eve","suffix2":["x"]}`, 1), 400},
		{"name not an array", "POST", "/Patient", strings.Replace(good, `[{"text":"Eve"}]`, `{"text":"Eve"}`, 1), 400},
		{"birthDate a number", "POST", "/Patient", strings.Replace(good, `"1980-01-01"`, `19800101`, 1), 400},
		{"given a string", "POST", "/Patient", `{"resourceType":"Patient","name":[{"given":"Eve"}],"birthDate":"1980-01-01"}`, 400},
		{"deeply nested", "POST", "/Patient", `{"resourceType":"Patient","extension":` + deep + `}`, 400},
		{"invalid UTF-8", "POST", "/Patient", strings.Replace(good, "Eve", "Ev\xff", 1), 400},
		{"NUL in name", "POST", "/Patient", strings.Replace(good, "Eve", `Ev\u0000e`, 1), 422},
		{"huge body", "POST", "/Patient", strings.Replace(good, "Eve", strings.Repeat("E", 2<<20), 1), 413},
		{"bad birthDate", "POST", "/Patient", strings.Replace(good, "1980-01-01", "1980-13-45", 1), 422},
		{"future birthDate", "POST", "/Patient", strings.Replace(good, "1980-01-01", "2999-01-01", 1), 422},
		{"bad email", "POST", "/Patient", strings.Replace(good, "eve@example.org", "not-an-email", 1), 422},
		{"no name", "POST", "/Patient", `{"resourceType":"Patient","birthDate":"1980-01-01"}`, 422},
		{"two phones", "POST", "/Patient", strings.Replace(good, `{"system":"email"`, `{"system":"phone","value":"+1 555 0100"},{"system":"phone","value":"+1 555 0101"},{"system":"email"`, 1), 422},
		{"a fax", "POST", "/Patient", strings.Replace(good, `{"system":"email"`, `{"system":"fax","value":"+1 555 0100"},{"system":"email"`, 1), 422},
		{"two names", "POST", "/Patient", strings.Replace(good, `[{"text":"Eve"}]`, `[{"text":"Eve"},{"text":"Eva"}]`, 1), 422},
		{"an identifier system that is no URI", "POST", "/Patient", strings.Replace(good, `"name"`, `"identifier":[{"system":"not a uri","value":"x"}],"name"`, 1), 422},
		{"a bad gender", "POST", "/Patient", strings.Replace(good, `"name"`, `"gender":"robot","name"`, 1), 422},
		{"an MRN on create", "POST", "/Patient", strings.Replace(good, `"name"`, `"identifier":[{"system":"urn:pms:mrn","value":"MRN-1"}],"name"`, 1), 422},
		{"inactive", "POST", "/Patient", strings.Replace(good, `"name"`, `"active":false,"name"`, 1), 422},
		{"unknown query parameter on create", "POST", "/Patient?_format=json&x=1", good, 400},
		{"update without id", "PUT", "/Patient/" + id, good, 400},
		{"update with another id", "PUT", "/Patient/" + id, fhirPatientJSON("7b0c2f8e-9a51-4a7e-8a3e-0f1d2c3b4a59", "Eve", "eve@example.org", "1980-01-01"), 400},
		{"update bad If-Match", "PUT", "/Patient/" + id, fhirPatientJSON(id, "Eve", "eve@example.org", "1980-01-01"), 400},
		{"not a UUID", "GET", "/Patient/not-a-uuid", "", 400},
		{"traversal", "GET", "/Patient/..%2F..%2Fetc%2Fpasswd", "", 404},
		{"unknown id", "GET", "/Patient/7b0c2f8e-9a51-4a7e-8a3e-0f1d2c3b4a59", "", 404},
		{"control in query", "GET", "/Patient?name=%00", "", 400},
		{"malformed query", "GET", "/Patient?name=%zz", "", 400},
		{"query on read", "GET", "/Patient/" + id + "?_summary=true", "", 400},
		{"huge _count", "GET", "/Patient?_count=99999999999999999999", "", 400},
	}
	for _, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			c := fhirClient{t: t, base: c.base}
			var headers []string
			if k.name == "update bad If-Match" {
				headers = []string{"If-Match", `W/"x"`}
			}
			r := c.raw(k.method, k.path, clin, "application/fhir+json", strings.NewReader(k.body), k.body != "" || k.method == "POST", headers...)
			r.want(t, k.name, k.want)
			if strings.Contains(string(r.body), "\xff") {
				t.Fatalf("the answer echoes invalid UTF-8: %q", r.body)
			}
		})
	}
	// Nothing hostile was registered: one patient, the target.
	resp, b := call(t, "GET", "http://"+a["gateway/http"]+"/api/patients", clin, "")
	var arr []json.RawMessage
	if resp.StatusCode != 200 || json.Unmarshal(b, &arr) != nil || len(arr) != 1 {
		t.Fatalf("after the hostile requests: %d %s", resp.StatusCode, b)
	}
}

// TestFHIRKitClient runs ops/fhir/client.mjs, a script on npm's fhir-kit-client (a FHIR
// client nobody here wrote, pinned), against `pms all` through the gateway: capability
// statement, create, read, update with the version, the stale version's 412, vread, search
// paged to the end, search by family, given and a birthdate range, the Account searched and
// read, the Invoices searched, history, delete and the 410 after it.
func TestFHIRKitClient(t *testing.T) {
	fhirNodeModules(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("TestFHIRKitClient needs node (Debian's nodejs, installed with npm by .ci/run)")
	}
	c, tok, _ := fhirWorld(t)
	cmd := exec.Command(node, "client.mjs")
	cmd.Dir = fhirPackages
	cmd.Env = append(os.Environ(), "FHIR_BASE="+c.base, "FHIR_TOKEN="+tok["clinician"])
	out, err := cmd.CombinedOutput()
	t.Logf("fhir-kit-client:\n%s", out)
	if err != nil || !strings.Contains(string(out), "all steps passed") {
		t.Fatalf("the fhir-kit-client script failed: %v", err)
	}
}
