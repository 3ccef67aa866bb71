package httptransport

import (
	"context"
	"errors"
	"io"
	"maps"
	"math"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
	"github.com/pms/pms/transport/wire"
)

func TestClientRoundTrip(t *testing.T) {
	for _, prefix := range []string{"", "/api"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			e := newEnv(t, Options{Prefix: prefix})
			ctx := observe.WithRequestID(context.Background(), "rid-42")
			ctx = authz.WithToken(ctx, "tok.en")
			ctx = observe.WithClientAddr(ctx, "203.0.113.5")
			c := e.client

			check := func(name string, want any) {
				t.Helper()
				_, last, sctx := e.stub.seen()
				if !reflect.DeepEqual(last, want) {
					t.Errorf("%s: service got %+v, want %+v", name, last, want)
				}
				if observe.RequestID(sctx) != "rid-42" || authz.Token(sctx) != "tok.en" || observe.ClientAddr(sctx) != "203.0.113.5" {
					t.Errorf("%s: forwarded id %q token %q addr %q", name, observe.RequestID(sctx), authz.Token(sctx), observe.ClientAddr(sctx))
				}
			}

			cr := patient.CreateRequest{Name: "Ada", Email: "ada@example.org", Address: "x", DateOfBirth: "1915-12-10", RegisteredDate: "2026-03-04", IdempotencyKey: "k-1"}
			if p, err := c.Create(ctx, cr); err != nil || p != testPatient {
				t.Fatalf("Create = %+v, %v", p, err)
			}
			check("Create", cr)

			if p, err := c.Get(ctx, testID); err != nil || p != testPatient {
				t.Errorf("Get = %+v, %v", p, err)
			}
			check("Get", testID)

			e.stub.page = patient.Page{Patients: []patient.Patient{testPatient}, NextPageToken: "next/&token=", Total: 9}
			lq := patient.ListQuery{Q: "a&b=c", Email: "ada@example.org", DateOfBirth: "1915-12-10", Limit: 1, PageToken: "p1"}
			if pg, err := c.List(ctx, lq); err != nil || !reflect.DeepEqual(pg, e.stub.page) {
				t.Errorf("List = %+v, %v", pg, err)
			}
			check("List", lq)
			e.stub.page = patient.Page{}
			if pg, err := c.List(ctx, patient.ListQuery{}); err != nil || len(pg.Patients) != 0 || pg.Patients == nil || pg.NextPageToken != "" {
				t.Errorf("empty List = %#v, %v", pg, err)
			}

			ur := patient.UpdateRequest{ID: testID, Name: "B", Email: "b@example.org", Address: "y", DateOfBirth: "1915-12-10", IfMatch: 3,
				Unchanged: patient.ReadOnlyFields{MRN: ptr("MRN-000042"), Version: ptr(int64(3)), UpdatedAt: ptr("2026-03-04T05:06:07.891Z")}}
			if p, err := c.Update(ctx, ur); err != nil || p != testPatient {
				t.Errorf("Update = %+v, %v", p, err)
			}
			check("Update", ur)

			if err := c.Delete(ctx, patient.DeleteRequest{ID: testID, IfMatch: 7}); err != nil {
				t.Errorf("Delete: %v", err)
			}
			check("Delete", patient.DeleteRequest{ID: testID, IfMatch: 7})
			if err := c.Delete(ctx, patient.DeleteRequest{ID: testID}); err != nil {
				t.Errorf("Delete: %v", err)
			}
			check("Delete any", patient.DeleteRequest{ID: testID})

			e.stub.history = []patient.Version{{Version: 1, Change: patient.ChangeCreated, ChangedAt: testTime, ChangedBy: "u1", Role: "clinician", RequestID: "r", Patient: testPatient}}
			if v, err := c.History(ctx, testID); err != nil || !reflect.DeepEqual(v, e.stub.history) {
				t.Errorf("History = %+v, %v", v, err)
			}
			check("History", testID)

			e.stub.audit = []patient.AuditEntry{{ID: "a", At: testTime, Actor: "u1", Role: "admin", Action: patient.ActionSearch, Outcome: "denied", RequestID: "r", ClientAddress: "203.0.113.5"}}
			aq := patient.AuditQuery{PatientID: testID, Actor: "u1", From: testTime, To: testTime.Add(time.Hour), Limit: 1000}
			if a, err := c.Audit(ctx, aq); err != nil || !reflect.DeepEqual(a, e.stub.audit) {
				t.Errorf("Audit = %+v, %v", a, err)
			}
			check("Audit", aq)

			n, _, _ := e.stub.seen()
			if _, err := c.Get(ctx, ""); !errors.Is(err, &errs.Error{Kind: errs.InvalidArgument}) {
				t.Errorf("Get(\"\") = %v", err)
			}
			if n2, _, _ := e.stub.seen(); n2 != n {
				t.Error("an empty id reached the service")
			}
		})
	}
}

