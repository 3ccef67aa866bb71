package main

import "strings"

// breakGlassCases are the hostile requests on break-glass (issue 17) besides the generic
// ones its routes get from bodyRoutes and idRoutes: missing, short, padded and oversized
// reasons, unknown confidentiality levels, the roles that may not use or review it, a
// restricted record without a grant, and bad review queries. Every one is refused.
func (w *attackWorld) breakGlassCases() []hostile {
	bg := "/api/patients/" + w.restricted + "/break-glass"
	conf := "/api/patients/" + w.p2 + "/confidentiality"
	var out []hostile
	for _, body := range []string{`{}`, `{"reason":""}`, `{"reason":null}`, `{"reason":"too short"}`, `{"reason":"          "}`,
		`{"reason":"   short   "}`, `{"reason":"` + strings.Repeat("x", 501) + `"}`, `{"reason":"unconscious patient","until":"2099-01-01T00:00:00Z"}`,
		`{"reason":"unconscious patient","patientId":"` + w.p1 + `"}`, `{"reason":"unconscious patient","expiresAt":"2099-01-01T00:00:00Z"}`} {
		out = append(out, hostile{cat: catState, name: "break-glass body " + trimName(body), method: "POST", path: bg, token: w.clin, body: body, want: []int{400}})
	}
	for _, body := range []string{`{}`, `{"confidentiality":""}`, `{"confidentiality":"secret"}`, `{"confidentiality":"RESTRICTED"}`,
		`{"confidentiality":" restricted"}`, `{"confidentiality":null}`, `{"confidentiality":"restricted","name":"x"}`} {
		out = append(out, hostile{cat: catState, name: "confidentiality body " + body, method: "PUT", path: conf, token: w.admin, body: body, want: []int{400}})
	}
	ok := `{"reason":"unconscious patient in A&E"}`
	out = append(out,
		// Roles that may not: billing and analysts break no glass; clinicians neither restrict
		// nor review; no token is 401.
		hostile{cat: catRoles, name: "break-glass as billing", method: "POST", path: bg, token: w.bill, body: ok, want: []int{403}},
		hostile{cat: catRoles, name: "break-glass as analyst", method: "POST", path: bg, token: w.analyst, body: ok, want: []int{403}},
		hostile{cat: catRoles, name: "break-glass without a token", method: "POST", path: bg, body: ok, want: []int{401}},
		hostile{cat: catRoles, name: "restrict as clinician", method: "PUT", path: conf, token: w.clin, body: `{"confidentiality":"restricted"}`, want: []int{403}},
		hostile{cat: catRoles, name: "unrestrict as clinician", method: "PUT", path: "/api/patients/" + w.restricted + "/confidentiality", token: w.clin, body: `{"confidentiality":"normal"}`, want: []int{403}},
		hostile{cat: catRoles, name: "review as clinician", method: "GET", path: "/api/audit/break-glass", token: w.clin, want: []int{403}},
		hostile{cat: catRoles, name: "review as billing", method: "GET", path: "/api/audit/break-glass", token: w.bill, want: []int{403}},
		// A restricted record without a grant: 403 everywhere, and a PUT may not lift it.
		hostile{cat: catState, name: "read a restricted record without a grant", method: "GET", path: "/api/patients/" + w.restricted, token: w.clin, want: []int{403}},
		hostile{cat: catState, name: "history of a restricted record without a grant", method: "GET", path: "/api/patients/" + w.restricted + "/history", token: w.clin, want: []int{403}},
		hostile{cat: catState, name: "update a restricted record without a grant", method: "PUT", path: "/api/patients/" + w.restricted, token: w.clin,
			body: `{"name":"Changed By Attack","email":"restricted@example.org","address":"2 Main St","dateOfBirth":"1980-01-01"}`, want: []int{403}},
		hostile{cat: catState, name: "delete a restricted record without a grant", method: "DELETE", path: "/api/patients/" + w.restricted, token: w.clin, want: []int{403}},
		hostile{cat: catState, name: "billing data of a restricted record without a grant", method: "GET", path: "/api/patients/" + w.restricted + "/invoices", token: w.bill, want: []int{403}},
		// Billing's own routes refuse a restricted patient to every caller (403 restricted).
		hostile{cat: catState, name: "billing's invoices of a restricted patient", method: "GET", path: "/api/billing/invoices?patientId=" + w.restricted, token: w.bill, want: []int{403}},
		hostile{cat: catState, name: "billing's account of a restricted patient", method: "GET", path: "/api/billing/accounts?patientId=" + w.restricted, token: w.bill, want: []int{403}},
		hostile{cat: catState, name: "billing's invoices of a restricted patient as clinician", method: "GET", path: "/api/billing/invoices?patientId=" + w.restricted, token: w.clin, want: []int{403}},
		hostile{cat: catState, name: "PUT lifting confidentiality", method: "PUT", path: "/api/patients/" + w.p1, token: w.clin,
			body: `{"name":"Changed By Attack","email":"p1@example.org","address":"2 Main St","dateOfBirth":"1980-01-01","confidentiality":"restricted"}`, want: []int{400}},
		hostile{cat: catState, name: "break-glass on a deleted record", method: "POST", path: "/api/patients/" + w.deleted + "/break-glass", token: w.clin, body: ok, want: []int{410}},
		hostile{cat: catState, name: "break-glass on a normal record", method: "POST", path: "/api/patients/" + w.p1 + "/break-glass", token: w.clin, body: ok, want: []int{409}},
		hostile{cat: catState, name: "break-glass query string", method: "POST", path: bg + "?ttl=99999h", token: w.clin, body: ok, want: []int{400}},
	)
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "from=yesterday", "to=2026-13-01", "from=2026-02-01&to=2026-01-01",
		"patientId=" + strings.Repeat("a", 300), "actor=" + strings.Repeat("a", 300), "reason=x", "limit=1&limit=2"} {
		out = append(out, hostile{cat: catQuery, name: "review ?" + trimName(q), method: "GET", path: "/api/audit/break-glass?" + q, token: w.admin, want: []int{400}})
	}
	return out
}

