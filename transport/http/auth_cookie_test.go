package httptransport

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/pms/pms/pkg/auth"
)

// refreshCookieOf returns the pms_refresh Set-Cookie of resp, or nil.
func refreshCookieOf(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == RefreshCookie {
			return c
		}
	}
	return nil
}

// TestCookieSession: a login opted in with X-PMS-Refresh-Cookie answers the refresh token in
// an HttpOnly, SameSite=Strict cookie on /auth (not Secure on loopback plain HTTP, Secure for
// any other host) and a blank one in the body; refresh and logout read the cookie; a refresh
// rotates it; logout deletes it and ends the session.
func TestCookieSession(t *testing.T) {
	e := newAuthEnv(t, auth.ThrottleOptions{})
	login := `{"email":"clin@example.org","password":"` + authPassword + `"}`
	resp, b := e.do(t, "POST", "/login", "", login, "Content-Type", "application/json", HeaderRefreshCookie, "1")
	var pair auth.TokenPair
	if resp.StatusCode != 200 || json.Unmarshal(b, &pair) != nil || pair.Token == "" || pair.RefreshToken != "" {
		t.Fatalf("login: %d %s", resp.StatusCode, b)
	}
	c := refreshCookieOf(resp)
	if c == nil || c.Value == "" || !c.HttpOnly || c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/auth" || c.MaxAge != refreshCookieMaxAge {
		t.Fatalf("login cookie = %+v (%v)", c, resp.Header.Values("Set-Cookie"))
	}
	first := c.Value

	refresh := func(cookie string, headers ...string) (*http.Response, []byte) {
		return e.do(t, "POST", "/refresh", "", "", append([]string{HeaderRefreshCookie, "1", "Cookie", RefreshCookie + "=" + cookie}, headers...)...)
	}
	resp, b = refresh(first, "Origin", e.srv.URL, "Sec-Fetch-Site", "same-origin")
	if resp.StatusCode != 200 || json.Unmarshal(b, &pair) != nil || pair.RefreshToken != "" || pair.Token == "" {
		t.Fatalf("refresh: %d %s", resp.StatusCode, b)
	}
	second := refreshCookieOf(resp)
	if second == nil || second.Value == first || !second.HttpOnly {
		t.Fatalf("refresh cookie = %+v", second)
	}
	// "{}" is accepted as an empty body.
	resp, b = e.do(t, "POST", "/refresh", "", "{}", "Content-Type", "application/json", HeaderRefreshCookie, "1", "Cookie", RefreshCookie+"="+second.Value)
	third := refreshCookieOf(resp)
	if resp.StatusCode != 200 || third == nil {
		t.Fatalf("refresh with {}: %d %s", resp.StatusCode, b)
	}

	// A host other than loopback gets a Secure cookie.
	req, _ := http.NewRequest("POST", e.srv.URL+"/login", strings.NewReader(login))
	req.Host = "pms.example.org"
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderRefreshCookie, "1")
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if c := refreshCookieOf(r2); r2.StatusCode != 200 || c == nil || !c.Secure {
		t.Fatalf("login as pms.example.org: %d %+v", r2.StatusCode, c)
	}

	// Logout deletes the cookie and ends the session: the cookie is refused afterwards.
	resp, b = e.do(t, "POST", "/logout", "", "", HeaderRefreshCookie, "1", "Cookie", RefreshCookie+"="+third.Value)
	if gone := refreshCookieOf(resp); resp.StatusCode != 204 || gone == nil || gone.MaxAge >= 0 || gone.Value != "" {
		t.Fatalf("logout: %d %v %s", resp.StatusCode, resp.Header.Values("Set-Cookie"), b)
	}
	if resp, b := refresh(third.Value); resp.StatusCode != 401 || errWordOf(b) != "unauthenticated" {
		t.Fatalf("refresh after logout: %d %s", resp.StatusCode, b)
	}

	// The JSON body keeps working as before, with no cookie.
	p := e.login(t, "clin@example.org")
	resp, b = e.do(t, "POST", "/refresh", "", `{"refreshToken":"`+p.RefreshToken+`"}`, "Content-Type", "application/json")
	if resp.StatusCode != 200 || refreshCookieOf(resp) != nil || !strings.Contains(string(b), `"refreshToken":"`) || strings.Contains(string(b), `"refreshToken":""`) {
		t.Fatalf("JSON refresh: %d %s", resp.StatusCode, b)
	}
}

