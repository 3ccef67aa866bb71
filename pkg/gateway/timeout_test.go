package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/authz/authztest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
)

// silentUpstream is a real gRPC server that accepts every call and never answers it (until
// the caller gives up): an upstream that hangs. calls counts the calls that reached it.
func silentUpstream(t *testing.T) (addr string, calls *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	calls = &atomic.Int64{}
	stop := make(chan struct{})
	srv := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		calls.Add(1)
		select {
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-stop:
			return nil
		}
	}))
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { close(stop); srv.Stop() })
	return l.Addr().String(), calls
}

// holdUpstream starts n requests (get) that hang on a silentUpstream counting calls, and
// returns once all n have reached it; stop ends them.
func holdUpstream(t *testing.T, n int64, calls *atomic.Int64, get func(ctx context.Context) (*http.Response, error)) (stop func()) {
	t.Helper()
	hanging, stop := context.WithCancel(context.Background())
	for range n {
		go func() {
			if resp, err := get(hanging); err == nil {
				resp.Body.Close()
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for calls.Load() < n {
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("the %d hanging calls did not reach the upstream within 10s", n)
		}
		time.Sleep(time.Millisecond)
	}
	return stop
}

// TestUpstreamThatNeverAnswers: an upstream that accepts the gRPC call and never answers
// gets the caller a 504 with the contract's error body once the gateway's configured
// deadline (--gateway-timeout) has passed, for a read (retried only on unavailable, so not
// here) and a write alike. A deadline the gateway's own call hits counts against the
// upstream in its breaker (API.md: "opens after 5 consecutive unavailable/timeout
// failures"): after five the breaker is open and the next call is a 503 that never reaches
// the upstream.
func TestUpstreamThatNeverAnswers(t *testing.T) {
	const deadline = 400 * time.Millisecond // the gateway's configured deadline in this test
	addr, calls := silentUpstream(t)
	is := authztest.New(t)
	g, err := New(Config{PatientAddr: addr, BillingAddr: "127.0.0.1:1", AuthAddr: "127.0.0.1:1", AnalyticsAddr: "127.0.0.1:1",
		Verifier: authz.NewVerifier(is.Keys(), authz.DefaultIssuer, authz.DefaultAudience),
		Timeout:  deadline, BreakerOpenFor: time.Hour, ClientLimit: DefaultClientLimit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	token := is.Token(t, "clin-1", authz.RoleClinician)

	do := func(method, path, body string) (int, map[string]any, time.Duration) {
		t.Helper()
		// The client's own bound only tells a hang from an answer; it is far above deadline.
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("X-Request-ID", "hang-1")
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		took := time.Since(start)
		b, _ := io.ReadAll(resp.Body)
		var e map[string]any
		if err := json.Unmarshal(b, &e); err != nil || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("%s %s: %d %q is not the contract's error JSON", method, path, resp.StatusCode, b)
		}
		return resp.StatusCode, e, took
	}
	checkTimeout := func(method, path, body string) {
		t.Helper()
		code, e, took := do(method, path, body)
		if code != http.StatusGatewayTimeout || e["error"] != "timeout" || e["message"] == "" || e["requestId"] != "hang-1" || e["fields"] != nil {
			t.Fatalf("%s %s: %d %v, want 504 with the contract's timeout body", method, path, code, e)
		}
		// The gateway waited for its deadline (it did not give up early, which would be a
		// 504 for an upstream that was still within its time).
		if took < deadline {
			t.Fatalf("%s %s: answered 504 after %s, before the %s deadline", method, path, took, deadline)
		}
	}
	const id = "7b0c2f8e-9a51-4a7e-8a3e-0f1d2c3b4a59"
	// Five consecutive timeouts: reads and writes (a read is retried only on unavailable).
	before := calls.Load()
	checkTimeout("GET", "/api/patients/"+id, "")
	checkTimeout("POST", "/api/patients", `{"name":"Ada","email":"ada@example.org","address":"1 Main St","dateOfBirth":"1990-01-02"}`)
	checkTimeout("GET", "/api/patients", "")
	checkTimeout("DELETE", "/api/patients/"+id, "")
	checkTimeout("GET", "/api/patients/"+id+"/history", "")
	if calls.Load() == before {
		t.Fatal("no call reached the upstream: the 504s did not come from waiting on it")
	}
	// The five timeouts opened the breaker: the next call is refused at once. The upstream
	// is up and takes every call, so a 503 (not a 504) can only come from the open breaker.
	code, e, _ := do("GET", "/api/patients/"+id, "")
	if code != http.StatusServiceUnavailable || e["error"] != "unavailable" || e["requestId"] != "hang-1" {
		t.Fatalf("after five timeouts: %d %v, want 503 unavailable from the open breaker", code, e)
	}
}

// TestAdmissionSheds: with --gateway-max-in-flight 2, two calls hanging on the upstream hold
// both places; every further call waits its --gateway-queue-wait and is refused 503 with
// Retry-After and the contract's body, without reaching the upstream; and however many are
// refused, the upstream's breaker stays closed (a shed call is not the upstream failing).
func TestAdmissionSheds(t *testing.T) {
	addr, calls := silentUpstream(t)
	is := authztest.New(t)
	reg := prometheus.NewRegistry()
	g, err := New(Config{PatientAddr: addr, BillingAddr: "127.0.0.1:1", AuthAddr: "127.0.0.1:1", AnalyticsAddr: "127.0.0.1:1",
		Verifier: authz.NewVerifier(is.Keys(), authz.DefaultIssuer, authz.DefaultAudience), Registerer: reg,
		Timeout: time.Minute, BreakerOpenFor: time.Hour, ClientLimit: DefaultClientLimit, MaxInFlight: 2, MaxQueueWait: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	token := is.Token(t, "clin-1", authz.RoleClinician)
	const path = "/api/patients/7b0c2f8e-9a51-4a7e-8a3e-0f1d2c3b4a59"
	get := func(ctx context.Context) (*http.Response, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		return http.DefaultClient.Do(req)
	}
	stop := holdUpstream(t, 2, calls, get)
	defer stop()
	for i := range 10 {
		resp, err := get(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e map[string]any
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" ||
			json.Unmarshal(b, &e) != nil || e["error"] != "unavailable" || !strings.Contains(e["message"].(string), "busy") {
			t.Fatalf("call %d with both places taken: %d %v %s, want 503 busy with Retry-After: 1", i, resp.StatusCode, resp.Header, b)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("the upstream saw %d calls, want the 2 admitted ones", n)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	state := -1.0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if mf.GetName() == "pms_gateway_breaker_state" && len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == "patient" {
				state = m.GetGauge().GetValue()
			}
		}
	}
	if state != 0 {
		t.Fatalf("patient breaker state %v after 10 shed calls, want 0 (closed)", state)
	}
}

// TestFrontSheds: with --gateway-max-http-in-flight requests in flight, one more is refused
// 503 busy with Retry-After on arrival, before its token is checked (a request with no token
// gets the 503, not the 401), without reaching the upstream, and counted; once the requests in
// flight end, requests are served again.
func TestFrontSheds(t *testing.T) {
	addr, calls := silentUpstream(t)
	is := authztest.New(t)
	reg := prometheus.NewRegistry()
	g, err := New(Config{PatientAddr: addr, BillingAddr: "127.0.0.1:1", AuthAddr: "127.0.0.1:1", AnalyticsAddr: "127.0.0.1:1",
		Verifier: authz.NewVerifier(is.Keys(), authz.DefaultIssuer, authz.DefaultAudience), Registerer: reg,
		Timeout: time.Minute, BreakerOpenFor: time.Hour, ClientLimit: DefaultClientLimit, MaxInFlight: 100, MaxHTTPInFlight: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	token := is.Token(t, "clin-1", authz.RoleClinician)
	const path = "/api/patients/7b0c2f8e-9a51-4a7e-8a3e-0f1d2c3b4a59"
	get := func(ctx context.Context, token string) (*http.Response, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return http.DefaultClient.Do(req)
	}
	stop := holdUpstream(t, 2, calls, func(ctx context.Context) (*http.Response, error) { return get(ctx, token) })
	defer stop()
	deadline := time.Now().Add(10 * time.Second)
	for i := range 10 {
		resp, err := get(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e map[string]any
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" ||
			json.Unmarshal(b, &e) != nil || e["error"] != "unavailable" || !strings.Contains(e["message"].(string), "gateway is busy") {
			t.Fatalf("request %d with the gateway full: %d %v %s, want 503 busy with Retry-After: 1", i, resp.StatusCode, resp.Header, b)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("the upstream saw %d calls, want the 2 in flight", n)
	}
	if got := testutil.ToFloat64(g.handler.(*front).shed); got != 10 {
		t.Fatalf("pms_gateway_front_shed_total = %v, want 10", got)
	}
	stop()
	for {
		resp, err := get(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusUnauthorized {
			break // past the front door: the token check answers
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the requests in flight ended: %d, want 401", resp.StatusCode)
		}
		time.Sleep(time.Millisecond)
	}
}
