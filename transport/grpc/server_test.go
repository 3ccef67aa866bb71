package grpctransport

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
	patientv1 "github.com/pms/pms/proto/pms/patient/v1"
)

// contractCodes restates API.md's table ("Errors", gRPC column) independently of kindCodes.
var contractCodes = map[errs.Kind]codes.Code{
	errs.InvalidArgument:        codes.InvalidArgument,
	errs.Unauthenticated:        codes.Unauthenticated,
	errs.PermissionDenied:       codes.PermissionDenied,
	errs.NotFound:               codes.NotFound,
	errs.Gone:                   codes.NotFound,
	errs.Conflict:               codes.AlreadyExists,
	errs.PreconditionFailed:     codes.FailedPrecondition,
	errs.PayloadTooLarge:        codes.ResourceExhausted,
	errs.UnsupportedMediaType:   codes.InvalidArgument,
	errs.MethodNotAllowed:       codes.Unimplemented,
	errs.RateLimited:            codes.ResourceExhausted,
	errs.Unavailable:            codes.Unavailable,
	errs.Timeout:                codes.DeadlineExceeded,
	errs.Internal:               codes.Internal,
	errs.Canceled:               codes.Canceled,
	errs.PasswordChangeRequired: codes.Unauthenticated,
	errs.MFARequired:            codes.Unauthenticated,
	errs.PossibleDuplicate:      codes.AlreadyExists,
	errs.Restricted:             codes.PermissionDenied,
}

// TestStatusCodes checks, over the wire with the generated client, that each kind arrives
// with the contract's code and an ErrorInfo naming the kind.
func TestStatusCodes(t *testing.T) {
	if len(contractCodes) != len(errs.Kinds) {
		t.Fatalf("the test knows %d kinds, errs.Kinds has %d", len(contractCodes), len(errs.Kinds))
	}
	h := startHarness(t, ServerOptions{})
	raw := patientv1.NewPatientServiceClient(h.conn)
	for _, k := range errs.Kinds {
		h.stub.setFn(func(string, any) (any, error) { return nil, errs.New(k, "m") })
		_, err := raw.GetPatient(testContext(t), &patientv1.GetPatientRequest{Id: "x"})
		st := status.Convert(err)
		if st.Code() != contractCodes[k] {
			t.Errorf("%s: code %s, want %s", k, st.Code(), contractCodes[k])
		}
		if Code(k) != contractCodes[k] {
			t.Errorf("Code(%s) = %s, want %s", k, Code(k), contractCodes[k])
		}
		var info *errdetails.ErrorInfo
		for _, d := range st.Details() {
			if i, ok := d.(*errdetails.ErrorInfo); ok {
				info = i
			}
		}
		if info.GetReason() != string(k) || info.GetDomain() != ErrorDomain {
			t.Errorf("%s: ErrorInfo %v", k, info)
		}
	}
}

// TestFromStatusWithoutDetail checks statuses that did not come from a PMS server: grpc-go's
// own, a proxy's, or one with a reason we do not know. The kind follows the code, the
// message is generic, and the cause is kept.
func TestFromStatusWithoutDetail(t *testing.T) {
	foreign, _ := status.New(codes.NotFound, "x").WithDetails(&errdetails.ErrorInfo{Reason: "gone", Domain: "example.com"})
	unknown, _ := status.New(codes.AlreadyExists, "x").WithDetails(&errdetails.ErrorInfo{Reason: "exploded", Domain: ErrorDomain})
	tests := []struct {
		err  error
		want errs.Kind
	}{
		{status.Error(codes.Unavailable, "connection error: desc = dial tcp 10.0.0.1:9000"), errs.Unavailable},
		{status.Error(codes.DeadlineExceeded, "context deadline exceeded"), errs.Timeout},
		{status.Error(codes.Canceled, "context canceled"), errs.Canceled}, // the caller left: never the upstream's failure
		{context.Canceled, errs.Canceled},
		{status.Error(codes.ResourceExhausted, "grpc: received message larger than max"), errs.PayloadTooLarge},
		{status.Error(codes.NotFound, "x"), errs.NotFound},
		{status.Error(codes.Unimplemented, "unknown method"), errs.MethodNotAllowed},
		{status.Error(codes.Unknown, "x"), errs.Internal},
		{status.Error(codes.DataLoss, "x"), errs.Internal},
		{foreign.Err(), errs.NotFound},
		{unknown.Err(), errs.Conflict},
		{context.DeadlineExceeded, errs.Timeout},
		{errors.New("not a status"), errs.Internal},
	}
	for _, tt := range tests {
		got := FromStatus(tt.err)
		e := errs.As(got)
		if e.Kind != tt.want {
			t.Errorf("FromStatus(%v) kind %s, want %s", tt.err, e.Kind, tt.want)
		}
		if strings.Contains(e.Message, "10.0.0.1") || e.Message == "x" {
			t.Errorf("FromStatus(%v) passes on the status text %q", tt.err, e.Message)
		}
		if !errors.Is(got, tt.err) && !errors.Is(e.Err, tt.err) {
			t.Errorf("FromStatus(%v) lost the cause", tt.err)
		}
	}
	if FromStatus(nil) != nil || ToStatus(nil) != nil {
		t.Error("nil is not nil")
	}
	if e := errs.New(errs.Gone, "g"); FromStatus(e) != error(e) {
		t.Error("an *errs.Error is not passed through")
	}
	if st := status.Error(codes.Aborted, "a"); ToStatus(st) != st {
		t.Error("a status is not passed through")
	}
}

