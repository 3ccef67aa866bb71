package httptransport

import (
	"context"
	"errors"
	"maps"
	"reflect"
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
			if p, err := c.Create(ctx, cr); err != nil || !reflect.DeepEqual(p, testPatient) {
				t.Fatalf("Create = %+v, %v", p, err)
			}
			check("Create", cr)

			if p, err := c.Get(ctx, testID); err != nil || !reflect.DeepEqual(p, testPatient) {
				t.Errorf("Get = %+v, %v", p, err)
			}
			check("Get", testID)

			e.stub.page = patient.Page{Patients: []patient.Patient{testPatient}, NextPageToken: "next/&token=", Total: 9000, TotalEstimated: true}
			lq := patient.ListQuery{Q: "a&b=c", Email: "ada@example.org", DateOfBirth: "1915-12-10", Limit: 1, PageToken: "p1",
				Family: "Love&lace", Given: "Ada", Phone: "+44 20", Gender: "female", BornFrom: "1900-01-01", BornTo: "1920-12-31"}
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
			if p, err := c.Update(ctx, ur); err != nil || !reflect.DeepEqual(p, testPatient) {
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
	errs.Canceled:               499,                        // nobody reads it (the caller left); logs and metrics do
	errs.PasswordChangeRequired: 401, errs.MFARequired: 401, // fail closed in old clients
	errs.PossibleDuplicate: 409, // a conflict to old clients
	errs.Restricted:        403, // a restricted patient's data on billing's own routes
}

func TestErrorKindsRoundTrip(t *testing.T) {
	e := newEnv(t, Options{})
	if len(statusTable) != len(errs.Kinds) {
		t.Fatalf("test table has %d kinds, errs has %d", len(statusTable), len(errs.Kinds))
	}
	for _, k := range errs.Kinds {
		t.Run(string(k), func(t *testing.T) {
			fields := map[string]string{"dateOfBirth": "must not be in the future"}
			e.stub.err = &errs.Error{Kind: k, Message: "msg " + string(k), Fields: fields, RetryAfter: 1500 * time.Millisecond,
				Challenge: "challenge-" + string(k), Enrol: true}

			resp, b := e.do(t, "GET", "/patients/"+testID, nil)
			eb := checkError(t, resp, b, statusTable[k], k)
			// 429 always says when to come back, 503 when the error knows (a shed call).
			if (k == errs.RateLimited || k == errs.Unavailable) && resp.Header.Get("Retry-After") != "2" {
				t.Errorf("Retry-After = %q", resp.Header.Get("Retry-After"))
			}
			if k != errs.RateLimited && k != errs.Unavailable && resp.Header.Get("Retry-After") != "" {
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
			// Only the login-step kinds carry a challenge (enrol only with mfa_required).
			wantChallenge, wantEnrol := "", false
			if k == errs.MFARequired || k == errs.PasswordChangeRequired {
				wantChallenge, wantEnrol = "challenge-"+string(k), k == errs.MFARequired
			}
			if got.Challenge != wantChallenge || got.Enrol != wantEnrol || eb.Challenge != wantChallenge {
				t.Errorf("challenge %q/%q enrol %v, want %q %v", got.Challenge, eb.Challenge, got.Enrol, wantChallenge, wantEnrol)
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
