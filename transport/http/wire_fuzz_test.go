package httptransport

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-kit/log"
	"github.com/pms/pms/pkg/analytics"
	"github.com/pms/pms/pkg/auth"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
	"github.com/pms/pms/pkg/platform/ratelimit"
	"github.com/pms/pms/transport/wire"
)

// jsonProbe has a field of every kind the request bodies use, so FuzzDecodeJSON reaches each
// of encoding/json's paths through DecodeJSON.
type jsonProbe struct {
	S   string           `json:"s"`
	I   int              `json:"i"`
	I64 int64            `json:"i64"`
	U8  uint8            `json:"u8"`
	F   float64          `json:"f"`
	B   *bool            `json:"b,omitempty"`
	L   []string         `json:"l"`
	M   map[string]int64 `json:"m"`
	At  time.Time        `json:"at"`
	N   []jsonProbeLine  `json:"n"`
	jsonProbeEmbedded
}

type jsonProbeLine struct {
	D string `json:"d"`
	Q int64  `json:"q"`
}

type jsonProbeEmbedded struct {
	V *int64 `json:"version,omitempty"`
}

// probeRequest frames body as flags say: known length, unknown length, a Content-Length
// over the limit, or no body.
func probeRequest(contentType string, body []byte, flags uint8) *http.Request {
	r := &http.Request{Method: "POST", URL: &url.URL{Path: "/"}, Header: http.Header{"Content-Type": {contentType}}}
	switch flags % 4 {
	case 0:
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	case 1:
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), -1
	case 2:
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), wire.MaxBodyBytes+1
	}
	return r
}

// FuzzDecodeJSON drives the generic body decoder every JSON route and every Kafka command
// uses. Errors are 4xx contract errors; a body over the limit is always 413; a body accepted
// was one UTF-8 JSON object under a JSON content type, and the value decoded re-encodes to a
// body that decodes to the same value.
func FuzzDecodeJSON(f *testing.F) {
	for i, s := range append([]string{
		`{"s":"x","i":-1,"i64":9223372036854775807,"u8":255,"f":1.5e300,"b":false,"l":["a",""],"m":{"k":1},"at":"2026-01-02T03:04:05.123456789+05:30","n":[{"d":"x","q":2}],"version":3}`,
		`{"u8":256}`, `{"i":1.5}`, `{"f":1e999}`, `{"at":"0000-01-01T00:00:00+01:00"}`, `{"at":"9999-12-31T23:59:59-23:59"}`,
		`{"at":"2026-13-01T00:00:00Z"}`, `{"m":{"\u0000":1}}`, `{"l":[1]}`, `{"n":[{"q":"1"}]}`, `{"n":{"d":"x"}}`, `{"version":null}`,
		`{"S":"case","I64":1}`, `{"f":-0}`, `{"s":"\udc00\ud800"}`, "{\"s\":\"\x00\"}", "{\"s\":\"a\"}\x00", ` {"s":"x"} `,
	}, fuzzSeeds...) {
		f.Add("application/json", []byte(s), uint8(i))
	}
	f.Add("application/json; charset=utf-8", []byte(`{}`), uint8(3))
	f.Add("application/json; charset=utf-16", []byte(`{}`), uint8(0))
	f.Add("application/json; charset=\"utf-8\"; x=1", []byte(`{}`), uint8(0))
	f.Add("", []byte(`{}`), uint8(1))
	f.Fuzz(func(t *testing.T, contentType string, body []byte, flags uint8) {
		v, err := DecodeJSON[jsonProbe](probeRequest(contentType, body, flags))
		checkDecodeError(t, err)
		if flags%4 == 2 && checkJSONContentType(contentType) == nil && errs.KindOf(err) != errs.PayloadTooLarge {
			t.Fatalf("Content-Length over the limit: %v", err)
		}
		if err != nil {
			return
		}
		if checkJSONContentType(contentType) != nil || !utf8.Valid(body) || !bytes.HasPrefix(bytes.TrimLeft(body, " \t\r\n"), []byte("{")) {
			t.Fatalf("accepted %q as %q", body, contentType)
		}
		b, merr := json.Marshal(v)
		if merr != nil {
			t.Fatalf("accepted %q, which does not encode: %v", body, merr)
		}
		again, err := DecodeJSON[jsonProbe](probeRequest("application/json", b, 0))
		b2, _ := json.Marshal(again)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("%q decoded and re-encoded as %s, which decodes as %s, %v", body, b, b2, err)
		}
	})
}

