package grpctransport

import (
	"context"
	"errors"
	"net"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/breaker"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/retry"
	billingv0 "github.com/pms/pms/proto/legacy/billingv0"
	billingv1 "github.com/pms/pms/proto/pms/billing/v1"
)

// stubBilling is a billing.Service answering through the shared stub's fn.
type stubBilling struct{ stubService }

func (s *stubBilling) CreateAccount(ctx context.Context, r billing.CreateAccountRequest) (billing.Account, error) {
	return stubResult[billing.Account](s.do(ctx, billing.MethodCreateAccount, r))
}
func (s *stubBilling) GetAccount(ctx context.Context, id string) (billing.Account, error) {
	return stubResult[billing.Account](s.do(ctx, billing.MethodGetAccount, id))
}
func (s *stubBilling) ListAccounts(ctx context.Context, q billing.AccountQuery) ([]billing.Account, error) {
	return stubResult[[]billing.Account](s.do(ctx, billing.MethodListAccounts, q))
}
func (s *stubBilling) CreateInvoice(ctx context.Context, r billing.CreateInvoiceRequest) (billing.Invoice, error) {
	return stubResult[billing.Invoice](s.do(ctx, billing.MethodCreateInvoice, r))
}
func (s *stubBilling) GetInvoice(ctx context.Context, id string) (billing.Invoice, error) {
	return stubResult[billing.Invoice](s.do(ctx, billing.MethodGetInvoice, id))
}
func (s *stubBilling) ListInvoices(ctx context.Context, q billing.InvoiceQuery) (billing.InvoicePage, error) {
	return stubResult[billing.InvoicePage](s.do(ctx, billing.MethodListInvoices, q))
}
func (s *stubBilling) IssueInvoice(ctx context.Context, id string) (billing.Invoice, error) {
	return stubResult[billing.Invoice](s.do(ctx, billing.MethodIssueInvoice, id))
}
func (s *stubBilling) RecordPayment(ctx context.Context, r billing.PaymentRequest) (billing.Invoice, error) {
	return stubResult[billing.Invoice](s.do(ctx, billing.MethodRecordPayment, r))
}
func (s *stubBilling) VoidInvoice(ctx context.Context, id string) (billing.Invoice, error) {
	return stubResult[billing.Invoice](s.do(ctx, billing.MethodVoidInvoice, id))
}
func (s *stubBilling) Audit(ctx context.Context, q audit.Query) ([]audit.Record, error) {
	return stubResult[[]audit.Record](s.do(ctx, billing.MethodAudit, q))
}
func (s *stubBilling) VerifyAudit(ctx context.Context) (audit.Report, error) {
	return stubResult[audit.Report](s.do(ctx, billing.MethodVerifyAudit, billing.VerifyAuditRequest{}))
}

// billingHarness serves svc on a loopback port through the real endpoint set and server.
type billingHarness struct {
	server *grpc.Server
	addr   string
	conn   *grpc.ClientConn
	client billing.Set
	served chan error
}

func startBilling(t *testing.T, svc billing.Service, addr string) *billingHarness {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	h := &billingHarness{server: NewServer(ServerOptions{}), addr: lis.Addr().String(), served: make(chan error, 1)}
	RegisterBillingServer(h.server, billing.NewEndpoints(svc, billing.EndpointOptions{Guard: authz.AllowAnonymous()}))
	go func() { h.served <- h.server.Serve(lis) }()
	t.Cleanup(h.stop)
	return h
}

func (h *billingHarness) stop() {
	h.server.Stop()
	<-h.served
	h.served <- nil // stop is idempotent
}

func startStubBilling(t *testing.T) (*stubBilling, *billingHarness) {
	stub := &stubBilling{}
	h := startBilling(t, stub, "127.0.0.1:0")
	h.conn = dial(t, h.addr)
	h.client = NewBillingClient(h.conn)
	return stub, h
}

