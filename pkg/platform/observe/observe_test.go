package observe

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pms/pms/pkg/platform/errs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRequestIDOrNew(t *testing.T) {
	if got := RequestIDOrNew("abc-123_x.y:z"); got != "abc-123_x.y:z" {
		t.Fatalf("well-formed id replaced: %q", got)
	}
	for _, bad := range []string{"", "a b", "line\nbreak", strings.Repeat("a", 129), "<script>", "ünï"} {
		got := RequestIDOrNew(bad)
		if got == bad || len(got) != 32 {
			t.Fatalf("hostile id %q kept or bad replacement %q", bad, got)
		}
	}
}

func TestMiddlewareRecordsKindsAndLogsNoPayload(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewRequestMetrics(reg, "test")
	var logs bytes.Buffer
	logger := NewLogger(&logs, "logfmt", "debug")
	fail := func(context.Context, any) (any, error) {
		return nil, errs.Wrap(errs.Internal, "internal error", errFake("db exploded"))
	}
	e := m.Middleware("Op")(LoggingMiddleware(logger, "Op")(fail))
	ctx := WithTransport(WithRequestID(context.Background(), "rid-1"), "http")
	_, _ = e(ctx, map[string]string{"name": "Ada Lovelace", "email": "ada@example.org"})
	if c := testutil.CollectAndCount(reg, "pms_test_request_duration_seconds"); c != 1 {
		t.Fatalf("%d series, want 1", c)
	}
	out := logs.String()
	if !strings.Contains(out, "rid-1") || !strings.Contains(out, "error=internal") || !strings.Contains(out, "db exploded") {
		t.Fatalf("log lacks id, kind or cause: %s", out)
	}
	if strings.Contains(out, "Ada") || strings.Contains(out, "example.org") {
		t.Fatalf("log holds request data: %s", out)
	}
}

type errFake string

func (e errFake) Error() string { return string(e) }

func TestAdminHandler(t *testing.T) {
	failing := false
	h := AdminHandler(NewRegistry(), true, Check{Name: "database", Check: func(context.Context) error {
		if failing {
			return errFake("connection refused to 10.0.0.1:5432 password=secret")
		}
		return nil
	}})
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") || !strings.Contains(body, "process_") {
		t.Fatalf("/metrics: %d", code)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("/readyz = %d", code)
	}
	failing = true
	code, body := get("/readyz")
	if code != 503 || !strings.Contains(body, `"dependency":"database"`) || strings.Contains(body, "secret") {
		t.Fatalf("/readyz failing: %d %s", code, body)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz = %d", code)
	}
	if code, _ := get("/debug/pprof/"); code != 200 {
		t.Fatalf("pprof = %d", code)
	}
	// Off unless asked for: its cmdline would show the process's flags.
	off := AdminHandler(NewRegistry(), false)
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/cmdline"} {
		rec := httptest.NewRecorder()
		off.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
		if rec.Code != 404 {
			t.Fatalf("%s without pprof = %d; want 404", p, rec.Code)
		}
	}
}

// TestCleanUserAgent: a user agent keeps printable ASCII only and at most MaxUserAgentBytes.
func TestCleanUserAgent(t *testing.T) {
	for in, want := range map[string]string{
		"Mozilla/5.0 (X11; Linux x86_64)": "Mozilla/5.0 (X11; Linux x86_64)",
		"a\x00b\x1b[31mc\x7fd\r\ne":       "ab[31mcde",
		"caf\xc3\xa9 \xff":                "caf ",
		strings.Repeat("x", 300):          strings.Repeat("x", MaxUserAgentBytes),
		"":                                "",
	} {
		if got := CleanUserAgent(in); got != want {
			t.Errorf("CleanUserAgent(%q) = %q, want %q", in, got, want)
		}
	}
	if got := UserAgent(WithUserAgent(context.Background(), "a\x01b")); got != "ab" {
		t.Fatalf("UserAgent = %q", got)
	}
}

// TestLoggingMiddlewareSkipsFilteredDebugLines: at info level a successful call writes
// nothing and, once the filter has dropped one debug line, builds none (no allocation); an
// internal error is still logged at error level after that; at debug level every call keeps
// its line.
func TestLoggingMiddlewareSkipsFilteredDebugLines(t *testing.T) {
	ok := func(context.Context, any) (any, error) { return nil, nil }
	failing := false
	maybeFail := func(context.Context, any) (any, error) {
		if failing {
			return nil, errs.Wrap(errs.Internal, "internal error", errFake("db exploded"))
		}
		return nil, nil
	}
	ctx := WithTransport(WithRequestID(context.Background(), "rid-1"), "http")

	var info bytes.Buffer
	e := LoggingMiddleware(NewLogger(&info, "logfmt", "info"), "Op")(maybeFail)
	_, _ = e(ctx, nil)
	if n := testing.AllocsPerRun(100, func() { _, _ = e(ctx, nil) }); n != 0 {
		t.Errorf("a successful call at info level allocates %v times: its debug line is still built", n)
	}
	if info.Len() != 0 {
		t.Fatalf("info level wrote debug lines: %s", info.String())
	}
	failing = true
	_, _ = e(ctx, nil)
	if out := info.String(); !strings.Contains(out, "level=error") || !strings.Contains(out, "db exploded") {
		t.Fatalf("an internal error after filtered debug lines was not logged: %q", out)
	}

	var debug bytes.Buffer
	d := LoggingMiddleware(NewLogger(&debug, "logfmt", "debug"), "Op")(ok)
	for range 3 {
		_, _ = d(ctx, nil)
	}
	if n := strings.Count(debug.String(), "level=debug"); n != 3 {
		t.Fatalf("debug level wrote %d of 3 lines: %s", n, debug.String())
	}
}