// TestRequestIDHeader checks that the server answers with the caller's request id, or with
// a new one when the caller sent none or a malformed one.
func TestRequestIDHeader(t *testing.T) {
	h := startHarness(t, ServerOptions{})
	raw := patientv1.NewPatientServiceClient(h.conn)
	for _, sent := range []string{"abc-123", "", "bad id; with spaces"} {
		ctx := testContext(t)
		if sent != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, RequestIDKey, sent)
		}
		var header metadata.MD
		if _, err := raw.GetPatient(ctx, &patientv1.GetPatientRequest{}, grpc.Header(&header)); err != nil {
			t.Fatal(err)
		}
		got := header.Get(RequestIDKey)
		seen := observe.RequestID(h.stub.last(t).ctx)
		if len(got) != 1 || got[0] != seen {
			t.Errorf("sent %q: header %q, service saw %q", sent, got, seen)
			continue
		}
		if sent == "abc-123" && got[0] != sent {
			t.Errorf("sent %q: got %q", sent, got[0])
		}
		if sent != "abc-123" && (got[0] == sent || len(got[0]) != 32) {
			t.Errorf("sent %q: got %q, want a new id", sent, got[0])
		}
	}
}

// TestHealth checks that the health service answers SERVING by default, and that a health
// server given in ServerOptions is the one served.
func TestHealth(t *testing.T) {
	h := startHarness(t, ServerOptions{})
	resp, err := healthpb.NewHealthClient(h.conn).Check(testContext(t), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check = %v, %v; want SERVING", resp, err)
	}

	hs := health.NewServer()
	service := patientv1.PatientService_ServiceDesc.ServiceName
	hs.SetServingStatus(service, healthpb.HealthCheckResponse_NOT_SERVING)
	h2 := startHarness(t, ServerOptions{Health: hs})
	resp, err = healthpb.NewHealthClient(h2.conn).Check(testContext(t), &healthpb.HealthCheckRequest{Service: service})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Check(%s) = %v, %v; want NOT_SERVING", service, resp, err)
	}
}

// TestReflection checks that server reflection lists the patient and health services, so
// `grpcurl list` works.
func TestReflection(t *testing.T) {
	h := startHarness(t, ServerOptions{})
	stream, err := reflectionpb.NewServerReflectionClient(h.conn).ServerReflectionInfo(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	_ = stream.CloseSend()
	listed := map[string]bool{}
	for _, s := range resp.GetListServicesResponse().GetService() {
		listed[s.GetName()] = true
	}
	for _, want := range []string{"pms.patient.v1.PatientService", "grpc.health.v1.Health"} {
		if !listed[want] {
			t.Errorf("reflection does not list %s (got %v)", want, listed)
		}
	}
}

// TestDeadServer checks that a client whose server is gone gets errs.Unavailable, both for
// a server that stopped after serving and for an address nobody listens on.
func TestDeadServer(t *testing.T) {
	h := startHarness(t, ServerOptions{})
	if _, err := h.client.Get(testContext(t), "id"); err != nil {
		t.Fatal(err)
	}
	h.server.Stop()
	if _, err := h.client.Get(testContext(t), "id"); errs.KindOf(err) != errs.Unavailable {
		t.Errorf("after Stop: err = %v (kind %s), want unavailable", err, errs.KindOf(err))
	}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	_, err = NewPatientClient(dial(t, addr)).Get(testContext(t), "id")
	if errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("nobody listening: err = %v (kind %s), want unavailable", err, errs.KindOf(err))
	}
	if strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("the message %q shows connection details", err)
	}
}