var (
	testAccount = billing.Account{ID: "a-1", PatientID: alice.ID, Status: "active", CreatedAt: created}
	testInvoice = billing.Invoice{
		ID: "i-1", PatientID: alice.ID, AccountID: "a-1", Currency: "KWD", Status: billing.StatusOpen, DueDate: "2026-12-31",
		Lines: []billing.Line{{Description: "Consultation", Quantity: 3, UnitAmount: 12345, Amount: 37035},
			{Description: "Free", Quantity: 1, UnitAmount: 0, Amount: 0}},
		Subtotal: 37035, AmountPaid: 35, AmountDue: 37000,
		Payments: []billing.Payment{{ID: "p-1", Amount: 35, Method: billing.MethodCash, At: updated}},
		Version:  4, CreatedAt: created, UpdatedAt: updated,
	}
)

// TestBillingRoundTrip sends every operation through the real client, wire and server.
func TestBillingRoundTrip(t *testing.T) {
	stub, h := startStubBilling(t)
	createReq := billing.CreateInvoiceRequest{PatientID: alice.ID, Currency: "kwd", DueDate: "2026-12-31", IdempotencyKey: "k-1",
		Lines: []billing.LineInput{{Description: "Consultation", Quantity: 3, UnitAmount: 12345, Currency: "KWD"}, {Description: "Free", Quantity: 1}}}
	payReq := billing.PaymentRequest{InvoiceID: "i-1", Amount: 35, Method: billing.MethodCash, Currency: "KWD", IdempotencyKey: "k-2"}
	tests := []struct {
		name    string
		method  string
		call    func(ctx context.Context, c billing.Set) (any, error)
		wantReq any
		answer  any
	}{
		{"create account", billing.MethodCreateAccount, func(ctx context.Context, c billing.Set) (any, error) {
			return c.CreateAccount(ctx, billing.CreateAccountRequest{PatientID: alice.ID, Name: alice.Name, Email: alice.Email})
		}, billing.CreateAccountRequest{PatientID: alice.ID, Name: alice.Name, Email: alice.Email}, testAccount},
		{"get account", billing.MethodGetAccount, func(ctx context.Context, c billing.Set) (any, error) {
			return c.GetAccount(ctx, "a-1")
		}, "a-1", testAccount},
		{"list accounts", billing.MethodListAccounts, func(ctx context.Context, c billing.Set) (any, error) {
			return c.ListAccounts(ctx, billing.AccountQuery{PatientID: alice.ID})
		}, billing.AccountQuery{PatientID: alice.ID}, []billing.Account{testAccount}},
		{"list no accounts", billing.MethodListAccounts, func(ctx context.Context, c billing.Set) (any, error) {
			return c.ListAccounts(ctx, billing.AccountQuery{})
		}, billing.AccountQuery{}, []billing.Account{}},
		{"create invoice", billing.MethodCreateInvoice, func(ctx context.Context, c billing.Set) (any, error) {
			return c.CreateInvoice(ctx, createReq)
		}, createReq, testInvoice},
		{"create invoice without lines", billing.MethodCreateInvoice, func(ctx context.Context, c billing.Set) (any, error) {
			return c.CreateInvoice(ctx, billing.CreateInvoiceRequest{})
		}, billing.CreateInvoiceRequest{}, billing.Invoice{Lines: []billing.Line{}, Payments: []billing.Payment{}}},
		{"get invoice", billing.MethodGetInvoice, func(ctx context.Context, c billing.Set) (any, error) {
			return c.GetInvoice(ctx, "i-1")
		}, "i-1", testInvoice},
		{"list invoices", billing.MethodListInvoices, func(ctx context.Context, c billing.Set) (any, error) {
			return c.ListInvoices(ctx, billing.InvoiceQuery{PatientID: alice.ID, Status: "open", Limit: 7, PageToken: "t"})
		}, billing.InvoiceQuery{PatientID: alice.ID, Status: "open", Limit: 7, PageToken: "t"},
			billing.InvoicePage{Invoices: []billing.Invoice{testInvoice}, NextPageToken: "n"}},
		{"list no invoices", billing.MethodListInvoices, func(ctx context.Context, c billing.Set) (any, error) {
			return c.ListInvoices(ctx, billing.InvoiceQuery{})
		}, billing.InvoiceQuery{}, billing.InvoicePage{Invoices: []billing.Invoice{}}},
		{"issue", billing.MethodIssueInvoice, func(ctx context.Context, c billing.Set) (any, error) {
			return c.IssueInvoice(ctx, "i-1")
		}, "i-1", testInvoice},
		{"pay", billing.MethodRecordPayment, func(ctx context.Context, c billing.Set) (any, error) {
			return c.RecordPayment(ctx, payReq)
		}, payReq, testInvoice},
		{"void", billing.MethodVoidInvoice, func(ctx context.Context, c billing.Set) (any, error) {
			return c.VoidInvoice(ctx, "i-1")
		}, "i-1", testInvoice},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stub.setFn(func(string, any) (any, error) { return tt.answer, nil })
			got, err := tt.call(testContext(t), h.client)
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			c := stub.last(t)
			if c.method != tt.method || !reflect.DeepEqual(c.req, tt.wantReq) {
				t.Errorf("service got %s\n%#v\nwant %s\n%#v", c.method, c.req, tt.method, tt.wantReq)
			}
			if !reflect.DeepEqual(got, tt.answer) {
				t.Errorf("caller got\n%#v\nwant\n%#v", got, tt.answer)
			}
		})
	}
}

