package main

import (
	"net/url"
	"strings"
	"testing"
)

// TestFHIRSearchDemographics: Patient search by family, given, phone, gender and birthdate
// ranges through the gateway on PostgreSQL (pms all), alone, combined with name and paged to
// the end by Bundle.link next; bad values are 400 OperationOutcomes. Every answer is valid
// FHIR R4 (fhirClient).
func TestFHIRSearchDemographics(t *testing.T) {
	c, tok, _ := fhirWorld(t)
	clin := tok["clinician"]
	mk := func(family, given, gender, phone, dob string) string {
		tel := ""
		if phone != "" {
			tel = `"telecom":[{"system":"phone","value":"` + phone + `"}],`
		}
		r := c.do("POST", "/Patient", clin, `{"resourceType":"Patient","name":[{"family":"`+family+`","given":["`+given+`"]}],"gender":"`+gender+`",`+
			tel+`"address":[{"text":"1 Main St"}],"birthDate":"`+dob+`"}`).want(t, "create "+family, 201)
		return r.res["id"].(string)
	}
	ada := mk("Zuluhopper", "Ada", "female", "+44 20 7946 0000", "1915-12-10")
	bob := mk("Zuluhopper", "Bob", "male", "", "1990-01-01")
	cat := mk("Zuluhopperson", "Cat", "female", "555.0100", "1990-12-31")
	dan := mk("Zulu", "Adam", "other", "", "1991-06-15")
	mk("Other", "Ada", "unknown", "", "2001-02-03")

	ids := func(path string) []string {
		t.Helper()
		var out []string
		for next := path; next != ""; {
			pg := c.do("GET", next, clin, "").want(t, path, 200)
			if len(pg.entries("outcome")) != 0 {
				t.Fatalf("%s: parameters ignored: %s", path, pg.body)
			}
			for _, e := range pg.entries("match") {
				out = append(out, e["resource"].(map[string]any)["id"].(string))
			}
			next = pg.link("next")
		}
		return out
	}
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"family=zuluhopper", []string{ada, bob, cat}},
		{"family=ZULUHOPPERSON", []string{cat}},
		{"family=zulu&_count=1", []string{ada, bob, cat, dan}},
		{"family=zulu&given=ada", []string{ada, dan}},
		{"family=zulu&given=adam", []string{dan}},
		{"family=zulu&gender=female", []string{ada, cat}},
		{"family=zulu&gender=http://hl7.org/fhir/administrative-gender|male", []string{bob}},
		{"phone=" + url.QueryEscape("+442079460000"), []string{ada}},
		{"phone=555-0100", []string{cat}},
		{"family=zulu&birthdate=1990", []string{bob, cat}},
		{"family=zulu&birthdate=ge1990-06&birthdate=lt1991-07", []string{cat, dan}},
		{"family=zulu&birthdate=gt1990-01-01&_count=1", []string{cat, dan}},
		{"family=zulu&birthdate=le1990-01-01", []string{ada, bob}},
		{"family=zulu&birthdate=eq1990-12", []string{cat}},
		{"family=zulu&birthdate=lt1900&birthdate=gt2000", nil},
		{"name=zuluhopper&given=bob", []string{bob}},
	} {
		if got := ids("/Patient?" + c.query); strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Fatalf("%s: %v, want %v", c.query, got, c.want)
		}
	}
	// The same by form POST.
	pg := c.raw("POST", "/Patient/_search", clin, "application/x-www-form-urlencoded", strings.NewReader("family=zuluhopper&birthdate=ge1990"), true).want(t, "POST family", 200)
	if len(pg.entries("match")) != 2 || strings.Contains(pg.link("self"), "zulu") {
		t.Fatalf("POST family: %s", pg.body)
	}
	for _, q := range []string{"gender=woman", "birthdate=1990-02-30", "birthdate=xx1990", "birthdate=1990-1-1", "phone=call-me", "family=a&family=b",
		"given=" + strings.Repeat("a", 101)} {
		if st := c.do("GET", "/Patient?"+q, clin, "").want(t, q, 400); st.issueCode() != "invalid" {
			t.Fatalf("%s: %s", q, st.body)
		}
	}
	c.do("GET", "/Patient?family=zulu", tok["analyst"], "").want(t, "analyst searches", 403)
	m := c.do("GET", "/metadata", "", "").want(t, "metadata", 200)
	for _, p := range []string{`"name":"family"`, `"name":"given"`, `"name":"phone"`, `"name":"gender"`} {
		if !strings.Contains(string(m.body), p) {
			t.Fatalf("the capability statement lacks %s", p)
		}
	}
}