// FuzzRequestHeaders drives the header readers every route shares: If-Match,
// Idempotency-Key, the bearer token, X-Forwarded-For against the trusted proxies, and
// X-Request-ID.
func FuzzRequestHeaders(f *testing.F) {
	for _, s := range [][5]string{
		{`"3"`, "key-1", "Bearer abc.def.ghi", "203.0.113.7, 10.0.0.1", "req-1"},
		{`W/"9223372036854775807"`, strings.Repeat("k", 200), "bearer   tok  ", "", strings.Repeat("r", 128)},
		{`W/"9223372036854775808"`, strings.Repeat("k", 201), "Basic abc", "::ffff:1.2.3.4%eth0", strings.Repeat("r", 129)},
		{"*", " ", "Bearer", "bogus,,", "a b"},
		{`"+1"`, "\x00", "Bearer \t", "fe80::1%zone", "\xff"},
		{`W/3`, "é", "BEARER x y", strings.Repeat("1.1.1.1,", 100), ""},
		{`""`, "\x7f", " Bearer x", "127.0.0.1", "."},
		{"-0", "k\r\n", "Bearer\x00x", "[::1]", "req:1"},
		{"", "", "Bearer 0k\xf4\xac\x9b\xdb<o", "", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4], "127.0.0.1:5000")
	}
	f.Add("", "", "", "203.0.113.9", "", "[::1]:1")
	f.Add("", "", "", "203.0.113.9", "", "garbage")
	f.Fuzz(func(t *testing.T, ifMatch, key, authorization, xff, requestID, remote string) {
		h := http.Header{"If-Match": {ifMatch}, "Idempotency-Key": {key}}
		if v, err := ifMatchVersion(h); err != nil {
			checkDecodeError(t, err)
		} else if m := strings.TrimSpace(ifMatch); v < 0 || (v == 0) != (m == "" || m == "*") {
			t.Fatalf("If-Match %q read as %d", ifMatch, v)
		} else if v > 0 {
			if again, err := ifMatchVersion(http.Header{"If-Match": {wire.ETag(v)}}); err != nil || again != v {
				t.Fatalf("version %d from %q does not round-trip: %d, %v", v, ifMatch, again, err)
			}
		}
		if k, err := idempotencyKey(h); err != nil {
			checkDecodeError(t, err)
		} else {
			checkKey(t, fuzzInput{header: key}, k)
		}

		r := &http.Request{Header: http.Header{"Authorization": {authorization}, "X-Forwarded-For": {xff}}, RemoteAddr: remote}
		if tok := authz.Token(bearerTokenToContext(context.Background(), r)); tok != "" {
			scheme, _, _ := strings.Cut(strings.TrimSpace(authorization), " ")
			if !strings.EqualFold(scheme, "Bearer") || !b64tokenSyntax.MatchString(tok) || !strings.Contains(authorization, tok) {
				t.Fatalf("Authorization %q gave token %q", authorization, tok)
			}
		}
		if a := clientAddr(r, DefaultTrustedProxies); a != "" {
			addr, err := netip.ParseAddr(a)
			if err != nil || addr.Zone() != "" || addr.Is4In6() {
				t.Fatalf("client address %q from peer %q and X-Forwarded-For %q", a, remote, xff)
			}
		}
		id := observe.RequestIDOrNew(requestID)
		if len(id) == 0 || len(id) > 128 || strings.Trim(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-") != "" {
			t.Fatalf("request id %q became %q", requestID, id)
		}
	})
}

// b64tokenSyntax is RFC 6750's b64token: the only bearer tokens carried (and forwarded).
var b64tokenSyntax = regexp.MustCompile(`^[A-Za-z0-9._~+/-]+=*$`)