// TestBillingErrorsRoundTrip: every kind, and billing's own errors, arrive as sent, over
// every method.
func TestBillingErrorsRoundTrip(t *testing.T) {
	stub, h := startStubBilling(t)
	calls := map[string]func(ctx context.Context) error{
		billing.MethodCreateAccount: func(ctx context.Context) error {
			_, err := h.client.CreateAccount(ctx, billing.CreateAccountRequest{})
			return err
		},
		billing.MethodGetAccount: func(ctx context.Context) error { _, err := h.client.GetAccount(ctx, "x"); return err },
		billing.MethodListAccounts: func(ctx context.Context) error {
			_, err := h.client.ListAccounts(ctx, billing.AccountQuery{})
			return err
		},
		billing.MethodCreateInvoice: func(ctx context.Context) error {
			_, err := h.client.CreateInvoice(ctx, billing.CreateInvoiceRequest{})
			return err
		},
		billing.MethodGetInvoice: func(ctx context.Context) error { _, err := h.client.GetInvoice(ctx, "x"); return err },
		billing.MethodListInvoices: func(ctx context.Context) error {
			_, err := h.client.ListInvoices(ctx, billing.InvoiceQuery{})
			return err
		},
		billing.MethodIssueInvoice: func(ctx context.Context) error { _, err := h.client.IssueInvoice(ctx, "x"); return err },
		billing.MethodRecordPayment: func(ctx context.Context) error {
			_, err := h.client.RecordPayment(ctx, billing.PaymentRequest{})
			return err
		},
		billing.MethodVoidInvoice: func(ctx context.Context) error { _, err := h.client.VoidInvoice(ctx, "x"); return err },
		billing.MethodAudit:       func(ctx context.Context) error { _, err := h.client.Audit(ctx, audit.Query{}); return err },
		billing.MethodVerifyAudit: func(ctx context.Context) error { _, err := h.client.VerifyAudit(ctx); return err },
	}
	if len(calls) != len(billing.Methods) {
		t.Fatalf("%d calls for %d methods", len(calls), len(billing.Methods))
	}
	for method, call := range calls {
		for _, k := range errs.Kinds {
			sent := &errs.Error{Kind: k, Message: "the " + string(k) + " message"}
			if k == errs.InvalidArgument {
				sent.Fields = map[string]string{"lines[0].quantity": "must be an integer from 1 to 10000"}
			}
			if k == errs.RateLimited {
				sent.RetryAfter = 2 * time.Second
			}
			stub.setFn(func(string, any) (any, error) { return nil, sent })
			err := call(testContext(t))
			got := errs.As(err)
			wantMsg := sent.Message
			if k == errs.Internal {
				wantMsg = "internal error"
			}
			if got.Kind != k || got.Message != wantMsg || !reflect.DeepEqual(got.Fields, sent.Fields) || got.RetryAfter != sent.RetryAfter {
				t.Errorf("%s %s: got %#v", method, k, got)
			}
		}
	}
	for _, sent := range []error{billing.ErrNoAccount, billing.ErrInvoiceNotFound, billing.ErrIdempotencyConflict, billing.ErrMixedCurrency} {
		stub.setFn(func(string, any) (any, error) { return nil, sent })
		if _, err := h.client.GetInvoice(testContext(t), "x"); !errors.Is(err, sent) || err.Error() != sent.Error() {
			t.Errorf("sent %v, got %v", sent, err)
		}
	}
}