// statusTable is the contract's table, written out independently of errors.go.
var statusTable = map[errs.Kind]int{
	errs.InvalidArgument: 400, errs.Unauthenticated: 401, errs.PermissionDenied: 403, errs.NotFound: 404,
	errs.MethodNotAllowed: 405, errs.Gone: 410, errs.Conflict: 409, errs.PreconditionFailed: 412,
	errs.PayloadTooLarge: 413, errs.UnsupportedMediaType: 415, errs.RateLimited: 429,
	errs.Unavailable: 503, errs.Timeout: 504, errs.Internal: 500,
	errs.Canceled: 499, // nobody reads it (the caller left); logs and metrics do
}

func TestErrorKindsRoundTrip(t *testing.T) {
	e := newEnv(t, Options{})
	if len(statusTable) != len(errs.Kinds) {
		t.Fatalf("test table has %d kinds, errs has %d", len(statusTable), len(errs.Kinds))
	}
	for _, k := range errs.Kinds {
		t.Run(string(k), func(t *testing.T) {
			fields := map[string]string{"dateOfBirth": "must not be in the future"}
			e.stub.err = &errs.Error{Kind: k, Message: "msg " + string(k), Fields: fields, RetryAfter: 1500 * time.Millisecond}

			resp, b := e.do(t, "GET", "/patients/"+testID, nil)
			eb := checkError(t, resp, b, statusTable[k], k)
			if k == errs.RateLimited && resp.Header.Get("Retry-After") != "2" {
				t.Errorf("Retry-After = %q", resp.Header.Get("Retry-After"))
			}
			if k != errs.RateLimited && resp.Header.Get("Retry-After") != "" {
				t.Errorf("Retry-After on %s", k)
			}
			if resp.Header.Get("ETag") != "" {
				t.Error("ETag on an error")
			}

			_, err := e.client.Get(context.Background(), testID)
			got := errs.As(err)
			if !errors.Is(err, &errs.Error{Kind: k}) || got.Kind != k {
				t.Fatalf("client error %v (kind %q), want kind %q", err, got.Kind, k)
			}
			if k == errs.Internal {
				if got.Fields != nil || got.Message != wire.InternalMessage || eb.Message != wire.InternalMessage {
					t.Errorf("internal error exposes %q %v", got.Message, got.Fields)
				}
				return
			}
			if got.Message != "msg "+string(k) || !maps.Equal(got.Fields, fields) {
				t.Errorf("client error message %q fields %v", got.Message, got.Fields)
			}
			if want := map[bool]time.Duration{true: 2 * time.Second}[k == errs.RateLimited]; got.RetryAfter != want {
				t.Errorf("RetryAfter = %v, want %v", got.RetryAfter, want)
			}
		})
	}
	e.stub.err = patient.ErrNotFound
	if _, err := e.client.Get(context.Background(), testID); !errors.Is(err, patient.ErrNotFound) {
		t.Errorf("errors.Is(%v, ErrNotFound) = false", err)
	}
	e.stub.err = patient.ErrVersionMismatch
	if err := e.client.Delete(context.Background(), patient.DeleteRequest{ID: testID, IfMatch: 2}); !errors.Is(err, patient.ErrVersionMismatch) {
		t.Errorf("errors.Is(%v, ErrVersionMismatch) = false", err)
	}
}