// FuzzClientDecoders drives what the HTTP clients read from a server: the error body (any
// status, any body, any Retry-After) always becomes a contract error of a known kind with a
// message; a page's body and Link header never panic the client.
func FuzzClientDecoders(f *testing.F) {
	f.Add(400, []byte(`{"error":"conflict","message":"m","fields":{"a":"b"},"requestId":"r"}`), "", `</p?pageToken=x>; rel="next"`)
	f.Add(429, []byte(`{"error":"rate_limited"}`), "7", "")
	f.Add(429, []byte(``), "Mon, 02 Jan 2006 15:04:05 GMT", "")
	f.Add(429, []byte(``), "-1", "")
	f.Add(429, []byte(``), "99999999999999999999", "")
	f.Add(502, []byte(`<html>`), "", `<>; rel="next"`)
	f.Add(0, []byte(`{"error":"internal","message":""}`), "", `<%zz>; rel="next"`)
	f.Add(-1, []byte(`{"error":""}`), "", `,,;;<`)
	f.Add(200, []byte(`[{"id":"x","version":1}]`), "", `</patients?pageToken=a%2Bb>;rel="next", <x>`)
	f.Add(200, []byte(`[`+strings.Repeat(`[`, 10001)), "", "")
	f.Add(200, []byte(`null`), "", "")
	f.Add(999, []byte(`{"error":"not_found","fields":null}`), "", "")
	f.Fuzz(func(t *testing.T, status int, body []byte, retryAfter, link string) {
		h := http.Header{"Retry-After": {retryAfter}, "Link": {link}, "X-Total-Count": {retryAfter}}
		resp := func() *http.Response {
			return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(bytes.NewReader(body))}
		}
		e := errs.As(DecodeError(resp()))
		if e == nil || !e.Kind.Known() || e.Message == "" {
			t.Fatalf("status %d body %q decoded as %#v", status, body, e)
		}
		if e.Kind == errs.RateLimited && e.RetryAfter < time.Second {
			t.Fatalf("Retry-After %q read as %v", retryAfter, e.RetryAfter)
		}
		var sent wire.ErrorBody
		if json.Unmarshal(body, &sent) == nil && sent.Error.Known() && e.Kind != sent.Error {
			t.Fatalf("error word %q decoded as %q", sent.Error, e.Kind)
		}
		pg, err := decodePageResponse(resp())
		if err != nil && errs.KindOf(err) != errs.Internal {
			t.Fatalf("a bad page is the server's fault, got %v", err)
		}
		if err == nil && pg.NextPageToken != nextPageToken(h) {
			t.Fatalf("page token %q from %q", pg.NextPageToken, link)
		}
	})
}

// stubAuth is an auth.Service that accepts everything with zero values.
type stubAuth struct{}

