package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/authz/authztest"
	"github.com/pms/pms/pkg/platform/broker"
	"github.com/pms/pms/pkg/platform/broker/brokertest"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
	grpctransport "github.com/pms/pms/transport/grpc"
	httptransport "github.com/pms/pms/transport/http"
	kafkatransport "github.com/pms/pms/transport/kafka"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// addrs collects the addresses the process under test bound.
type addrs struct {
	mu sync.Mutex
	m  map[string]string
	ch chan struct{}
}

// startPMS runs `pms <args>` in-process on :0 ports and returns the bound addresses and a
// stop function that sends the equivalent of SIGTERM and returns run's error. Each process
// reports its addresses through its own context, so a test may run several at once.
func startPMS(t testing.TB, want []string, args ...string) (map[string]string, func() error) {
	t.Helper()
	return startPMSLogs(t, want, nil, args...)
}

// startPMSLogs is startPMS writing the process's standard error to stderr as well (when not
// nil).
func startPMSLogs(t testing.TB, want []string, stderr io.Writer, args ...string) (map[string]string, func() error) {
	t.Helper()
	a := &addrs{m: map[string]string{}, ch: make(chan struct{}, 64)}
	hook := func(service, kind, addr string) {
		a.mu.Lock()
		a.m[service+"/"+kind] = addr
		a.mu.Unlock()
		select {
		case a.ch <- struct{}{}:
		default:
		}
	}
	ctx, cancel := context.WithCancel(withListenHook(context.Background(), hook))
	done := make(chan error, 1)
	var logs bytes.Buffer
	var errOut io.Writer = &logs
	if stderr != nil {
		errOut = io.MultiWriter(&logs, stderr)
	}
	go func() { done <- dispatch(ctx, args, io.Discard, &syncWriter{w: errOut}) }()
	deadline := time.After(30 * time.Second)
	for {
		a.mu.Lock()
		n := 0
		for _, k := range want {
			if a.m[k] != "" {
				n++
			}
		}
		a.mu.Unlock()
		if n == len(want) {
			break
		}
		select {
		case <-a.ch:
		case err := <-done:
			cancel()
			t.Fatalf("pms exited early: %v\n%s", err, logs.String())
		case <-deadline:
			cancel()
			t.Fatalf("pms did not bind %v in time", want)
		}
	}
	stopped := false
	var runErr error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				runErr = errors.New("pms did not stop within 30s")
			}
		}
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]string{}
	for k, v := range a.m {
		out[k] = v
	}
	if b := out["broker/kafka"]; b != "" {
		creds := brokerCredentials(t, args)
		brokertest.Authenticate(b, kafkatransport.PrincipalAdmin, creds[kafkatransport.PrincipalAdmin])
	}
	return out, stop
}

// brokerCredentials reads the credentials file of the embedded broker of `pms <args>`
// (--kafka-credentials, else <data-dir>/kafka/credentials), which it wrote before reporting
// its address.
func brokerCredentials(t testing.TB, args []string) broker.Credentials {
	t.Helper()
	dataDir, path := "./data", ""
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--data-dir="); ok {
			dataDir = v
		}
		if v, ok := strings.CutPrefix(a, "--kafka-credentials="); ok {
			path = v
		}
	}
	if path == "" {
		path = filepath.Join(dataDir, "kafka", "credentials")
	}
	creds, err := broker.ReadCredentials(path)
	if err != nil {
		t.Fatal(err)
	}
	return creds
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

var patientAddrs = []string{"patient/http", "patient/grpc", "patient/admin"}

// testIssuer signs the tokens every process test uses; its JWKS stands in for the auth
// service's where a test does not run the auth service itself.
var testIssuer *authztest.Issuer

func TestMain(m *testing.M) {
	testIssuer = authztest.Start()
	code := m.Run()
	testIssuer.Close()
	os.Exit(code)
}

func issuer(testing.TB) *authztest.Issuer { return testIssuer }

// jwksArg points a service at the test issuer's keys.
func jwksArg() string { return "--auth-jwks-url=" + testIssuer.JWKSURL() }

// authed returns a context carrying a token for subject with role.
func authed(t testing.TB, subject, role string) context.Context {
	return authz.WithToken(context.Background(), testIssuer.Token(t, subject, role))
}

