package grpctransport

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	kitjwt "github.com/go-kit/kit/auth/jwt"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
	patientv1 "github.com/pms/pms/proto/pms/patient/v1"
)

var (
	created = time.Date(2026, 11, 25, 9, 30, 1, 123456789, time.UTC)
	updated = time.Date(2026, 11, 26, 17, 0, 0, 1, time.UTC)

	alice = patient.Patient{
		ID: "6f1c1f8e-3c1a-4a53-9d0e-2b8f5f1e7a10", MRN: "MRN-000042", Name: "Alice Example",
		Family: "Example", Given: []string{"Alice"}, Gender: "female", Phone: "+1 555 0100",
		Identifiers: []patient.Identifier{{System: patient.SystemMRN, Value: "MRN-000042"}, {System: "urn:x", Value: "1"}},
		Email:       "alice@example.org", Address: "1 Main St, Springfield", DateOfBirth: "1980-02-29",
		RegisteredDate: "2026-11-25", Version: 3, CreatedAt: created, UpdatedAt: updated,
	}
	bob = patient.Patient{
		ID: "0b7e3a52-5c55-4d8e-9b64-1f3c0a0b9c21", MRN: "MRN-000043", Name: "Bob Example",
		Email: "bob@example.org", Address: "2 Side St", DateOfBirth: "1900-01-01",
		RegisteredDate: "2026-11-24", Version: 1, CreatedAt: created, UpdatedAt: created,
	}.WithLists() // a record read over gRPC has its lists, empty or not (Patient.WithLists)
)

