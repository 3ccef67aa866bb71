package grpctransport

import (
	"context"

	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
)

// call is what the stub service saw of one call.
type call struct {
	ctx    context.Context
	method string
	req    any
}

// stubService is a patient.Service whose answers a test sets in fn; it records the calls it
// gets, context included, so a test can check what travelled over the wire.
type stubService struct {
	mu    sync.Mutex
	fn    func(method string, req any) (any, error)
	calls []call
}

func (s *stubService) setFn(fn func(method string, req any) (any, error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fn = fn
}

func (s *stubService) last(t *testing.T) call {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.calls) == 0 {
		t.Fatal("the service was not called")
	}
	return s.calls[len(s.calls)-1]
}

func (s *stubService) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

func (s *stubService) do(ctx context.Context, method string, req any) (any, error) {
	s.mu.Lock()
	s.calls = append(s.calls, call{ctx: ctx, method: method, req: req})
	fn := s.fn
	s.mu.Unlock()
	if fn == nil {
		return nil, nil
	}
	return fn(method, req)
}

// stubResult types the stub's answer; a missing answer is the zero value.
func stubResult[T any](v any, err error) (T, error) {
	t, _ := v.(T)
	return t, err
}

func (s *stubService) Create(ctx context.Context, req patient.CreateRequest) (patient.Patient, error) {
	return stubResult[patient.Patient](s.do(ctx, patient.MethodCreate, req))
}

func (s *stubService) Get(ctx context.Context, id string) (patient.Patient, error) {
	return stubResult[patient.Patient](s.do(ctx, patient.MethodGet, id))
}

func (s *stubService) List(ctx context.Context, q patient.ListQuery) (patient.Page, error) {
	return stubResult[patient.Page](s.do(ctx, patient.MethodList, q))
}

func (s *stubService) Update(ctx context.Context, req patient.UpdateRequest) (patient.Patient, error) {
	return stubResult[patient.Patient](s.do(ctx, patient.MethodUpdate, req))
}

func (s *stubService) Delete(ctx context.Context, req patient.DeleteRequest) error {
	_, err := s.do(ctx, patient.MethodDelete, req)
	return err
}

func (s *stubService) History(ctx context.Context, id string) ([]patient.Version, error) {
	return stubResult[[]patient.Version](s.do(ctx, patient.MethodHistory, id))
}

func (s *stubService) Audit(ctx context.Context, q patient.AuditQuery) ([]patient.AuditEntry, error) {
	return stubResult[[]patient.AuditEntry](s.do(ctx, patient.MethodAudit, q))
}

func (s *stubService) VerifyAudit(ctx context.Context) (audit.Report, error) {
	return stubResult[audit.Report](s.do(ctx, patient.MethodVerifyAudit, patient.VerifyAuditRequest{}))
}

func (s *stubService) BillingAccount(ctx context.Context, id string) (patient.BillingAccount, error) {
	return stubResult[patient.BillingAccount](s.do(ctx, patient.MethodBillingAccount, id))
}

func (s *stubService) Invoices(ctx context.Context, id string) ([]patient.Invoice, error) {
	return stubResult[[]patient.Invoice](s.do(ctx, patient.MethodInvoices, id))
}

func (s *stubService) AccessLog(ctx context.Context, q patient.AccessLogQuery) (patient.AccessLogPage, error) {
	return stubResult[patient.AccessLogPage](s.do(ctx, patient.MethodAccessLog, q))
}

// harness is a real gRPC server on a loopback port serving a stub through the real endpoint
// set, and a real client connection to it.
type harness struct {
	stub   *stubService
	server *grpc.Server
	addr   string
	conn   *grpc.ClientConn
	client patient.Set
}

// startHarness serves a new stub with o and dials it; everything stops when the test ends.
func startHarness(t *testing.T, o ServerOptions) *harness {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{stub: &stubService{}, server: NewServer(o), addr: lis.Addr().String()}
	RegisterPatientServer(h.server, patient.NewEndpoints(h.stub, patient.EndpointOptions{Guard: authz.AllowAnonymous()}))
	served := make(chan error, 1)
	go func() { served <- h.server.Serve(lis) }()
	t.Cleanup(func() {
		h.server.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	h.conn = dial(t, h.addr)
	h.client = NewPatientClient(h.conn)
	return h
}

// dial connects to addr the way a PMS client does.
func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, append(ClientDialOptions(),
		grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// testContext bounds every call of a test, so a bug shows as a failure, not a hang.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func ptr[T any](v T) *T { return &v }