// TestCallerDeadline checks that a call whose deadline passes is a timeout for the caller.
func TestCallerDeadline(t *testing.T) {
	h := startHarness(t, ServerOptions{})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	h.stub.setFn(func(string, any) (any, error) { <-release; return nil, nil })
	ctx, cancel := context.WithTimeout(testContext(t), 50*time.Millisecond)
	defer cancel()
	if _, err := h.client.Get(ctx, "id"); errs.KindOf(err) != errs.Timeout {
		t.Fatalf("err = %v (kind %s), want timeout", err, errs.KindOf(err))
	}
}

// TestClientAddr walks the trusted-proxy rules on x-forwarded-for chains.
func TestClientAddr(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		peer net.Addr
		xff  []string
		want string
	}{
		{tcp("127.0.0.1:5000"), nil, "127.0.0.1"},
		{tcp("127.0.0.1:5000"), []string{"203.0.113.7"}, "203.0.113.7"},
		{tcp("[::ffff:127.0.0.1]:5000"), []string{"203.0.113.7"}, "203.0.113.7"},
		{tcp("127.0.0.1:5000"), []string{"198.51.100.1, 203.0.113.7, 10.1.1.1"}, "203.0.113.7"},
		{tcp("127.0.0.1:5000"), []string{"198.51.100.1", "203.0.113.7"}, "203.0.113.7"},
		{tcp("127.0.0.1:5000"), []string{"10.9.9.9, 10.1.1.1"}, "10.9.9.9"},
		{tcp("127.0.0.1:5000"), []string{"203.0.113.7, not-an-ip"}, "127.0.0.1"},
		{tcp("127.0.0.1:5000"), []string{" 2001:db8::1 "}, "2001:db8::1"},
		{tcp("192.0.2.1:5000"), []string{"203.0.113.7"}, "192.0.2.1"},
		{&net.UnixAddr{Name: "/run/pms.sock", Net: "unix"}, []string{"203.0.113.7"}, "/run/pms.sock"},
	}
	for _, tt := range tests {
		ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: tt.peer})
		md := metadata.MD{}
		for _, v := range tt.xff {
			md.Append(ForwardedForKey, v)
		}
		if got := clientAddr(ctx, md, trusted); got != tt.want {
			t.Errorf("peer %s, x-forwarded-for %q: %q, want %q", tt.peer, tt.xff, got, tt.want)
		}
	}
	if got := clientAddr(context.Background(), nil, trusted); got != "" {
		t.Errorf("no peer: %q", got)
	}
}

func tcp(s string) *net.TCPAddr {
	ap := netip.MustParseAddrPort(s)
	return net.TCPAddrFromAddrPort(ap)
}

// TestForwardedTransport: the transport a proxy forwards (x-pms-transport) is believed from
// a trusted peer only, and only when it names a transport; otherwise there is no forwarded
// origin (observe.Origin is then the call's own transport, grpc).
func TestForwardedTransport(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	from := func(ip string) context.Context {
		return peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP(ip), Port: 5000}})
	}
	for _, c := range []struct {
		peer, forwarded, want string
	}{
		{"127.0.0.1", "http", "http"},
		{"127.0.0.1", "", ""},
		{"127.0.0.1", "smoke-signals", ""},
		{"203.0.113.9", "http", ""}, // not a trusted proxy: its claim is ignored
	} {
		md := metadata.MD{}
		if c.forwarded != "" {
			md.Set(TransportKey, c.forwarded)
		}
		if got := forwardedOrigin(from(c.peer), md, trusted); got != c.want {
			t.Errorf("origin from %s forwarding %q = %q, want %q", c.peer, c.forwarded, got, c.want)
		}
	}
}