// TestPatientRoundTrip sends every operation through the real client, wire and server, and
// checks that the service receives exactly what the caller sent and the caller receives
// exactly what the service answered.
func TestPatientRoundTrip(t *testing.T) {
	h := startHarness(t, ServerOptions{})
	tests := []struct {
		name    string
		method  string
		call    func(ctx context.Context, c patient.Set) (any, error)
		wantReq any // what the service must receive
		answer  any // what the service answers, and so what the caller must receive
	}{{
		name: "create", method: patient.MethodCreate,
		call: func(ctx context.Context, c patient.Set) (any, error) {
			return c.Create(ctx, patient.CreateRequest{Name: alice.Name, Email: alice.Email, Address: alice.Address,
				DateOfBirth: alice.DateOfBirth, RegisteredDate: alice.RegisteredDate, IdempotencyKey: "key-1"})
		},
		wantReq: patient.CreateRequest{Name: alice.Name, Email: alice.Email, Address: alice.Address,
			DateOfBirth: alice.DateOfBirth, RegisteredDate: alice.RegisteredDate, IdempotencyKey: "key-1"},
		answer: alice,
	}, {
		name: "get", method: patient.MethodGet,
		call:    func(ctx context.Context, c patient.Set) (any, error) { return c.Get(ctx, alice.ID) },
		wantReq: alice.ID,
		answer:  alice,
	}, {
		name: "get without times", method: patient.MethodGet,
		call:    func(ctx context.Context, c patient.Set) (any, error) { return c.Get(ctx, "x") },
		wantReq: "x",
		answer:  patient.Patient{ID: "x"}.WithLists(),
	}, {
		name: "list", method: patient.MethodList,
		call: func(ctx context.Context, c patient.Set) (any, error) {
			return c.List(ctx, patient.ListQuery{Q: "exa", Email: "Alice@Example.org", DateOfBirth: "1980-02-29", Limit: 2, PageToken: "p1"})
		},
		wantReq: patient.ListQuery{Q: "exa", Email: "Alice@Example.org", DateOfBirth: "1980-02-29", Limit: 2, PageToken: "p1"},
		answer:  patient.Page{Patients: []patient.Patient{alice, bob}, NextPageToken: "p2", Total: 7000, TotalEstimated: true},
	}, {
		name: "list by demographics", method: patient.MethodList,
		call: func(ctx context.Context, c patient.Set) (any, error) {
			return c.List(ctx, patient.ListQuery{Family: "Love", Given: "Ada", Phone: "+44 20", Gender: "female", BornFrom: "1900-01-01", BornTo: "1920-12-31"})
		},
		wantReq: patient.ListQuery{Family: "Love", Given: "Ada", Phone: "+44 20", Gender: "female", BornFrom: "1900-01-01", BornTo: "1920-12-31"},
		answer:  patient.Page{Patients: []patient.Patient{alice}},
	}, {
		name: "list empty", method: patient.MethodList,
		call:    func(ctx context.Context, c patient.Set) (any, error) { return c.List(ctx, patient.ListQuery{}) },
		wantReq: patient.ListQuery{},
		answer:  patient.Page{Patients: []patient.Patient{}},
	}, {
		name: "list limit out of int32 range", method: patient.MethodList,
		call: func(ctx context.Context, c patient.Set) (any, error) {
			return c.List(ctx, patient.ListQuery{Limit: 1 << 40})
		},
		wantReq: patient.ListQuery{Limit: 1<<31 - 1},
		answer:  patient.Page{Patients: []patient.Patient{}},
	}, {
		name: "update with every echo field", method: patient.MethodUpdate,
		call: func(ctx context.Context, c patient.Set) (any, error) {
			return c.Update(ctx, fullUpdate())
		},
		wantReq: fullUpdate(),
		answer:  alice,
	}, {
		name: "update with zero-valued echo fields", method: patient.MethodUpdate,
		call: func(ctx context.Context, c patient.Set) (any, error) {
			return c.Update(ctx, patient.UpdateRequest{ID: "i", Unchanged: patient.ReadOnlyFields{ID: ptr(""), Version: ptr(int64(0))}})
		},
		wantReq: patient.UpdateRequest{ID: "i", Unchanged: patient.ReadOnlyFields{ID: ptr(""), Version: ptr(int64(0))}},
		answer:  alice,
	}, {
		name: "update without echo fields", method: patient.MethodUpdate,
		call: func(ctx context.Context, c patient.Set) (any, error) {
			return c.Update(ctx, patient.UpdateRequest{ID: alice.ID, Name: "A", Email: "a@b.c", Address: "x", DateOfBirth: "2000-01-01"})
		},
		wantReq: patient.UpdateRequest{ID: alice.ID, Name: "A", Email: "a@b.c", Address: "x", DateOfBirth: "2000-01-01"},
		answer:  alice,
	}, {
		// Demographics (issue 19): present-but-empty stays distinct from absent over the wire.
		name: "update with demographics, some cleared", method: patient.MethodUpdate,
		call: func(ctx context.Context, c patient.Set) (any, error) {
			return c.Update(ctx, patient.UpdateRequest{ID: alice.ID, Family: ptr("Lovelace"), Given: ptr([]string{}), Phone: ptr(""),
				Identifiers: ptr([]patient.Identifier{{System: "urn:x", Value: "1"}}), ConfirmNotDuplicate: []string{"a", "b"}})
		},
		wantReq: patient.UpdateRequest{ID: alice.ID, Family: ptr("Lovelace"), Given: ptr([]string{}), Phone: ptr(""),
			Identifiers: ptr([]patient.Identifier{{System: "urn:x", Value: "1"}}), ConfirmNotDuplicate: []string{"a", "b"}},
		answer: alice,
	}, {
		name: "create with demographics", method: patient.MethodCreate,
		call: func(ctx context.Context, c patient.Set) (any, error) {
			return c.Create(ctx, patient.CreateRequest{Family: "L", Given: []string{"A", "B"}, Gender: "female", Phone: "+1 555",
				Identifiers: []patient.Identifier{{System: "urn:x", Value: "1"}}, ConfirmNotDuplicate: []string{"c"}})
		},
		wantReq: patient.CreateRequest{Family: "L", Given: []string{"A", "B"}, Gender: "female", Phone: "+1 555",
			Identifiers: []patient.Identifier{{System: "urn:x", Value: "1"}}, ConfirmNotDuplicate: []string{"c"}},
		answer: alice,
	}, {
		name: "delete", method: patient.MethodDelete,
		call: func(ctx context.Context, c patient.Set) (any, error) {
			return nil, c.Delete(ctx, patient.DeleteRequest{ID: alice.ID, IfMatch: 9})
		},
		wantReq: patient.DeleteRequest{ID: alice.ID, IfMatch: 9},
	}, {
		name: "history", method: patient.MethodHistory,
		call:    func(ctx context.Context, c patient.Set) (any, error) { return c.History(ctx, alice.ID) },
		wantReq: alice.ID,
		answer: []patient.Version{
			{Version: 1, Change: patient.ChangeCreated, ChangedAt: created, ChangedBy: "u-1", Role: "clinician", RequestID: "r-1", Patient: bob},
			{Version: 2, Change: patient.ChangeDeleted, ChangedAt: updated, ChangedBy: "svc:patient", Patient: patient.Patient{ID: bob.ID}.WithLists()},
		},
	}, {
		name: "history empty", method: patient.MethodHistory,
		call:    func(ctx context.Context, c patient.Set) (any, error) { return c.History(ctx, "none") },
		wantReq: "none",
		answer:  []patient.Version{},
	}, {
		name: "audit", method: patient.MethodAudit,
		call: func(ctx context.Context, c patient.Set) (any, error) {
			return c.Audit(ctx, patient.AuditQuery{PatientID: alice.ID, Actor: "u-1", From: created, To: updated, Limit: 10})
		},
		wantReq: patient.AuditQuery{PatientID: alice.ID, Actor: "u-1", From: created, To: updated, Limit: 10},
		answer: []patient.AuditEntry{{
			ID: "a-1", At: updated, Actor: "u-1", Role: "admin", Action: patient.ActionRead, PatientID: alice.ID,
			Outcome: "allowed", RequestID: "r-9", ClientAddress: "203.0.113.7",
		}, {ID: "a-2"}},
	}, {
		name: "audit without filters", method: patient.MethodAudit,
		call:    func(ctx context.Context, c patient.Set) (any, error) { return c.Audit(ctx, patient.AuditQuery{}) },
		wantReq: patient.AuditQuery{},
		answer:  []patient.AuditEntry{},
	}, {
		name: "billing account", method: patient.MethodBillingAccount,
		call:    func(ctx context.Context, c patient.Set) (any, error) { return c.BillingAccount(ctx, alice.ID) },
		wantReq: alice.ID,
		answer:  patient.BillingAccount{ID: "acc-1", PatientID: alice.ID, Status: "active", CreatedAt: created},
	}, {
		name: "invoices", method: patient.MethodInvoices,
		call:    func(ctx context.Context, c patient.Set) (any, error) { return c.Invoices(ctx, alice.ID) },
		wantReq: alice.ID,
		answer: []patient.Invoice{{
			ID: "inv-1", PatientID: alice.ID, AccountID: "acc-1", Currency: "BHD", Status: "open", DueDate: "2026-12-31",
			Lines:    []patient.InvoiceLine{{Description: "Consultation", Quantity: 2, UnitAmount: 12345, Amount: 24690}},
			Subtotal: 24690, AmountPaid: 690, AmountDue: 24000,
			Payments: []patient.InvoicePayment{{ID: "pay-1", Amount: 690, Method: "cash", At: updated}},
			Version:  3, CreatedAt: created, UpdatedAt: updated,
		}, {ID: "inv-2", Lines: []patient.InvoiceLine{}, Payments: []patient.InvoicePayment{}}},
	}, {
		name: "no invoices", method: patient.MethodInvoices,
		call:    func(ctx context.Context, c patient.Set) (any, error) { return c.Invoices(ctx, "x") },
		wantReq: "x",
		answer:  []patient.Invoice{},
	}, {
		name: "access log", method: patient.MethodAccessLog,
		call: func(ctx context.Context, c patient.Set) (any, error) {
			return c.AccessLog(ctx, patient.AccessLogQuery{PatientID: alice.ID, Limit: 5, PageToken: "t1"})
		},
		wantReq: patient.AccessLogQuery{PatientID: alice.ID, Limit: 5, PageToken: "t1"},
		answer: patient.AccessLogPage{NextPageToken: "t2", Records: []patient.AccessRecord{{
			EntryID: "e-1", At: updated, Actor: "u-1", Role: "clinician", Action: patient.ActionSearch, Outcome: "success",
			Position: 4, RequestID: "r-1", ClientAddress: "203.0.113.7", Transport: "grpc", Emergency: true,
		}}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.stub.setFn(func(string, any) (any, error) { return tt.answer, nil })
			got, err := tt.call(testContext(t), h.client)
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			c := h.stub.last(t)
			if c.method != tt.method {
				t.Errorf("service method = %s, want %s", c.method, tt.method)
			}
			if !reflect.DeepEqual(c.req, tt.wantReq) {
				t.Errorf("service got\n%#v\nwant\n%#v", c.req, tt.wantReq)
			}
			if tt.answer != nil && !reflect.DeepEqual(got, tt.answer) {
				t.Errorf("caller got\n%#v\nwant\n%#v", got, tt.answer)
			}
		})
	}
}

