package grpctransport

import (
	"context"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/auth"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	authv1 "github.com/pms/pms/proto/pms/auth/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// revocationRig is an auth service on a database with its revocation feed served over
// real gRPC on loopback TCP, and a table following it through FollowRevocations.
type revocationRig struct {
	svc auth.Service
	// replica is a second auth service over the same database (another replica): its
	// revocations reach the feed by its poll alone.
	replica auth.Service
	admin   context.Context
	user    auth.User
	keys    *auth.KeyRing
	table   *authz.DenyTable
	addr    string
	feed    *auth.RevocationFeed
	srv     *grpc.Server
}

func startRevocations(t testing.TB, d *db.DB) *revocationRig {
	return startRevocationsStale(t, d, 0, 0)
}

// startRevocationsStale is startRevocations with the follower's staleness bound and the
// feed's heartbeat.
func startRevocationsStale(t testing.TB, d *db.DB, staleAfter, heartbeat time.Duration) *revocationRig {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	keys, _, err := auth.OpenKeyRing(filepath.Join(t.TempDir(), auth.KeyFileName), auth.KeyRingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := audit.NewWriter(d, audit.Options{Table: auth.AuditTable})
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	store := auth.NewStore(d)
	svc, err := auth.NewService(ctx, store, keys, w, auth.Options{
		Hasher: auth.NewArgon2id(auth.Argon2idParams{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}, 0)})
	if err != nil {
		t.Fatal(err)
	}
	root, _, _, err := auth.BootstrapAdmin(ctx, store, svc, "admin@example.org", authPassword)
	if err != nil {
		t.Fatal(err)
	}
	replica, err := auth.NewService(ctx, auth.NewStore(d), keys, w, auth.Options{
		Hasher: auth.NewArgon2id(auth.Argon2idParams{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}, 0)})
	if err != nil {
		t.Fatal(err)
	}
	r := &revocationRig{svc: svc, replica: replica, keys: keys, table: authz.NewDenyTable(staleAfter),
		admin: authz.WithPrincipal(ctx, authz.Principal{Subject: root.ID, Role: authz.RoleAdmin}),
		feed:  auth.NewRevocationFeed(store, 0, heartbeat)}
	go r.feed.Run(ctx)
	created, err := svc.CreateUser(r.admin, auth.CreateUserRequest{Email: "nurse@example.org", Password: authPassword, Role: authz.RoleClinician})
	if err != nil {
		t.Fatal(err)
	}
	r.user = created.User
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = lis.Addr().String()
	r.serve(t, lis)
	conn, err := Dial(r.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); FollowRevocations(ctx, conn, r.table, log.NewNopLogger()) }()
	t.Cleanup(func() { cancel(); <-done; _ = conn.Close() })
	return r
}

func (r *revocationRig) serve(t testing.TB, lis net.Listener) {
	r.srv = NewServer(ServerOptions{})
	RegisterRevocationServer(r.srv, r.feed)
	go func() { _ = r.srv.Serve(lis) }()
	t.Cleanup(r.srv.Stop)
}

// toggleRole changes the user's role: a revocation without a password hash to compute (the
// i-th toggle is the revocation of sequence i+1).
func (r *revocationRig) toggleRole(t testing.TB, svc auth.Service, i int) {
	t.Helper()
	role := []string{authz.RoleBilling, authz.RoleClinician}[i%2]
	if _, err := svc.UpdateUser(r.admin, auth.UpdateUserRequest{ID: r.user.ID, Role: &role}); err != nil {
		t.Fatal(err)
	}
}

// waitApplied waits (with a deadline) until table has applied sequence seq.
func waitApplied(t testing.TB, table *authz.DenyTable, seq int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := table.Wait(ctx, seq); err != nil {
		t.Fatalf("table at %d, want %d: %v", table.Seq(), seq, err)
	}
}

// TestRevocationStreamOverTheWire: a table following WatchRevocations over real gRPC
// applies each role change in order (its sequence reaches the revocation's, and the old
// token is refused); when the auth server goes away and comes back on the same address the
// follower reconnects from its sequence and applies what was revoked meanwhile (by another
// replica: found by the poll). On both databases.
func TestRevocationStreamOverTheWire(t *testing.T) {
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		r := startRevocations(t, d)
		ctx := testContext(t)
		pair, err := r.svc.Login(ctx, auth.LoginRequest{Email: "nurse@example.org", Password: authPassword})
		if err != nil {
			t.Fatal(err)
		}
		v := authz.NewVerifier(r.keys, authz.DefaultIssuer, authz.DefaultAudience).WithRevocations(r.table)
		if _, err := v.Verify(ctx, pair.Token); err != nil {
			t.Fatal(err)
		}
		r.toggleRole(t, r.svc, 0)
		waitApplied(t, r.table, 1)
		if _, err := v.Verify(ctx, pair.Token); err == nil {
			t.Fatal("the token of the old role still verifies")
		}
		// Auth goes away; a revocation happens meanwhile; auth comes back on the same address.
		r.srv.Stop()
		r.toggleRole(t, r.replica, 1)
		lis, err := net.Listen("tcp", r.addr)
		if err != nil {
			t.Skipf("cannot listen on %s again: %v", r.addr, err)
		}
		r.serve(t, lis)
		waitApplied(t, r.table, 2)
		if r.table.Stale() {
			t.Fatal("stale right after news")
		}
		// A malformed request is refused, not streamed.
		conn := dial(t, r.addr)
		stream, err := authv1.NewRevocationServiceClient(conn).WatchRevocations(ctx, &authv1.WatchRevocationsRequest{AfterSeq: -1})
		if err == nil {
			_, err = stream.Recv()
		}
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("after_seq -1: %v", err)
		}
	})
}

// TestRevocationFollowerGoesStaleAndRecovers: a follower that loses the stream (auth down)
// turns stale once its bound passes — its guards then refuse writes — and fresh again once
// auth is back and the stream resumes. The bound (300 ms) and heartbeat (20 ms) are short
// here; every state is polled for with a deadline.
func TestRevocationFollowerGoesStaleAndRecovers(t *testing.T) {
	r := startRevocationsStale(t, dbtest.Open(t, db.SQLite, migrations.Auth()), 300*time.Millisecond, 20*time.Millisecond)
	poll := func(want bool, what string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for r.table.Stale() != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: stale = %v", what, !want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	r.toggleRole(t, r.svc, 0)
	waitApplied(t, r.table, 1)
	poll(false, "while heartbeats come")
	r.srv.Stop()
	poll(true, "after auth went away")
	lis, err := net.Listen("tcp", r.addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", r.addr, err)
	}
	r.serve(t, lis)
	poll(false, "after auth came back")
}

// BenchmarkRevocationLatency measures how long a committed revocation takes to be in force
// at a verifier in another process (over gRPC on loopback): from the revoking call's return
// to the follower's table reaching its sequence; p50 and p99 are reported over b.N
// revocations (make bench runs 1,000). same-process: the auth service that committed it
// serves the stream (its feed is woken); other-replica: another auth replica over the same
// database committed it (the feed's poll finds it). SQLite, the embedded default.
func BenchmarkRevocationLatency(b *testing.B) {
	for _, bc := range []struct {
		name    string
		replica bool
	}{{"same-process", false}, {"other-replica", true}} {
		b.Run(bc.name, func(b *testing.B) {
			d := dbtest.Open(b, db.SQLite, migrations.Auth())
			r := startRevocations(b, d)
			svc := r.svc
			if bc.replica {
				svc = r.replica
			}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r.toggleRole(b, svc, i)
				start := time.Now()
				waitApplied(b, r.table, int64(i+1))
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
