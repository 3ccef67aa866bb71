package httptransport

// Tests of what every service's routes share (server.go, middleware.go), through the
// patient handler of patient_test.go.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/go-kit/log"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
	"github.com/pms/pms/transport/wire"
)

func TestIfMatchForms(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "*": 0, `"3"`: 3, `W/"3"`: 3, "3": 3, ` "12" `: 12} {
		h := http.Header{}
		if in != "" {
			h.Set("If-Match", in)
		}
		if got, err := ifMatchVersion(h); err != nil || got != want {
			t.Errorf("If-Match %q = %d, %v; want %d", in, got, err, want)
		}
	}
}

func TestRequestID(t *testing.T) {
	e := newEnv(t, Options{})
	resp, _ := e.do(t, "GET", "/patients/"+testID, nil, observe.RequestIDHeader, "req-123.abc")
	if got := resp.Header.Get(observe.RequestIDHeader); got != "req-123.abc" {
		t.Errorf("echoed id = %q", got)
	}
	if _, _, ctx := e.stub.seen(); observe.RequestID(ctx) != "req-123.abc" || observe.Transport(ctx) != "http" {
		t.Errorf("service ctx id %q transport %q", observe.RequestID(ctx), observe.Transport(ctx))
	}

	isNew := func(t *testing.T, got, sent string) {
		t.Helper()
		if got == sent || len(got) != 32 || observe.RequestIDOrNew(got) != got {
			t.Errorf("request id %q (sent %q), want a new one", got, sent)
		}
	}
	resp, _ = e.do(t, "GET", "/patients/"+testID, nil)
	isNew(t, resp.Header.Get(observe.RequestIDHeader), "")

	long := strings.Repeat("a", 500)
	resp, b := e.do(t, "GET", "/nowhere", nil, observe.RequestIDHeader, long)
	isNew(t, checkError(t, resp, b, 404, errs.NotFound).RequestID, long)

	// net/http refuses a header holding a newline on the wire, so drive the handler directly.
	for _, hostile := range []string{"abc\ndef", "a b", "x\x00y"} {
		req := httptest.NewRequest("GET", "/patients/"+testID, nil)
		req.Header[observe.RequestIDHeader] = []string{hostile}
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		isNew(t, rec.Header().Get(observe.RequestIDHeader), hostile)
	}
}

func TestUnknownRouteAndMethod(t *testing.T) {
	e := newEnv(t, Options{})
	for _, path := range []string{"/nope", "/patients/", "/patients/" + testID + "/history/x", "//patients", "/Patients"} {
		resp, b := e.do(t, "GET", path, nil)
		checkError(t, resp, b, 404, errs.NotFound)
	}
	for _, c := range []struct{ method, path, allow string }{
		{"PATCH", "/patients/" + testID, "GET, PUT, DELETE"},
		{"POST", "/patients/" + testID + "/history", "GET"},
		{"DELETE", "/patients", "GET, POST"},
		{"POST", "/audit", "GET"},
	} {
		resp, b := e.do(t, c.method, c.path, strings.NewReader("{}"), jsonCT...)
		checkError(t, resp, b, 405, errs.MethodNotAllowed)
		if got := resp.Header.Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow = %q, want %q", c.method, c.path, got, c.allow)
		}
	}
	if n, _, _ := e.stub.seen(); n != 0 {
		t.Errorf("the service was called %d times", n)
	}
	// Paths are not cleaned into redirects: a dot segment is an id for the service to judge.
	resp, b := e.do(t, "GET", "/patients/../audit", nil)
	checkError(t, resp, b, 404, errs.NotFound)
	if resp, _ := e.do(t, "GET", "/patients/..", nil); resp.StatusCode != 200 {
		t.Errorf("dot segment: status %d", resp.StatusCode)
	}
	if _, last, _ := e.stub.seen(); last != ".." {
		t.Errorf("service got id %v", last)
	}
}