// fullUpdate is an update echoing every read-only field, a fresh copy each time.
func fullUpdate() patient.UpdateRequest {
	return patient.UpdateRequest{
		ID: alice.ID, Name: "Alice B. Example", Email: "alice.b@example.org", Address: "3 New Rd",
		DateOfBirth: "1980-02-29", IfMatch: 3,
		Unchanged: patient.ReadOnlyFields{
			ID: ptr(alice.ID), MRN: ptr(alice.MRN), RegisteredDate: ptr(alice.RegisteredDate), Version: ptr(int64(3)),
			CreatedAt: ptr("2026-11-25T09:30:01.123456789Z"), UpdatedAt: ptr("2026-11-26T19:00:00+02:00"),
		},
	}
}

// TestEveryMethodIsAnRPC guards the client's method names: they are the endpoint method
// constants, which must name PatientService's RPCs.
func TestEveryMethodIsAnRPC(t *testing.T) {
	rpcs := map[string]bool{}
	for _, m := range patientv1.PatientService_ServiceDesc.Methods {
		rpcs[m.MethodName] = true
	}
	for _, m := range patient.Methods {
		if !rpcs[m] {
			t.Errorf("patient.%s is not an RPC of PatientService", m)
		}
	}
	if len(rpcs) != len(patient.Methods) {
		t.Errorf("PatientService has %d RPCs, patient.Methods %d", len(rpcs), len(patient.Methods))
	}
}