func TestClientTransportErrors(t *testing.T) {
	e := newEnv(t, Options{})
	e.stub.hook = func(ctx context.Context) { <-ctx.Done() }
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := e.client.Get(ctx, testID); !errors.Is(err, &errs.Error{Kind: errs.Timeout}) {
		t.Errorf("deadline: %v", err)
	}

	e.srv.Close()
	if _, err := e.client.Get(context.Background(), testID); !errors.Is(err, &errs.Error{Kind: errs.Unavailable}) {
		t.Errorf("closed server: %v", err)
	}
	if _, err := NewPatientClient("ftp://x", ClientOptions{}); err == nil {
		t.Error("ftp base URL accepted")
	}
	if _, err := NewPatientClient("/relative", ClientOptions{}); err == nil {
		t.Error("relative base URL accepted")
	}
}

func TestClientTokenOption(t *testing.T) {
	e := newEnv(t, Options{})
	c, err := NewPatientClient(e.srv.URL, ClientOptions{Token: func(context.Context) string { return "svc-token" }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(context.Background(), testID); err != nil {
		t.Fatal(err)
	}
	if _, _, ctx := e.stub.seen(); authz.Token(ctx) != "svc-token" {
		t.Errorf("token %q", authz.Token(ctx))
	}
}

func TestDecodeError(t *testing.T) {
	cases := []struct {
		name   string
		status int
		header http.Header
		body   string
		kind   errs.Kind
		retry  time.Duration
	}{
		{"word wins", 400, nil, `{"error":"conflict","message":"m"}`, errs.Conflict, 0},
		{"unknown word", 503, nil, `{"error":"teapot_exploded"}`, errs.Unavailable, 0},
		{"html proxy page", 502, nil, `<html>bad gateway</html>`, errs.Unavailable, 0},
		{"unlisted 4xx", 418, nil, ``, errs.InvalidArgument, 0},
		{"unlisted 5xx", 507, nil, ``, errs.Internal, 0},
		{"redirect", 302, nil, ``, errs.Internal, 0},
		{"429 seconds", 429, http.Header{"Retry-After": {"7"}}, `{"error":"rate_limited"}`, errs.RateLimited, 7 * time.Second},
		{"429 garbage", 429, http.Header{"Retry-After": {"soon"}}, ``, errs.RateLimited, time.Second},
		// Found by FuzzClientDecoders: 9227000000 s overflowed a Duration into a negative wait.
		{"429 huge", 429, http.Header{"Retry-After": {"9227000000"}}, ``, errs.RateLimited, math.MaxInt32 * time.Second},
		{"429 date", 429, http.Header{"Retry-After": {time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}}, ``, errs.RateLimited, time.Hour},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := DecodeError(&http.Response{StatusCode: c.status, Header: c.header, Body: io.NopCloser(strings.NewReader(c.body))})
			got := errs.As(err)
			if got.Kind != c.kind || got.Message == "" {
				t.Errorf("kind %q message %q, want %q", got.Kind, got.Message, c.kind)
			}
			if d := got.RetryAfter - c.retry; d < -2*time.Second || d > 2*time.Second {
				t.Errorf("RetryAfter %v, want %v", got.RetryAfter, c.retry)
			}
		})
	}
}

func TestNextPageToken(t *testing.T) {
	h := http.Header{"Link": {`</x?a=1>; rel="prev", </patients?q=a&pageToken=t%2B1>; rel="next"`}}
	if got := nextPageToken(h); got != "t+1" {
		t.Errorf("nextPageToken = %q", got)
	}
	if got := nextPageToken(http.Header{"Link": {`garbage`}}); got != "" {
		t.Errorf("nextPageToken(garbage) = %q", got)
	}
}