// TestBillingAuditRoundTrip: the audit read's query reaches the service field by field over
// gRPC and its entries come back whole; an out-of-range instant is refused before the service.
func TestBillingAuditRoundTrip(t *testing.T) {
	stub, h := startStubBilling(t)
	at := time.Date(2026, 12, 4, 10, 0, 0, 123000, time.UTC)
	want := []audit.Record{{ID: "e1", At: at, Actor: "u1", Role: "billing", Action: "read_invoice", SubjectID: "s1",
		Outcome: "success", RequestID: "r1", ClientAddress: "10.0.0.1"}}
	stub.setFn(func(string, any) (any, error) { return want, nil })
	q := audit.Query{SubjectID: "s1", Actor: "u1", From: at.Add(-time.Hour), To: at, Limit: 7}
	got, err := h.client.Audit(testContext(t), q)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Audit = %+v, %v; want %+v", got, err, want)
	}
	if c := stub.last(t); c.method != billing.MethodAudit || !reflect.DeepEqual(c.req, q) {
		t.Fatalf("the service got %s %+v; want %+v", c.method, c.req, q)
	}
	n := stub.count()
	_, err = billingv1.NewBillingServiceClient(h.conn).ListAudit(testContext(t),
		&billingv1.ListAuditRequest{From: &timestamppb.Timestamp{Seconds: 1 << 62}})
	if status.Code(err) != codes.InvalidArgument || stub.count() != n {
		t.Fatalf("out-of-range from: %v, service called %d times; want InvalidArgument, uncalled", err, stub.count()-n)
	}
}

// TestEveryBillingMethodIsAnRPC guards the client's method names.
func TestEveryBillingMethodIsAnRPC(t *testing.T) {
	var rpcs []string
	for _, m := range billingv1.BillingService_ServiceDesc.Methods {
		rpcs = append(rpcs, m.MethodName)
	}
	slices.Sort(rpcs)
	methods := slices.Sorted(slices.Values(billing.Methods))
	if !slices.Equal(rpcs, methods) {
		t.Fatalf("BillingService RPCs %v, billing.Methods %v", rpcs, methods)
	}
}

// TestBillingReflection lists the services as `grpcurl list` does and describes the earlier
// implementation's one, which must keep its package-less wire name.
func TestBillingReflection(t *testing.T) {
	_, h := startStubBilling(t)
	stream, err := reflectionpb.NewServerReflectionClient(h.conn).ServerReflectionInfo(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	ask := func(r *reflectionpb.ServerReflectionRequest) *reflectionpb.ServerReflectionResponse {
		t.Helper()
		if err := stream.Send(r); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	listed := map[string]bool{}
	for _, s := range ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}).GetListServicesResponse().GetService() {
		listed[s.GetName()] = true
	}
	for _, want := range []string{"pms.billing.v1.BillingService", "BillingService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
		if !listed[want] {
			t.Errorf("reflection does not list %s (got %v)", want, listed)
		}
	}
	resp := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "BillingService"}})
	files := resp.GetFileDescriptorResponse().GetFileDescriptorProto()
	if len(files) == 0 {
		t.Fatalf("no descriptor for BillingService: %v", resp.GetErrorResponse())
	}
	var fd descriptorpb.FileDescriptorProto
	if err := proto.Unmarshal(files[0], &fd); err != nil {
		t.Fatal(err)
	}
	if fd.GetPackage() != "" || len(fd.GetService()) != 1 || fd.GetService()[0].GetName() != "BillingService" {
		t.Fatalf("legacy descriptor: package %q services %v", fd.GetPackage(), fd.GetService())
	}
	m := fd.GetService()[0].GetMethod()
	if len(m) != 1 || m[0].GetName() != "CreateBillingAccount" || m[0].GetInputType() != ".BillingRequest" || m[0].GetOutputType() != ".BillingResponse" {
		t.Fatalf("legacy methods %v", m)
	}
	_ = stream.CloseSend()
}

