package main

import (
	"github.com/pms/pms/pkg/platform/errs"
	httptransport "github.com/pms/pms/transport/http"
)

// consoleCases are the hostile requests of the staff console (issue 18): the cookie session
// of /auth/login, /auth/refresh and /auth/logout ridden cross-site, without or with a forged
// opt-in header, with odd bodies or no cookie, and the console's paths beyond its asset
// list. A live refresh token rides in the cookie of the refused ones: the suite's check that
// no rejected request changes data proves none of them rotated or ended it.
func (w *attackWorld) consoleCases() []hostile {
	live := httptransport.RefreshCookie + "=" + w.clin2Refresh
	opt := httptransport.HeaderRefreshCookie
	var out []hostile
	for _, p := range []string{"/auth/refresh", "/auth/logout"} {
		out = append(out,
			// The cookie alone is never read: a cross-site form's POST is the JSON route's 415.
			hostile{cat: catOthers, name: p + " cookie without the opt-in header", method: "POST", path: p, ctype: "-", headers: []string{"Cookie", live}, want: []int{415}},
			hostile{cat: catOthers, name: p + " cookie with a form body", method: "POST", path: p, ctype: "application/x-www-form-urlencoded", body: "a=b", headers: []string{"Cookie", live}, want: []int{415}},
			hostile{cat: catOthers, name: p + " cookie from another origin", method: "POST", path: p, ctype: "-", headers: []string{opt, "1", "Cookie", live, "Origin", "https://evil.example"}, want: []int{403}, check: wantWord(errs.PermissionDenied)},
			hostile{cat: catOthers, name: p + " cookie from a null origin", method: "POST", path: p, ctype: "-", headers: []string{opt, "1", "Cookie", live, "Origin", "null"}, want: []int{403}},
			hostile{cat: catOthers, name: p + " cookie from another site", method: "POST", path: p, ctype: "-", headers: []string{opt, "1", "Cookie", live, "Sec-Fetch-Site", "cross-site"}, want: []int{403}},
			hostile{cat: catOthers, name: p + " opt-in header not 1", method: "POST", path: p, ctype: "-", headers: []string{opt, "yes", "Cookie", live}, want: []int{400}},
			hostile{cat: catOthers, name: p + " opt-in header twice", method: "POST", path: p, ctype: "-", headers: []string{opt, "1", opt, "1", "Cookie", live}, want: []int{400}},
			hostile{cat: catOthers, name: p + " cookie with a body naming a token", method: "POST", path: p, body: `{"refreshToken":"` + w.clin2Refresh + `"}`, headers: []string{opt, "1", "Cookie", live}, want: []int{400}},
			hostile{cat: catOthers, name: p + " cookie with a text body", method: "POST", path: p, ctype: "text/plain", body: "{}", headers: []string{opt, "1", "Cookie", live}, want: []int{415}},
			hostile{cat: catOthers, name: p + " cookie with a query", method: "POST", path: p + "?x=1", ctype: "-", headers: []string{opt, "1", "Cookie", live}, want: []int{400}},
			hostile{cat: catOthers, name: p + " two session cookies", method: "POST", path: p, ctype: "-", headers: []string{opt, "1", "Cookie", live + "; " + httptransport.RefreshCookie + "=planted"}, want: []int{400}},
		)
	}
	out = append(out,
		hostile{cat: catOthers, name: "refresh opted in without a cookie", method: "POST", path: "/auth/refresh", ctype: "-", headers: []string{opt, "1"}, want: []int{401}, check: wantWord(errs.Unauthenticated)},
		hostile{cat: catOthers, name: "refresh opted in with an unknown cookie", method: "POST", path: "/auth/refresh", ctype: "-", headers: []string{opt, "1", "Cookie", httptransport.RefreshCookie + "=" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, want: []int{401}},
		hostile{cat: catOthers, name: "refresh opted in with an access token as the cookie", method: "POST", path: "/auth/refresh", ctype: "-", headers: []string{opt, "1", "Cookie", httptransport.RefreshCookie + "=" + w.clin}, want: []int{400, 401}},
		hostile{cat: catOthers, name: "login opted in from another origin", method: "POST", path: "/auth/login", body: `{"email":"clinician2@example.org","password":"` + matrixPassword + `"}`,
			headers: []string{opt, "1", "Origin", "https://evil.example"}, want: []int{403}},
		hostile{cat: catOthers, name: "MFA login opted in from another site", method: "POST", path: "/auth/login/mfa", body: `{"challenge":"x","code":"123456"}`,
			headers: []string{opt, "1", "Sec-Fetch-Site", "cross-site"}, want: []int{403}},
	)
	// The console serves its listed assets only, GET and HEAD only.
	for _, p := range []string{"/console", "/console/x.js", "/console/app.js/", "/console/../etc/passwd", "/console/%2e%2e/go.mod", "/console/assets/app.js",
		"/console/index.html", "/console/APP.JS", "/index.html", "/console//app.js"} {
		out = append(out, hostile{cat: catRoutes, name: "GET " + p, method: "GET", path: p, want: []int{404}})
	}
	for _, p := range []string{"/", "/console/app.js"} {
		out = append(out, hostile{cat: catRoutes, name: "POST " + p, method: "POST", path: p, body: "{}", want: []int{405}},
			hostile{cat: catRoutes, name: "DELETE " + p, method: "DELETE", path: p, token: w.admin, want: []int{405}})
	}
	return out
}