// TestContextTravels checks that the request id, bearer token and client address a caller
// holds reach the service's context, and that the service knows it was called over gRPC.
func TestContextTravels(t *testing.T) {
	h := startHarness(t, ServerOptions{})
	ctx := observe.WithRequestID(testContext(t), "req-42")
	ctx = context.WithValue(ctx, kitjwt.JWTContextKey, "header.payload.sig")
	ctx = observe.WithClientAddr(ctx, "203.0.113.7")
	if _, err := h.client.Get(ctx, "id"); err != nil {
		t.Fatal(err)
	}
	got := h.stub.last(t).ctx
	if id := observe.RequestID(got); id != "req-42" {
		t.Errorf("request id = %q, want req-42", id)
	}
	if tok, _ := got.Value(kitjwt.JWTContextKey).(string); tok != "header.payload.sig" {
		t.Errorf("token = %q", tok)
	}
	if tr := observe.Transport(got); tr != "grpc" {
		t.Errorf("transport = %q, want grpc", tr)
	}
	if addr := observe.ClientAddr(got); addr != "203.0.113.7" {
		t.Errorf("client address = %q, want the forwarded one (loopback is a trusted proxy)", addr)
	}
}

// TestNoContextValues checks the server's defaults when the caller sends nothing: a new
// request id, no token, the peer's address.
func TestNoContextValues(t *testing.T) {
	h := startHarness(t, ServerOptions{})
	if _, err := h.client.Get(testContext(t), "id"); err != nil {
		t.Fatal(err)
	}
	got := h.stub.last(t).ctx
	if id := observe.RequestID(got); len(id) != 32 {
		t.Errorf("request id = %q, want a new one", id)
	}
	if tok := got.Value(kitjwt.JWTContextKey); tok != nil {
		t.Errorf("token = %v, want none", tok)
	}
	if addr := observe.ClientAddr(got); addr != "127.0.0.1" {
		t.Errorf("client address = %q, want 127.0.0.1", addr)
	}
}