// patientArgs runs `pms patient` on :0 ports against dbURL and a broker of the test's own.
func patientArgs(t testing.TB, dbURL string) []string {
	return []string{"patient", jwksArg(), "--http-addr=127.0.0.1:0", "--grpc-addr=127.0.0.1:0", "--admin-addr=127.0.0.1:0",
		"--data-dir=" + t.TempDir(), "--database-url=" + dbURL, "--log-format=logfmt", "--log-level=warn", "--billing-addr=",
		"--kafka-brokers=" + brokertest.Start(t).Addr()}
}

// TestPatientProcess runs `pms patient` on PostgreSQL and SQLite and drives every operation
// and error kind through both real transports, as their clients would.
func TestPatientProcess(t *testing.T) {
	for _, tc := range []struct{ name, url string }{
		{"postgres", ""},
		{"sqlite", "sqlite://" + filepath.Join(t.TempDir(), "patient.db")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := tc.url
			if url == "" {
				url = dbtest.PostgresDatabase(t)
			}
			a, stop := startPMS(t, patientAddrs, patientArgs(t, url)...)
			httpClient, err := httptransport.NewPatientClient("http://"+a["patient/http"], httptransport.ClientOptions{})
			if err != nil {
				t.Fatal(err)
			}
			conn, err := grpc.NewClient(a["patient/grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			for name, c := range map[string]patient.Service{"http": httpClient, "grpc": grpctransport.NewPatientClient(conn)} {
				t.Run(name, func(t *testing.T) { exercise(t, c, name) })
			}
			checkAdmin(t, a)
			if err := stop(); err != nil {
				t.Fatalf("graceful stop: %v", err)
			}
		})
	}
}

func exercise(t *testing.T, c patient.Service, tag string) {
	ctx := authz.WithToken(context.Background(), issuer(t).Token(t, "admin-1", authz.RoleAdmin))
	p, err := c.Create(ctx, patient.CreateRequest{Name: "Ada " + tag, Email: "ada-" + tag + "@example.org", Address: "1 Main St", DateOfBirth: "1990-01-02", IdempotencyKey: "k-" + tag})
	if err != nil || !patient.ValidMRN(p.MRN) || p.Version != 1 {
		t.Fatalf("create: %+v %v", p, err)
	}
	again, err := c.Create(ctx, patient.CreateRequest{Name: "Ada " + tag, Email: "ada-" + tag + "@example.org", Address: "1 Main St", DateOfBirth: "1990-01-02", IdempotencyKey: "k-" + tag})
	if err != nil || again.ID != p.ID {
		t.Fatalf("idempotent replay: %+v %v", again, err)
	}
	expect := func(err error, target error) {
		t.Helper()
		if !errors.Is(err, target) {
			t.Fatalf("got %v (%s), want %v", err, errs.KindOf(err), target)
		}
	}
	_, err = c.Create(ctx, patient.CreateRequest{Name: "Other", Email: "ada-" + tag + "@example.org", Address: "x", DateOfBirth: "1990-01-02", IdempotencyKey: "k-" + tag})
	expect(err, patient.ErrIdempotencyConflict)
	_, err = c.Create(ctx, patient.CreateRequest{Name: "Other", Email: "ADA-" + tag + "@example.org", Address: "x", DateOfBirth: "1990-01-02"})
	expect(err, patient.ErrEmailTaken)
	_, err = c.Create(ctx, patient.CreateRequest{Name: "", Email: "bad", Address: "x", DateOfBirth: "2999-01-01"})
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind != errs.InvalidArgument || e.Fields["name"] == "" || e.Fields["email"] == "" || e.Fields["dateOfBirth"] == "" {
		t.Fatalf("validation error lost its fields: %#v", err)
	}
	got, err := c.Get(ctx, p.ID)
	if err != nil || got.ID != p.ID || !got.CreatedAt.Equal(p.CreatedAt) {
		t.Fatalf("get: %+v %v", got, err)
	}
	_, err = c.Get(ctx, "00000000-0000-4000-8000-000000000000")
	expect(err, patient.ErrNotFound)
	_, err = c.Get(ctx, "nope")
	expect(err, &errs.Error{Kind: errs.InvalidArgument})
	up := patient.UpdateRequest{ID: p.ID, Name: "Ada Two", Email: p.Email, Address: p.Address, DateOfBirth: p.DateOfBirth, IfMatch: 9}
	_, err = c.Update(ctx, up)
	expect(err, patient.ErrVersionMismatch)
	up.IfMatch = 1
	p2, err := c.Update(ctx, up)
	if err != nil || p2.Version != 2 {
		t.Fatalf("update: %+v %v", p2, err)
	}
	page, err := c.List(ctx, patient.ListQuery{Q: "ada-" + tag, Limit: 1})
	if err != nil || page.Total != 1 || len(page.Patients) != 1 || page.Patients[0].ID != p.ID {
		t.Fatalf("list: %+v %v", page, err)
	}
	_, err = c.List(ctx, patient.ListQuery{PageToken: "garbage"})
	expect(err, &errs.Error{Kind: errs.InvalidArgument})
	if err := c.Delete(ctx, patient.DeleteRequest{ID: p.ID}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Get(ctx, p.ID)
	expect(err, patient.ErrGone)
	h, err := c.History(ctx, p.ID)
	if err != nil || len(h) != 3 || h[2].Change != patient.ChangeDeleted {
		t.Fatalf("history: %+v %v", h, err)
	}
	entries, err := c.Audit(ctx, patient.AuditQuery{PatientID: p.ID})
	if err != nil || len(entries) < 6 {
		t.Fatalf("audit: %d entries, %v", len(entries), err)
	}
	for _, e := range entries {
		if e.Actor != "admin-1" || e.Role != authz.RoleAdmin || e.RequestID == "" || e.ClientAddress == "" {
			t.Fatalf("audit entry lacks who/where: %+v", e)
		}
	}
}

func checkAdmin(t *testing.T, a map[string]string) {
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("http://" + a["patient/admin"] + "/readyz"); code != 200 {
		t.Fatalf("/readyz = %d", code)
	}
	if code, _ := get("http://" + a["patient/admin"] + "/healthz"); code != 200 {
		t.Fatalf("/healthz = %d", code)
	}
	code, body := get("http://" + a["patient/admin"] + "/metrics")
	if code != 200 || !strings.Contains(body, `pms_patient_request_duration_seconds_count{code="ok",method="GetPatient",transport="grpc"}`) ||
		!strings.Contains(body, `method="GetPatient",transport="http"`) || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("/metrics lacks the request histogram by transport:\n%.2000s", body)
	}
	if strings.Contains(body, "example.org") || strings.Contains(body, "Ada ") {
		t.Fatalf("patient data in metrics")
	}
	if code, _ := get("http://" + a["patient/http"] + "/metrics"); code != 404 {
		t.Fatalf("public port serves /metrics: %d", code)
	}
}