func (stubAuth) Login(context.Context, auth.LoginRequest) (auth.TokenPair, error) {
	return auth.TokenPair{}, nil
}
func (stubAuth) Validate(context.Context) (auth.Validation, error) { return auth.Validation{}, nil }
func (stubAuth) Refresh(context.Context, auth.RefreshRequest) (auth.TokenPair, error) {
	return auth.TokenPair{}, nil
}
func (stubAuth) Logout(context.Context, auth.LogoutRequest) error { return nil }
func (stubAuth) JWKS(context.Context) (authz.JWKS, error)         { return authz.JWKS{}, nil }
func (stubAuth) CreateUser(_ context.Context, r auth.CreateUserRequest) (auth.CreatedUser, error) {
	return auth.CreatedUser{User: auth.User{ID: testID, Email: r.Email, Role: r.Role}}, nil
}
func (stubAuth) SetPassword(context.Context, auth.SetPasswordRequest) error       { return nil }
func (stubAuth) ChangePassword(context.Context, auth.ChangePasswordRequest) error { return nil }
func (stubAuth) ListSessions(context.Context) ([]auth.Session, error)             { return nil, nil }
func (stubAuth) DeleteSession(context.Context, auth.DeleteSessionRequest) error   { return nil }
func (stubAuth) LogoutAll(context.Context) error                                  { return nil }
func (stubAuth) ResetPassword(context.Context, auth.ResetPasswordRequest) (auth.ResetPassword, error) {
	return auth.ResetPassword{}, nil
}
func (stubAuth) ListUsers(context.Context) ([]auth.User, error) { return nil, nil }
func (stubAuth) GetUser(_ context.Context, id string) (auth.User, error) {
	return auth.User{ID: id}, nil
}
func (stubAuth) UpdateUser(_ context.Context, r auth.UpdateUserRequest) (auth.User, error) {
	return auth.User{ID: r.ID}, nil
}
func (stubAuth) Audit(context.Context, auth.AuditQuery) ([]auth.AuditEntry, error) { return nil, nil }
func (stubAuth) VerifyAudit(context.Context) (audit.Report, error)                 { return audit.Report{}, nil }
func (stubAuth) EnrolTOTP(context.Context) (auth.TOTPEnrolment, error) {
	return auth.TOTPEnrolment{}, nil
}
func (stubAuth) ConfirmTOTP(context.Context, auth.ConfirmTOTPRequest) (auth.RecoveryCodes, error) {
	return auth.RecoveryCodes{}, nil
}
func (stubAuth) DisableTOTP(context.Context, auth.DisableTOTPRequest) error { return nil }
func (stubAuth) LoginMFA(context.Context, auth.LoginMFARequest) (auth.TokenPair, error) {
	return auth.TokenPair{}, nil
}
func (stubAuth) LoginEnrolTOTP(context.Context, auth.ChallengeEnrolRequest) (auth.TOTPEnrolment, error) {
	return auth.TOTPEnrolment{}, nil
}
func (stubAuth) LoginConfirmTOTP(context.Context, auth.ChallengeConfirmRequest) (auth.MFALogin, error) {
	return auth.MFALogin{}, nil
}

// stubAnalytics is an analytics.Service that answers an empty summary.
type stubAnalytics struct{}

func (stubAnalytics) GetSummary(context.Context, analytics.SummaryQuery) (analytics.Summary, error) {
	return analytics.Summary{}, nil
}

func (stubAnalytics) VerifyAudit(context.Context) (audit.Report, error) {
	return audit.Report{Service: "analytics", OK: true}, nil
}

// fuzzHandlers are the four services' real handlers over stub services that accept every
// request, anonymous and without rate limits, so that any 5xx is the transport's own.
func fuzzHandlers() []http.Handler {
	eo := patient.EndpointOptions{Guard: authz.AllowAnonymous(), DefaultLimit: ratelimit.Config{Rate: -1}}
	o := Options{Logger: log.NewNopLogger()}
	return []http.Handler{
		NewPatientHandler(patient.NewEndpoints(&stubService{patient: testPatient, page: patient.Page{NextPageToken: "n"}}, eo), o),
		NewBillingHandler(billing.NewEndpoints(&stubBilling{page: billing.InvoicePage{NextPageToken: "n"}}, eo), Options{Logger: o.Logger, Prefix: "/api/billing"}),
		NewAuthHandler(auth.NewEndpoints(stubAuth{}, eo), o),
		NewAnalyticsHandler(analytics.NewEndpoints(stubAnalytics{}, eo), o),
	}
}