// newRealBilling is the real billing service over a fresh database.
func newRealBilling(t *testing.T, d *db.DB) billing.Service {
	t.Helper()
	w := audit.NewWriter(d, audit.Options{Table: billing.AuditTable})
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	return billing.NewService(billing.NewStore(d), w, billing.Options{})
}

// TestLegacyCreateBillingAccount calls /BillingService/CreateBillingAccount as the earlier
// implementation's clients do, against the real service: it answers with a real account id,
// the same one for the same patient, and that account is the one the v1 API shows.
func TestLegacyCreateBillingAccount(t *testing.T) {
	dbtest.Each(t, migrations.Billing(), func(t *testing.T, d *db.DB) {
		h := startBilling(t, newRealBilling(t, d), "127.0.0.1:0")
		conn := dial(t, h.addr)
		legacy := billingv0.NewBillingServiceClient(conn)
		if got := billingv0.BillingService_CreateBillingAccount_FullMethodName; got != "/BillingService/CreateBillingAccount" {
			t.Fatalf("wire name %s", got)
		}
		pid := "0b7e3a52-5c55-4d8e-9b64-1f3c0a0b9c21"
		resp, err := legacy.CreateBillingAccount(testContext(t), &billingv0.BillingRequest{PatientId: pid, Name: "Bob", Email: "bob@example.org"})
		if err != nil || resp.GetStatus() != "ACTIVE" || len(resp.GetAccountId()) != 36 {
			t.Fatalf("legacy create = %v, %v", resp, err)
		}
		again, err := legacy.CreateBillingAccount(testContext(t), &billingv0.BillingRequest{PatientId: pid})
		if err != nil || again.GetAccountId() != resp.GetAccountId() {
			t.Fatalf("second legacy create = %v, %v", again, err)
		}
		c := NewBillingClient(conn)
		a, err := c.GetAccount(testContext(t), resp.GetAccountId())
		if err != nil || a.PatientID != pid || a.Status != billing.AccountActive {
			t.Fatalf("account = %+v, %v", a, err)
		}
		if v1, err := c.CreateAccount(testContext(t), billing.CreateAccountRequest{PatientID: pid}); err != nil || v1.ID != a.ID {
			t.Fatalf("v1 create = %+v, %v", v1, err)
		}
		_, err = legacy.CreateBillingAccount(testContext(t), &billingv0.BillingRequest{PatientId: "not-a-uuid"})
		if e := errs.As(FromStatus(err)); e.Kind != errs.InvalidArgument || e.Fields["patientId"] == "" {
			t.Fatalf("bad patient id: %v", err)
		}
	})
}

