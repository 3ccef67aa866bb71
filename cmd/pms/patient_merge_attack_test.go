package main

import "strings"

// mergeCases are the hostile requests on merge and unmerge (issue 19) besides the bad ids
// every route with an id gets from idRoutes: missing, short, padded, oversized and smuggled
// reasons, bad duplicate ids and malformed bodies, the roles that may not merge, states that
// forbid it (itself, a deleted record, an unknown one, a record that is not merged), and query
// strings. Every one is refused, so no record is merged by the suite.
func (w *attackWorld) mergeCases() []hostile {
	mp := "/api/patients/" + w.p1 + "/merge"
	up := "/api/patients/" + w.p2 + "/unmerge"
	dup := `"duplicateId":"` + w.p2 + `"`
	var out []hostile
	for _, body := range []string{`{}`, `{` + dup + `}`, `{` + dup + `,"reason":""}`, `{` + dup + `,"reason":null}`, `{` + dup + `,"reason":"too short"}`,
		`{` + dup + `,"reason":"          "}`, `{` + dup + `,"reason":"` + strings.Repeat("x", 501) + `"}`, `{` + dup + `,"reason":["same person twice"]}`,
		`{` + dup + `,"reason":"same\u0000 person twice"}`, `{` + dup + `,"reason":"same person twice","survivorId":"` + w.p2 + `"}`,
		`{"duplicateId":"","reason":"same person twice"}`, `{"duplicateId":"not-a-uuid","reason":"same person twice"}`,
		`{"duplicateId":5,"reason":"same person twice"}`, `{"duplicateId":["` + w.p2 + `"],"reason":"same person twice"}`,
		`{"reason":"same person twice"}`, `[]`, `"` + w.p2 + `"`, `{` + dup + `,"reason":"same person twice"`,
		`{` + dup + `,"reason":"same person twice","reason":"x"}`} {
		out = append(out, hostile{cat: catState, name: "merge body " + trimName(body), method: "POST", path: mp, token: w.clin, body: body, want: []int{400}})
	}
	for _, body := range []string{`{}`, `{"reason":"short"}`, `{"reason":"` + strings.Repeat("x", 501) + `"}`, `{"reason":"not the same person","survivorId":"x"}`, `[]`} {
		out = append(out, hostile{cat: catState, name: "unmerge body " + trimName(body), method: "POST", path: up, token: w.clin, body: body, want: []int{400}})
	}
	ok := `{` + dup + `,"reason":"same person, registered twice"}`
	out = append(out,
		hostile{cat: catRoles, name: "merge as billing", method: "POST", path: mp, token: w.bill, body: ok, want: []int{403}},
		hostile{cat: catRoles, name: "merge as analyst", method: "POST", path: mp, token: w.analyst, body: ok, want: []int{403}},
		hostile{cat: catRoles, name: "merge without a token", method: "POST", path: mp, body: ok, want: []int{401}},
		hostile{cat: catRoles, name: "unmerge as billing", method: "POST", path: up, token: w.bill, body: `{"reason":"not the same person"}`, want: []int{403}},
		hostile{cat: catRoles, name: "unmerge without a token", method: "POST", path: up, body: `{"reason":"not the same person"}`, want: []int{401}},
		hostile{cat: catState, name: "merge into itself", method: "POST", path: mp, token: w.clin, body: `{"duplicateId":"` + w.p1 + `","reason":"same person, registered twice"}`, want: []int{409}},
		hostile{cat: catState, name: "merge a deleted record", method: "POST", path: mp, token: w.clin, body: `{"duplicateId":"` + w.deleted + `","reason":"same person, registered twice"}`, want: []int{409}},
		hostile{cat: catState, name: "merge into a deleted record", method: "POST", path: "/api/patients/" + w.deleted + "/merge", token: w.clin, body: ok, want: []int{409}},
		hostile{cat: catState, name: "merge an unknown record", method: "POST", path: mp, token: w.clin,
			body: `{"duplicateId":"9c1a4f0e-0000-4000-8000-000000000001","reason":"same person, registered twice"}`, want: []int{404}},
		hostile{cat: catState, name: "merge a restricted record without a grant", method: "POST", path: mp, token: w.clin,
			body: `{"duplicateId":"` + w.restricted + `","reason":"same person, registered twice"}`, want: []int{403}},
		hostile{cat: catState, name: "unmerge a record that is not merged", method: "POST", path: up, token: w.clin, body: `{"reason":"not the same person"}`, want: []int{409}},
		hostile{cat: catState, name: "merge query string", method: "POST", path: mp + "?force=true", token: w.clin, body: ok, want: []int{400}},
		hostile{cat: catState, name: "unmerge query string", method: "POST", path: up + "?reason=x", token: w.clin, body: `{"reason":"not the same person"}`, want: []int{400}},
	)
	return out
}