// eraseCases are the hostile requests on erasure (issue 17): bad reasons and bodies on a
// deleted record, the roles that may not erase, a live record, and a query string. Every one
// is refused, so the deleted record keeps its data for the suite's later checks.
func (w *attackWorld) eraseCases() []hostile {
	er := "/api/patients/" + w.deleted + "/erase"
	var out []hostile
	for _, body := range []string{`{}`, `{"reason":""}`, `{"reason":null}`, `{"reason":"too short"}`, `{"reason":"          "}`,
		`{"reason":"` + strings.Repeat("x", 501) + `"}`, `{"reason":"GDPR Art. 17 request","keep":"name"}`, `{"reason":["GDPR Art. 17 request"]}`,
		`{"reason":"GDPR\u0000 Art. 17 request"}`, `[]`, `"GDPR Art. 17 request"`, `{"reason":"GDPR Art. 17 request"`} {
		out = append(out, hostile{cat: catState, name: "erase body " + trimName(body), method: "POST", path: er, token: w.admin, body: body, want: []int{400}})
	}
	ok := `{"reason":"GDPR Art. 17 request"}`
	out = append(out,
		hostile{cat: catRoles, name: "erase as clinician", method: "POST", path: er, token: w.clin, body: ok, want: []int{403}},
		hostile{cat: catRoles, name: "erase as billing", method: "POST", path: er, token: w.bill, body: ok, want: []int{403}},
		hostile{cat: catRoles, name: "erase as analyst", method: "POST", path: er, token: w.analyst, body: ok, want: []int{403}},
		hostile{cat: catRoles, name: "erase without a token", method: "POST", path: er, body: ok, want: []int{401}},
		hostile{cat: catState, name: "erase a live record", method: "POST", path: "/api/patients/" + w.p1 + "/erase", token: w.admin, body: ok, want: []int{409}},
		hostile{cat: catState, name: "erase query string", method: "POST", path: er + "?reason=x", token: w.admin, body: ok, want: []int{400}},
	)
	return out
}

// trimName shortens a case's body or query for its name.
func trimName(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}
