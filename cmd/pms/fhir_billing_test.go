package main

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestFHIRAccountInvoiceAuditEvent goes through the gateway's FHIR facade on PostgreSQL (pms
// all): a patient's Account read and searched by patient (and subject), its Invoices read and
// searched (paged to the end, by status) with their statuses and Money mapped (USD, JPY, BHD
// decimals), and its AuditEvents (the access log) for the privacy role, a break-glass read
// flagged ETREAT/BTG. Roles as on REST: 403 OperationOutcomes for the others; bad references,
// ids and parameters are 400. Every answer is validated against the FHIR R4 schema.
func TestFHIRAccountInvoiceAuditEvent(t *testing.T) {
	c, tok, a := fhirWorld(t)
	clin, bill, priv, admin := tok["clinician"], tok["billing"], tok["privacy"], tok["admin"]
	gw := "http://" + a["gateway/http"]

	pid := c.do("POST", "/Patient", clin, fhirPatientJSON("", "Ivy Invoice", "ivy.invoice@example.org", "1970-01-01")).want(t, "create", 201).res["id"].(string)
	ref := url.QueryEscape("Patient/" + pid)

	// Account: searched by patient= or subject=, read by id. The account may be opened after
	// the create's 201 (billing opens it from the patient service's call or from the patient
	// topic), so the search is polled until it appears, with a deadline.
	var as fhirAnswer
	var accs []map[string]any
	for deadline := time.Now().Add(30 * time.Second); ; {
		as = c.do("GET", "/Account?patient="+ref, bill, "").want(t, "account search", 200)
		if accs = as.entries("match"); len(accs) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation: the deadline bounds it
	}
	if len(accs) != 1 || as.res["total"] != float64(1) {
		t.Fatalf("account search: %s", as.body)
	}
	acc := accs[0]["resource"].(map[string]any)
	aid := acc["id"].(string)
	if acc["status"] != "active" || acc["subject"].([]any)[0].(map[string]any)["reference"] != "Patient/"+pid ||
		!strings.HasSuffix(accs[0]["fullUrl"].(string), "/fhir/Account/"+aid) {
		t.Fatalf("account: %s", as.body)
	}
	if s := c.do("GET", "/Account?subject="+url.QueryEscape(gw+"/fhir/Patient/"+pid), clin, "").want(t, "account by subject URL", 200); len(s.entries("match")) != 1 {
		t.Fatalf("account by subject: %s", s.body)
	}
	if r := c.do("GET", "/Account/"+aid, clin, "").want(t, "account read", 200); r.res["id"] != aid {
		t.Fatalf("account read: %s", r.body)
	}

	// Invoices over REST: an open one partly paid (USD), a paid one (JPY), a void one (BHD),
	// a draft.
	invoice := func(currency, desc string, qty, unit int) string {
		resp, b := call(t, "POST", gw+"/api/billing/invoices", bill, `{"patientId":"`+pid+`","currency":"`+currency+`","dueDate":"2030-01-31","lines":[{"description":"`+
			desc+`","quantity":`+strconv.Itoa(qty)+`,"unitAmount":`+strconv.Itoa(unit)+`}]}`)
		var v struct{ ID string }
		if resp.StatusCode != 201 || json.Unmarshal(b, &v) != nil {
			t.Fatalf("invoice: %d %s", resp.StatusCode, b)
		}
		return v.ID
	}
	post := func(path, body string) {
		if resp, b := call(t, "POST", gw+"/api/billing/invoices/"+path, bill, body); resp.StatusCode != 200 {
			t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
		}
	}
	usd := invoice("USD", "Consultation", 2, 1250)
	post(usd+"/issue", "")
	post(usd+"/payments", `{"amount":1000,"method":"card"}`)
	jpy := invoice("JPY", "X-ray", 1, 1500)
	post(jpy+"/issue", "")
	post(jpy+"/payments", `{"amount":1500,"method":"cash"}`)
	bhd := invoice("BHD", "Lab", 1, 1250)
	post(bhd+"/void", "")
	draft := invoice("USD", "Follow-up", 1, 5000)

	r := c.do("GET", "/Invoice/"+usd, clin, "").want(t, "invoice read", 200)
	if r.header.Get("ETag") == "" || r.res["status"] != "issued" || r.res["account"].(map[string]any)["reference"] != "Account/"+aid ||
		!strings.Contains(string(r.body), `"totalNet":{"value":25.00,"currency":"USD"}`) ||
		!strings.Contains(string(r.body), `"factor":2,"amount":{"value":25.00,"currency":"USD"}`) ||
		!strings.Contains(string(r.body), `10.00 USD by card`) || !strings.Contains(string(r.body), `"text":"Consultation"`) {
		t.Fatalf("invoice read: %v %s", r.header, r.body)
	}
	if r := c.do("GET", "/Invoice/"+jpy, bill, "").want(t, "JPY", 200); r.res["status"] != "balanced" || !strings.Contains(string(r.body), `"totalGross":{"value":1500,"currency":"JPY"}`) {
		t.Fatalf("JPY invoice: %s", r.body)
	}
	if r := c.do("GET", "/Invoice/"+bhd, bill, "").want(t, "BHD", 200); r.res["status"] != "cancelled" || !strings.Contains(string(r.body), `{"value":1.250,"currency":"BHD"}`) {
		t.Fatalf("BHD invoice: %s", r.body)
	}
	// Searched by patient, two a page, to the end.
	var got []string
	pages := 0
	for next := "/Invoice?patient=" + ref + "&_count=2"; next != ""; pages++ {
		pg := c.do("GET", next, bill, "").want(t, "invoice page", 200)
		for _, e := range pg.entries("match") {
			got = append(got, e["resource"].(map[string]any)["id"].(string))
		}
		next = pg.link("next")
	}
	if strings.Join(got, ",") != strings.Join([]string{usd, jpy, bhd, draft}, ",") || pages != 2 {
		t.Fatalf("invoice search: %v over %d pages", got, pages)
	}
	for status, want := range map[string]string{"issued": usd, "balanced": jpy, "cancelled": bhd, "draft": draft} {
		pg := c.do("GET", "/Invoice?subject="+ref+"&status="+status, clin, "").want(t, "status "+status, 200)
		if m := pg.entries("match"); len(m) != 1 || m[0]["resource"].(map[string]any)["id"] != want {
			t.Fatalf("status %s: %s", status, pg.body)
		}
	}

	// Roles: analysts and privacy officers see no billing; nobody without a token.
	for _, p := range []string{"/Account?patient=" + ref, "/Account/" + aid, "/Invoice?patient=" + ref, "/Invoice/" + usd} {
		for _, who := range []string{"analyst", "privacy"} {
			if st := c.do("GET", p, tok[who], "").want(t, who+" "+p, 403); st.issueCode() != "forbidden" {
				t.Fatalf("%s %s: %s", who, p, st.body)
			}
		}
		c.do("GET", p, "", "").want(t, "anonymous "+p, 401)
	}
	// Bad input: 400 (a missing or foreign reference, a bad status, a malformed id, a
	// repeated parameter, strict handling of an unknown one); unknown ids 404.
	for _, p := range []string{"/Account", "/Account?patient=Group/1", "/Invoice?subject=Practitioner/" + pid, "/Invoice?patient=" + ref + "&status=open",
		"/Account/not-a-uuid", "/Invoice/not-a-uuid", "/Invoice?patient=" + ref + "&patient=" + ref, "/Account?patient=Patient/" + pid + "&subject=Patient/" + aid,
		"/Invoice?patient=" + ref + "&_count=0", "/Invoice?patient=" + ref + "&_pageToken=forged", "/AuditEvent?entity=Account/" + aid} {
		who := bill
		if strings.HasPrefix(p, "/AuditEvent") {
			who = priv
		}
		if st := c.do("GET", p, who, "").want(t, p, 400); st.issueCode() != "invalid" {
			t.Fatalf("%s: %s", p, st.body)
		}
	}
	c.do("GET", "/Invoice?patient="+ref+"&date=2030", bill, "", "Prefer", "handling=strict").want(t, "strict unknown", 400)
	if pg := c.do("GET", "/Invoice?patient="+ref+"&date=2030", bill, "").want(t, "lenient unknown", 200); len(pg.entries("outcome")) != 1 || len(pg.entries("match")) != 4 {
		t.Fatalf("lenient unknown: %s", pg.body)
	}
	c.do("GET", "/Account/5f0c1c52-8a53-4c8e-9d43-6c1f0e2b7a11", bill, "").want(t, "unknown account", 404)
	c.do("GET", "/Invoice/5f0c1c52-8a53-4c8e-9d43-6c1f0e2b7a11", bill, "").want(t, "unknown invoice", 404)

	// AuditEvent: a read, a search and a break-glass read of the record once restricted (that
	// one flagged), with the create, newest first.
	c.do("GET", "/Patient/"+pid, clin, "").want(t, "read", 200)
	c.do("GET", "/Patient?name=ivy+invoice", bill, "").want(t, "search", 200)
	if resp, b := call(t, "PUT", gw+"/api/patients/"+pid+"/confidentiality", admin, `{"confidentiality":"restricted"}`); resp.StatusCode != 200 {
		t.Fatalf("restrict: %d %s", resp.StatusCode, b)
	}
	if resp, b := call(t, "POST", gw+"/api/patients/"+pid+"/break-glass", clin, `{"reason":"unconscious patient in A&E"}`); resp.StatusCode != 201 && resp.StatusCode != 200 {
		t.Fatalf("break-glass: %d %s", resp.StatusCode, b)
	}
	c.do("GET", "/Patient/"+pid, clin, "").want(t, "emergency read", 200)
	var events []map[string]any
	pages = 0
	for next := "/AuditEvent?patient=" + ref + "&_count=2"; next != ""; pages++ {
		pg := c.do("GET", next, priv, "").want(t, "audit event page", 200)
		for _, e := range pg.entries("match") {
			events = append(events, e["resource"].(map[string]any))
		}
		next = pg.link("next")
	}
	if len(events) != 4 || pages != 2 {
		t.Fatalf("%d audit events over %d pages", len(events), pages)
	}
	newest := events[0]
	b, _ := json.Marshal(newest)
	if newest["action"] != "R" || newest["outcome"] != "0" || !strings.Contains(string(b), `"code":"BTG"`) || !strings.Contains(string(b), `"code":"ETREAT"`) ||
		!strings.Contains(string(b), `"reference":"Patient/`+pid+`"`) || !strings.Contains(string(b), `"code":"clinician"`) {
		t.Fatalf("the emergency read's AuditEvent: %s", b)
	}
	var creates, emergencies int
	for _, e := range events {
		b, _ := json.Marshal(e)
		if e["action"] == "C" {
			creates++
		}
		if strings.Contains(string(b), `"BTG"`) {
			emergencies++
		}
	}
	if creates != 1 || emergencies != 1 {
		t.Fatalf("%d creates and %d emergency accesses among %d events", creates, emergencies, len(events))
	}
	if pg := c.do("GET", "/AuditEvent?entity="+ref, admin, "").want(t, "admin by entity", 200); len(pg.entries("match")) != 4 {
		t.Fatalf("admin by entity: %s", pg.body)
	}
	for _, who := range []string{"clinician", "billing", "analyst"} {
		c.do("GET", "/AuditEvent?patient="+ref, tok[who], "").want(t, who+" audit events", 403)
	}
	c.do("GET", "/AuditEvent?patient=Patient/5f0c1c52-8a53-4c8e-9d43-6c1f0e2b7a11", priv, "").want(t, "unknown patient's audit events", 404)

	m := c.do("GET", "/metadata", "", "").want(t, "metadata", 200)
	for _, typ := range []string{`"type":"Account"`, `"type":"Invoice"`, `"type":"AuditEvent"`} {
		if !strings.Contains(string(m.body), typ) {
			t.Fatalf("the capability statement lacks %s", typ)
		}
	}
}
