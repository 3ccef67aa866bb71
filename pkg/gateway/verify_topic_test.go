package gateway

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pms/pms/pkg/analytics"
	"github.com/pms/pms/pkg/auth"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/authz/authztest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestAuditVerifyNeitherRetriedNorCounted: an upstream whose audit verification answers 503
// (its audit topic cannot be read) gets each verification called once, not retried, and six
// of them in a row leave the upstream's breaker closed: the next read still reaches it.
func TestAuditVerifyNeitherRetriedNorCounted(t *testing.T) {
	for _, m := range []string{patient.MethodVerifyAudit, billing.MethodVerifyAudit, auth.MethodVerifyAudit, analytics.MethodVerifyAudit} {
		if m != auditVerifyMethod {
			t.Fatalf("a service's verify method %q is not %q", m, auditVerifyMethod)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	srv := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		calls.Add(1)
		return status.Error(codes.Unavailable, "the audit topic could not be read in time")
	}))
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)

	is := authztest.New(t)
	g, err := New(Config{PatientAddr: l.Addr().String(), BillingAddr: "127.0.0.1:1", AuthAddr: "127.0.0.1:1", AnalyticsAddr: "127.0.0.1:1",
		Verifier: authz.NewVerifier(is.Keys(), authz.DefaultIssuer, authz.DefaultAudience),
		Timeout:  5 * time.Second, BreakerOpenFor: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	web := httptest.NewServer(g)
	t.Cleanup(web.Close)
	admin := is.Token(t, "admin-1", authz.RoleAdmin)
	get := func(path string) int {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", web.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusServiceUnavailable && !strings.Contains(string(b), `"unavailable"`) {
			t.Fatalf("GET %s: %s", path, b)
		}
		return resp.StatusCode
	}
	for i := 1; i <= 6; i++ {
		if code := get("/api/audit/verify?againstTopic=true"); code != http.StatusServiceUnavailable {
			t.Fatalf("verification %d: %d, want 503", i, code)
		}
		if n := calls.Load(); n != int64(i) {
			t.Fatalf("after %d verifications the upstream had %d calls: retried", i, n)
		}
	}
	// The breaker is still closed: a read reaches the upstream (and, answered 503, is retried).
	if code := get("/api/patients/7b0c2f8e-9a51-4a7e-8a3e-0f1d2c3b4a59"); code != http.StatusServiceUnavailable || calls.Load() <= 6 {
		t.Fatalf("read after six failed verifications: %d, %d calls; want it to reach the upstream", code, calls.Load())
	}
}