// TestBreakerAgainstRealServer wraps the client as the patient service does (deadline,
// retry, breaker) and stops the real server under it: calls fail as unavailable, the breaker
// opens and then fails them without calling; when the server returns on the same address,
// the breaker lets a trial call through and closes.
func TestBreakerAgainstRealServer(t *testing.T) {
	d := dbtest.Open(t, db.SQLite, migrations.Billing())
	svc := newRealBilling(t, d)
	h := startBilling(t, svc, "127.0.0.1:0")
	conn, err := grpc.NewClient(h.addr, append(ClientDialOptions(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.6, MaxDelay: 200 * time.Millisecond}}))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	var changes []string
	br := breaker.New(breaker.Options{Name: "billing", Failures: 3, OpenFor: 50 * time.Millisecond,
		OnStateChange: func(_, from, to string) { changes = append(changes, to) }})
	client := NewBillingClient(conn).Wrap(retry.Middleware(retry.Options{Attempts: 2, Timeout: 5 * time.Second}), br.Middleware())
	pid := "6f1c1f8e-3c1a-4a53-9d0e-2b8f5f1e7a10"
	a, err := client.CreateAccount(testContext(t), billing.CreateAccountRequest{PatientID: pid})
	if err != nil {
		t.Fatal(err)
	}
	// An answer (not_found) is the server working: the breaker stays closed.
	for range 5 {
		if _, err := client.GetAccount(testContext(t), "00000000-0000-4000-8000-000000000000"); errs.KindOf(err) != errs.NotFound {
			t.Fatalf("unknown account: %v", err)
		}
	}
	if br.State() != "closed" {
		t.Fatalf("state %s after not_found answers", br.State())
	}

	h.stop()
	var opened bool
	for range 10 {
		_, err := client.ListAccounts(testContext(t), billing.AccountQuery{PatientID: pid})
		if errs.KindOf(err) != errs.Unavailable {
			t.Fatalf("server stopped: %v (%s), want unavailable", err, errs.KindOf(err))
		}
		if breaker.IsOpen(err) {
			opened = true
			break
		}
	}
	if !opened || br.State() == "closed" {
		t.Fatalf("breaker did not open (state %s)", br.State())
	}

	startBilling(t, svc, h.addr)
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := client.ListAccounts(testContext(t), billing.AccountQuery{PatientID: pid})
		if err == nil {
			if len(got) != 1 || got[0].ID != a.ID {
				t.Fatalf("after restart: %+v", got)
			}
			break
		}
		if errs.KindOf(err) != errs.Unavailable || time.Now().After(deadline) {
			t.Fatalf("breaker did not close after the server returned: %v (state %s)", err, br.State())
		}
		time.Sleep(5 * time.Millisecond) // polling with a deadline
	}
	if br.State() != "closed" || !slices.Contains(changes, "open") || changes[len(changes)-1] != "closed" {
		t.Fatalf("state %s, changes %v", br.State(), changes)
	}
}

// TestBillingNilMessagesDoNotPanic calls every method of both bindings with nil requests.
func TestBillingNilMessagesDoNotPanic(t *testing.T) {
	s := newBillingServer(billing.NewEndpoints(&stubBilling{}, billing.EndpointOptions{Guard: authz.AllowAnonymous()}))
	ctx := testContext(t)
	for name, call := range map[string]func() error{
		"CreateBillingAccount": func() error { _, err := s.CreateBillingAccount(ctx, nil); return err },
		"GetAccount":           func() error { _, err := s.GetAccount(ctx, nil); return err },
		"ListAccounts":         func() error { _, err := s.ListAccounts(ctx, nil); return err },
		"CreateInvoice":        func() error { _, err := s.CreateInvoice(ctx, nil); return err },
		"GetInvoice":           func() error { _, err := s.GetInvoice(ctx, nil); return err },
		"ListInvoices":         func() error { _, err := s.ListInvoices(ctx, nil); return err },
		"IssueInvoice":         func() error { _, err := s.IssueInvoice(ctx, nil); return err },
		"RecordPayment":        func() error { _, err := s.RecordPayment(ctx, nil); return err },
		"VoidInvoice":          func() error { _, err := s.VoidInvoice(ctx, nil); return err },
		"legacy": func() error {
			_, err := newLegacyBillingServer(billing.NewEndpoints(&stubBilling{}, billing.EndpointOptions{Guard: authz.AllowAnonymous()})).CreateBillingAccount(ctx, nil)
			return err
		},
	} {
		if err := call(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if got := invoiceFromPB(&billingv1.Invoice{Lines: []*billingv1.InvoiceLine{nil}, Payments: []*billingv1.Payment{nil}}); len(got.Lines) != 1 || len(got.Payments) != 1 {
		t.Errorf("nil elements: %#v", got)
	}
	if strings.Contains(legacyToPB(billing.Account{Status: "active"}).GetStatus(), "active") {
		t.Error("legacy status is not upper case")
	}
}