// TestCookieSessionCSRF: a request riding on the cookie without the opt-in header, from
// another origin or site, with a malformed header or a body with fields is refused, and the
// refused requests leave the session as it was (its cookie still refreshes once).
func TestCookieSessionCSRF(t *testing.T) {
	e := newAuthEnv(t, auth.ThrottleOptions{})
	resp, b := e.do(t, "POST", "/login", "", `{"email":"clin@example.org","password":"`+authPassword+`"}`, "Content-Type", "application/json", HeaderRefreshCookie, "1")
	c := refreshCookieOf(resp)
	if resp.StatusCode != 200 || c == nil {
		t.Fatalf("login: %d %s", resp.StatusCode, b)
	}
	cookie := RefreshCookie + "=" + c.Value
	for _, tc := range []struct {
		name    string
		path    string
		body    string
		status  int
		word    string
		headers []string
	}{
		{"no opt-in header", "/refresh", "", 415, "unsupported_media_type", []string{"Cookie", cookie}},
		{"no opt-in header, form body", "/logout", "a=b", 415, "unsupported_media_type", []string{"Cookie", cookie, "Content-Type", "application/x-www-form-urlencoded"}},
		{"another origin", "/refresh", "", 403, "permission_denied", []string{HeaderRefreshCookie, "1", "Cookie", cookie, "Origin", "https://evil.example"}},
		{"another origin on logout", "/logout", "", 403, "permission_denied", []string{HeaderRefreshCookie, "1", "Cookie", cookie, "Origin", "https://evil.example"}},
		{"null origin", "/refresh", "", 403, "permission_denied", []string{HeaderRefreshCookie, "1", "Cookie", cookie, "Origin", "null"}},
		{"another site", "/refresh", "", 403, "permission_denied", []string{HeaderRefreshCookie, "1", "Cookie", cookie, "Sec-Fetch-Site", "cross-site"}},
		{"same site, other origin", "/logout", "", 403, "permission_denied", []string{HeaderRefreshCookie, "1", "Cookie", cookie, "Sec-Fetch-Site", "same-site"}},
		{"header not 1", "/refresh", "", 400, "invalid_argument", []string{HeaderRefreshCookie, "true", "Cookie", cookie}},
		{"body with a field", "/refresh", `{"refreshToken":"x"}`, 400, "invalid_argument", []string{HeaderRefreshCookie, "1", "Cookie", cookie, "Content-Type", "application/json"}},
		{"no cookie", "/refresh", "", 401, "unauthenticated", []string{HeaderRefreshCookie, "1"}},
		{"two cookies", "/refresh", "", 400, "invalid_argument", []string{HeaderRefreshCookie, "1", "Cookie", cookie + "; " + RefreshCookie + "=planted"}},
		{"login from another origin", "/login", `{"email":"clin@example.org","password":"` + authPassword + `"}`, 403, "permission_denied",
			[]string{HeaderRefreshCookie, "1", "Origin", "https://evil.example", "Content-Type", "application/json"}},
	} {
		resp, b := e.do(t, "POST", tc.path, "", tc.body, tc.headers...)
		if resp.StatusCode != tc.status || errWordOf(b) != tc.word || refreshCookieOf(resp) != nil {
			t.Errorf("%s: %d %s %v, want %d %s and no cookie", tc.name, resp.StatusCode, b, resp.Header.Values("Set-Cookie"), tc.status, tc.word)
		}
	}
	if resp, b := e.do(t, "POST", "/refresh", "", "", HeaderRefreshCookie, "1", "Cookie", cookie); resp.StatusCode != 200 {
		t.Fatalf("the session after the refused requests: %d %s", resp.StatusCode, b)
	}
}

func errWordOf(b []byte) string {
	var e struct{ Error string }
	_ = json.Unmarshal(b, &e)
	return e.Error
}