func TestClientAddress(t *testing.T) {
	cases := []struct {
		name    string
		trusted []netip.Prefix
		remote  string
		xff     []string
		want    string
	}{
		{"loopback proxy: nearest untrusted hop", nil, "127.0.0.1:5000", []string{"bogus, 203.0.113.7, 10.0.0.1"}, "10.0.0.1"},
		{"spoofed left-hand hop ignored", nil, "127.0.0.1:5000", []string{"1.2.3.4, 203.0.113.7"}, "203.0.113.7"},
		{"chain of trusted proxies", nil, "127.0.0.1:5000", []string{"203.0.113.7, 127.0.0.2"}, "203.0.113.7"},
		{"second header line", nil, "[::1]:5000", []string{"unknown", "2001:db8::1"}, "2001:db8::1"},
		{"no forwarded", nil, "127.0.0.1:5000", nil, "127.0.0.1"},
		{"no valid forwarded", nil, "127.0.0.1:5000", []string{"garbage"}, "127.0.0.1"},
		{"untrusted peer", nil, "198.51.100.1:5000", []string{"203.0.113.7"}, "198.51.100.1"},
		{"trust nobody", []netip.Prefix{}, "127.0.0.1:5000", []string{"203.0.113.7"}, "127.0.0.1"},
		{"custom proxy", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, "10.1.2.3:1", []string{"203.0.113.8"}, "203.0.113.8"},
		{"mapped v4", nil, "[::ffff:127.0.0.1]:1", []string{"::ffff:203.0.113.9"}, "203.0.113.9"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, Options{TrustedProxies: c.trusted})
			req := httptest.NewRequest("GET", "/patients/"+testID, nil)
			req.RemoteAddr = c.remote
			for _, v := range c.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			e.handler.ServeHTTP(httptest.NewRecorder(), req)
			if _, _, ctx := e.stub.seen(); observe.ClientAddr(ctx) != c.want {
				t.Errorf("client address %q, want %q", observe.ClientAddr(ctx), c.want)
			}
		})
	}
}

func TestPanicIsContract500(t *testing.T) {
	var logs bytes.Buffer
	e := newEnv(t, Options{Logger: log.NewLogfmtLogger(&logs)})
	e.stub.hook = func(context.Context) { panic("boom for Ada Lovelace") }
	resp, b := e.do(t, "PUT", "/patients/"+testID,
		strings.NewReader(`{"name":"Ada Lovelace","email":"a@example.org","address":"x","dateOfBirth":"1990-01-01"}`), jsonCT...)
	eb := checkError(t, resp, b, 500, errs.Internal)
	if eb.Message != wire.InternalMessage || strings.Contains(string(b), "boom") {
		t.Errorf("500 body leaks: %s", b)
	}
	if !strings.Contains(logs.String(), eb.RequestID) || strings.Contains(logs.String(), "Ada") {
		t.Errorf("panic log: %s", logs.String())
	}
}

func TestInternalErrorHidesCause(t *testing.T) {
	e := newEnv(t, Options{})
	e.stub.err = fmt.Errorf("pq: password authentication failed for hunter2")
	resp, b := e.do(t, "GET", "/patients/"+testID, nil)
	if eb := checkError(t, resp, b, 500, errs.Internal); strings.Contains(string(b), "hunter2") || eb.Fields != nil {
		t.Errorf("body leaks the cause: %s", b)
	}
	e.stub.err = &errs.Error{Kind: errs.Internal, Message: "sql: bad column ssn", Fields: map[string]string{"ssn": "x"}}
	resp, b = e.do(t, "GET", "/patients/"+testID, nil)
	if eb := checkError(t, resp, b, 500, errs.Internal); eb.Message != wire.InternalMessage || eb.Fields != nil {
		t.Errorf("internal body: %s", b)
	}
	_, err := e.client.Get(context.Background(), testID)
	if !errors.Is(err, &errs.Error{Kind: errs.Internal}) || strings.Contains(err.Error(), "ssn") {
		t.Errorf("client error %v", err)
	}
}