// TestUntrustedPeerCannotForwardAddress checks that x-forwarded-for from a peer outside
// TrustedProxies is ignored.
func TestUntrustedPeerCannotForwardAddress(t *testing.T) {
	h := startHarness(t, ServerOptions{TrustedProxies: []netip.Prefix{}})
	ctx := observe.WithClientAddr(testContext(t), "203.0.113.7")
	if _, err := h.client.Get(ctx, "id"); err != nil {
		t.Fatal(err)
	}
	if addr := observe.ClientAddr(h.stub.last(t).ctx); addr != "127.0.0.1" {
		t.Errorf("client address = %q, want the peer's 127.0.0.1", addr)
	}
}

// TestErrorsRoundTrip checks that every kind of the contract comes back from the service as
// the same kind, message, fields and retry hint, so errors.Is holds on the client.
func TestErrorsRoundTrip(t *testing.T) {
	h := startHarness(t, ServerOptions{})
	for _, k := range errs.Kinds {
		t.Run(string(k), func(t *testing.T) {
			sent := &errs.Error{Kind: k, Message: "the " + string(k) + " message"}
			if k == errs.InvalidArgument {
				sent.Fields = map[string]string{"name": "must not be blank", "dateOfBirth": "must not be in the future"}
			}
			if k == errs.RateLimited {
				sent.RetryAfter = 3 * time.Second
			}
			if k == errs.MFARequired || k == errs.PasswordChangeRequired {
				sent.Challenge, sent.Enrol = "challenge-"+string(k), k == errs.MFARequired
			}
			h.stub.setFn(func(string, any) (any, error) { return nil, sent })
			_, err := h.client.Get(testContext(t), "id")
			if !errors.Is(err, &errs.Error{Kind: k}) {
				t.Fatalf("err = %v (kind %s), want kind %s", err, errs.KindOf(err), k)
			}
			got := errs.As(err)
			wantMsg := sent.Message
			if k == errs.Internal {
				wantMsg = "internal error"
			}
			if got.Message != wantMsg {
				t.Errorf("message = %q, want %q", got.Message, wantMsg)
			}
			if !reflect.DeepEqual(got.Fields, sent.Fields) {
				t.Errorf("fields = %v, want %v", got.Fields, sent.Fields)
			}
			if got.RetryAfter != sent.RetryAfter {
				t.Errorf("retry after = %v, want %v", got.RetryAfter, sent.RetryAfter)
			}
			if got.Challenge != sent.Challenge || got.Enrol != sent.Enrol {
				t.Errorf("challenge %q enrol %v, want %q %v", got.Challenge, got.Enrol, sent.Challenge, sent.Enrol)
			}
		})
	}
}

// TestDomainErrorsRoundTrip checks the patient package's own error values on the client.
func TestDomainErrorsRoundTrip(t *testing.T) {
	h := startHarness(t, ServerOptions{})
	for _, sent := range []error{patient.ErrNotFound, patient.ErrGone, patient.ErrEmailTaken, patient.ErrVersionMismatch} {
		h.stub.setFn(func(string, any) (any, error) { return nil, sent })
		_, err := h.client.Get(testContext(t), "id")
		if !errors.Is(err, sent) {
			t.Errorf("sent %v, got %v", sent, err)
		}
		if err == nil || err.Error() != sent.Error() {
			t.Errorf("message = %v, want %q", err, sent.Error())
		}
	}
	h.stub.setFn(func(string, any) (any, error) { return nil, patient.ErrGone })
	if _, err := h.client.Get(testContext(t), "id"); errors.Is(err, patient.ErrNotFound) {
		t.Error("gone came back as not_found")
	}
}

// TestInternalErrorsHideTheirCause checks that neither a plain error nor an Internal error's
// cause reaches the client.
func TestInternalErrorsHideTheirCause(t *testing.T) {
	h := startHarness(t, ServerOptions{})
	for _, sent := range []error{
		errors.New("pq: relation patients does not exist (secret)"),
		errs.Wrap(errs.Internal, "internal error", errors.New("secret cause")),
		&errs.Error{Kind: "no_such_kind", Message: "secret word"},
	} {
		h.stub.setFn(func(string, any) (any, error) { return nil, sent })
		_, err := patientv1.NewPatientServiceClient(h.conn).GetPatient(testContext(t), &patientv1.GetPatientRequest{Id: "x"})
		if err == nil || strings.Contains(err.Error(), "secret") {
			t.Errorf("status %v leaks the cause of %v", err, sent)
		}
		if k := errs.KindOf(FromStatus(err)); k != errs.Internal {
			t.Errorf("kind = %s, want internal", k)
		}
	}
}