// FuzzHandlers sends arbitrary requests (method, path and query, headers, body) through the
// full HTTP stack of each service: the middleware, the router, the decoders and encoders.
// The services behind accept everything, so every answer must be a success or a 4xx, and an
// error must be the contract's body, with a request id, never a 5xx or a panic.
func FuzzHandlers(f *testing.F) {
	for _, s := range []struct {
		svc                  uint8
		method, target, ct   string
		header, body, remote string
	}{
		{0, "POST", "/patients", "application/json", "k", fuzzSeeds[0], "127.0.0.1:1"},
		{0, "PUT", "/patients/" + testID, "application/json", `"2"`, fuzzSeeds[1], "[::1]:1"},
		{0, "DELETE", "/patients/" + testID + "?x", "", "*", "", "198.51.100.1:1"},
		{0, "GET", "/patients?q=a&limit=500&pageToken=x", "", "", "", ""},
		{0, "GET", "/audit?from=2026-01-01&to=9999-12-31", "", "", "", ""},
		{0, "GET", "/patients/" + testID + "/billing-account", "", "", "", ""},
		{0, "OPTIONS", "/patients//history", "", "", "", ""},
		{0, "POST", "/patients/" + testID + "/break-glass", "application/json", "", `{"reason":"unconscious in A&E"}`, ""},
		{0, "PUT", "/patients/" + testID + "/confidentiality", "application/json", "", `{"confidentiality":"restricted"}`, ""},
		{0, "GET", "/audit/break-glass?patientId=x&from=2026-01-01", "", "", "", ""},
		{1, "POST", "/api/billing/invoices/" + invID + "/payments", "application/json", "k", `{"amount":1,"method":"cash"}`, ""},
		{1, "POST", "/api/billing/invoices/" + invID + "/void", "application/json", "", "{}", ""},
		{1, "GET", "/api/billing/invoices?status=open&limit=0", "", "", "", ""},
		{1, "GET", "/api/billing/accounts/%2e%2e", "", "", "", ""},
		{2, "POST", "/login", "application/json", "", `{"email":"a@b.c","password":"p"}`, ""},
		{2, "PATCH", "/users/u-1", "application/json", "", `{"disabled":true}`, ""},
		{2, "GET", "/users/audit?limit=1001", "", "", "", ""},
		{2, "GET", "/.well-known/jwks.json", "", "", "", ""},
		{2, "POST", "/mfa/totp", "", "", "", ""},
		{2, "POST", "/mfa/totp/confirm", "application/json", "", `{"code":"123456"}`, ""},
		{2, "POST", "/mfa/totp/disable", "application/json", "", `{"recoveryCode":"AAAA-BBBB-CCCC-DDDD"}`, ""},
		{2, "POST", "/login/mfa", "application/json", "", `{"challenge":"c","code":123456}`, ""},
		{2, "POST", "/login/mfa/enrol", "application/json", "", `{"challenge":"c"}`, ""},
		{2, "POST", "/login/mfa/confirm", "application/json", "", `{"challenge":"c","code":"1"}`, ""},
		{3, "GET", "/summary?from=2026-01-01&to=2026-01-31", "", "", "", ""},
		{3, "GET", "/summary?from=2026-02-30", "", "\x00", "", ""},
		{3, "", "", "", "", "", ""},
		{3, "GET", "*", "", "", "", ""},
	} {
		f.Add(s.svc, s.method, s.target, s.ct, s.header, []byte(s.body), s.remote)
	}
	handlers := fuzzHandlers()
	f.Fuzz(func(t *testing.T, svc uint8, method, target, contentType, header string, body []byte, remote string) {
		path, query, _ := strings.Cut(target, "?")
		r := (&http.Request{
			Method: method, URL: &url.URL{Path: path, RawQuery: query}, Host: "pms.test", RemoteAddr: remote,
			Header: http.Header{"Content-Type": {contentType}, "If-Match": {header}, "Idempotency-Key": {header},
				"X-Request-Id": {header}, "X-Forwarded-For": {header}, "Authorization": {"Bearer " + header}},
			Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)),
		}).WithContext(context.Background())
		rec := httptest.NewRecorder()
		handlers[int(svc)%len(handlers)].ServeHTTP(rec, r)
		if rec.Code >= 500 || rec.Code < 200 {
			t.Fatalf("%s %q: %d %s", method, target, rec.Code, rec.Body.String())
		}
		if rec.Header().Get(observe.RequestIDHeader) == "" || rec.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("%s %q: headers %v", method, target, rec.Header())
		}
		if rec.Code >= 400 {
			var eb wire.ErrorBody
			if json.Unmarshal(rec.Body.Bytes(), &eb) != nil || StatusOf(eb.Error) != rec.Code || eb.Message == "" || eb.RequestID == "" {
				t.Fatalf("%s %q: %d %q is not a contract error", method, target, rec.Code, rec.Body.String())
			}
		}
	})
}
