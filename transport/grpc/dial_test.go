package grpctransport

import (
	"context"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func TestDialTarget(t *testing.T) {
	for in, want := range map[string]string{
		":9001": "127.0.0.1:9001", "0.0.0.0:9001": "127.0.0.1:9001", "[::]:9001": "127.0.0.1:9001",
		"127.0.0.1:9001": "127.0.0.1:9001", "billing:9001": "billing:9001", "[::1]:9001": "[::1]:9001", "billing": "billing",
	} {
		if got := DialTarget(in); got != want {
			t.Errorf("DialTarget(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReplicaTarget(t *testing.T) {
	for _, c := range []struct {
		in, target string
		replicas   []string
	}{
		{"127.0.0.1:9000", "127.0.0.1:9000", nil},
		{"dns:///patient:9000", "dns:///patient:9000", nil},
		{":9000, 10.0.0.2:9000,,:9000", "pms-replicas:///upstream", []string{"127.0.0.1:9000", "10.0.0.2:9000"}},
		{"10.0.0.2:9000,", "10.0.0.2:9000", nil},
	} {
		target, replicas := ReplicaTarget(c.in)
		if target != c.target || !slices.Equal(replicas, c.replicas) {
			t.Errorf("ReplicaTarget(%q) = %q %v, want %q %v", c.in, target, replicas, c.target, c.replicas)
		}
	}
}

// TestDialReplicas: Dial over two real servers spreads calls over both; a replica whose
// health turns NOT_SERVING (draining) gets no more calls, and when the other one stops, the
// first, healthy again, takes every call. Polled with deadlines.
func TestDialReplicas(t *testing.T) {
	type replica struct {
		srv    *grpc.Server
		health *health.Server
		calls  atomic.Int64
		addr   string
	}
	start := func() *replica {
		r := &replica{health: health.NewServer()}
		r.srv = NewServer(ServerOptions{Health: r.health, Options: []grpc.ServerOption{grpc.ChainUnaryInterceptor(
			func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				r.calls.Add(1)
				return h(ctx, req)
			})}})
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		r.addr = l.Addr().String()
		go func() { _ = r.srv.Serve(l) }()
		t.Cleanup(r.srv.Stop)
		return r
	}
	a, b := start(), start()
	conn, err := Dial(a.addr+","+b.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	// until polls, calling once per round, until cond holds.
	until := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 15s (calls: a %d, b %d)", what, a.calls.Load(), b.calls.Load())
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, _ = client.Check(ctx, &healthpb.HealthCheckRequest{})
			cancel()
		}
	}
	until("calls spread over both replicas", func() bool { return a.calls.Load() > 3 && b.calls.Load() > 3 })

	a.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	// Once the client has seen a's health change, every call goes to b.
	until("the draining replica left out", func() bool {
		before := a.calls.Load()
		for range 20 {
			if _, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
				return false
			}
		}
		return a.calls.Load() == before
	})

	a.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	b.srv.Stop()
	until("the healthy replica takes every call after the other stops", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		return err == nil
	})
	for range 20 {
		if _, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatalf("a call with one healthy replica left: %v", err)
		}
	}
}

// TestOutlierEjection: of two replicas, both healthy by their health checks, one answers
// every call unavailable (up, but it cannot serve). After OutlierFailures failed calls it is
// left out, and every call goes to the other one; answers that are the service working (a
// not_found) never leave a replica out.
func TestOutlierEjection(t *testing.T) {
	start := func(answer error) string {
		srv := NewServer(ServerOptions{Options: []grpc.ServerOption{grpc.ChainUnaryInterceptor(
			func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				if answer != nil {
					return nil, answer
				}
				return h(ctx, req)
			})}})
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = srv.Serve(l) }()
		t.Cleanup(srv.Stop)
		return l.Addr().String()
	}
	good, bad := start(nil), start(status.Error(codes.Unavailable, "no database"))
	conn, err := Dial(good+","+bad, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	// Both replicas answering first: until then every call goes to the one that is ready.
	deadline := time.Now().Add(15 * time.Second)
	for ok, failed := false, false; !ok || !failed; {
		if time.Now().After(deadline) {
			t.Fatalf("both replicas did not answer within 15s (good %v, bad %v)", ok, failed)
		}
		_, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{})
		ok, failed = ok || err == nil, failed || status.Code(err) == codes.Unavailable
	}
	failed := 1
	for range 60 {
		if _, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
			failed++
		}
	}
	if failed > OutlierFailures {
		t.Fatalf("%d calls failed: the failing replica was not left out after %d", failed, OutlierFailures)
	}

	// A replica answering not_found is working: it is never left out.
	notFound := start(status.Error(codes.NotFound, "no such patient"))
	conn2, err := Dial(good+","+notFound, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	client2 := healthpb.NewHealthClient(conn2)
	seen := 0
	for i := 0; i < 200 && seen <= 2*OutlierFailures; i++ {
		if _, err := client2.Check(context.Background(), &healthpb.HealthCheckRequest{}); status.Code(err) == codes.NotFound {
			seen++
		}
	}
	if seen <= 2*OutlierFailures {
		t.Fatalf("the replica answering not_found got %d of 200 calls: it was left out", seen)
	}
}