// TestBadTimestampIsInvalid checks that an out-of-range Timestamp in a request is refused
// as invalid_argument with the contract's field name, not turned into another instant.
func TestBadTimestampIsInvalid(t *testing.T) {
	h := startHarness(t, ServerOptions{})
	before := h.stub.count()
	_, err := patientv1.NewPatientServiceClient(h.conn).ListAudit(testContext(t),
		&patientv1.ListAuditRequest{To: &timestamppb.Timestamp{Seconds: 1, Nanos: -1}})
	e := errs.As(FromStatus(err))
	if e.Kind != errs.InvalidArgument || e.Fields["to"] == "" {
		t.Fatalf("err = %v %v, want invalid_argument on field to", e, e.Fields)
	}
	if h.stub.count() != before {
		t.Error("the service was called with an invalid request")
	}
}

// TestOversizedRequest checks that a request over the contract's 1 MiB limit is refused as
// payload_too_large before it reaches the service.
func TestOversizedRequest(t *testing.T) {
	h := startHarness(t, ServerOptions{})
	_, err := h.client.Create(testContext(t), patient.CreateRequest{Address: strings.Repeat("a", MaxMessageSize)})
	if k := errs.KindOf(err); k != errs.PayloadTooLarge {
		t.Fatalf("err = %v (kind %s), want payload_too_large", err, k)
	}
	if h.stub.count() != 0 {
		t.Error("the service was called")
	}
}

// TestPanicIsInternal checks that a panicking service gives the caller an Internal error and
// leaves the server serving.
func TestPanicIsInternal(t *testing.T) {
	h := startHarness(t, ServerOptions{})
	h.stub.setFn(func(string, any) (any, error) { panic("boom with secret") })
	_, err := h.client.Get(testContext(t), "id")
	if k := errs.KindOf(err); k != errs.Internal || strings.Contains(err.Error(), "secret") {
		t.Fatalf("err = %v (kind %s), want a bare internal error", err, k)
	}
	h.stub.setFn(nil)
	if _, err := h.client.Get(testContext(t), "id"); err != nil {
		t.Fatalf("after the panic: %v", err)
	}
}

// TestNilMessagesDoNotPanic calls every method of the binding with nil requests and a
// service answering zero values, as a careless in-process caller might.
func TestNilMessagesDoNotPanic(t *testing.T) {
	s := newPatientServer(patient.NewEndpoints(&stubService{}, patient.EndpointOptions{Guard: authz.AllowAnonymous()}))
	ctx := testContext(t)
	check := func(name string, err error) {
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	_, err := s.CreatePatient(ctx, nil)
	check("CreatePatient", err)
	_, err = s.GetPatient(ctx, nil)
	check("GetPatient", err)
	_, err = s.ListPatients(ctx, nil)
	check("ListPatients", err)
	_, err = s.UpdatePatient(ctx, nil)
	check("UpdatePatient", err)
	_, err = s.DeletePatient(ctx, nil)
	check("DeletePatient", err)
	_, err = s.GetPatientHistory(ctx, nil)
	check("GetPatientHistory", err)
	_, err = s.ListAudit(ctx, nil)
	check("ListAudit", err)
	_, err = s.GetPatientBillingAccount(ctx, nil)
	check("GetPatientBillingAccount", err)
	_, err = s.ListPatientInvoices(ctx, nil)
	check("ListPatientInvoices", err)

	if got := versionFromPB(&patientv1.PatientVersion{}); !reflect.DeepEqual(got, patient.Version{Patient: patient.Patient{}.WithLists()}) {
		t.Errorf("empty version = %#v", got)
	}
	if got := pageFromPB(&patientv1.ListPatientsResponse{Patients: []*patientv1.Patient{nil}}); len(got.Patients) != 1 {
		t.Errorf("page with a nil patient = %#v", got)
	}
}