func TestUsageAndBadFlags(t *testing.T) {
	var out bytes.Buffer
	if err := dispatch(context.Background(), []string{"--help"}, io.Discard, &out); !strings.Contains(out.String(), "patient") || err == nil {
		t.Fatalf("help: %v %q", err, out.String())
	}
	if err := dispatch(context.Background(), []string{"nope"}, io.Discard, io.Discard); err == nil {
		t.Fatal("unknown command accepted")
	}
	if err := dispatch(context.Background(), []string{"patient", "--rate-limit=abc"}, io.Discard, io.Discard); err == nil {
		t.Fatal("bad --rate-limit accepted")
	}
	if err := dispatch(context.Background(), []string{"patient", "--database-url=mysql://x"}, io.Discard, io.Discard); err == nil {
		t.Fatal("unsupported database URL accepted")
	}
}

// TestRateLimitOverHTTP: per-endpoint limits are configuration, and past them a client gets
// the contract's 429 with Retry-After.
func TestRateLimitOverHTTP(t *testing.T) {
	a, _ := startPMS(t, patientAddrs, append(patientArgs(t, "sqlite://"+filepath.Join(t.TempDir(), "p.db")), "--rate-limit=0.2", "--rate-burst=2")...)
	codes := []int{}
	var last *http.Response
	for range 3 {
		req, _ := http.NewRequest("GET", "http://"+a["patient/http"]+"/patients", nil)
		req.Header.Set("Authorization", "Bearer "+issuer(t).Token(t, "u", authz.RoleClinician))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
		last = resp
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 429 || last.Header.Get("Retry-After") != "5" {
		t.Fatalf("statuses %v, Retry-After %q; want 200 200 429 and 5", codes, last.Header.Get("Retry-After"))
	}
}
