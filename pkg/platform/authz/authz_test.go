package authz_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pms/pms/pkg/platform/polltest"

	"github.com/golang-jwt/jwt/v4"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/authz/authztest"
	"github.com/pms/pms/pkg/platform/errs"
)

// attacks is the shared attack list (authztest.Attacks, which the over-the-wire suites use
// too), with an opaque refresh-token-like value and a token far over any header limit.
func attacks(t *testing.T, is *authztest.Issuer) map[string]string {
	out := authztest.Attacks(t, is, base64.RawURLEncoding.EncodeToString(make([]byte, 32)))
	out["huge token"] = strings.Repeat("a", 100<<10)
	return out
}

func TestVerifierRefusesEveryAttack(t *testing.T) {
	is := authztest.New(t)
	v := is.Verifier()
	for name, tok := range attacks(t, is) {
		t.Run(name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), tok)
			if errs.KindOf(err) != errs.Unauthenticated {
				t.Fatalf("got %v, want unauthenticated", err)
			}
			if e := errs.As(err); e.Message != "a valid access token is required" {
				t.Fatalf("message reveals which check failed: %q", e.Message)
			}
		})
	}
	p, err := v.Verify(context.Background(), is.Token(t, "u1", authz.RoleBilling))
	if err != nil || p.Subject != "u1" || p.Role != authz.RoleBilling || p.Email != "u1@example.org" {
		t.Fatalf("valid token: %+v %v", p, err)
	}
}

func TestGuardOrderAndRoles(t *testing.T) {
	is := authztest.New(t)
	var denied []string
	g := authz.NewGuard(is.Verifier(), authz.RoleTable{
		"Read": {authz.RoleClinician}, "Admin": {authz.RoleAdmin}, "Login": {authz.Public}, "Me": {authz.Authenticated},
	}, func(ctx context.Context, method string, _ any, err error) {
		denied = append(denied, method+":"+string(errs.KindOf(err)))
	})
	var reached atomic.Int32
	ok := func(ctx context.Context, _ any) (any, error) {
		reached.Add(1)
		if _, found := authz.FromContext(ctx); !found {
			t.Error("principal missing in the endpoint")
		}
		return "ok", nil
	}
	call := func(method, token string) errs.Kind {
		ctx := context.Background()
		if token != "" {
			ctx = authz.WithToken(ctx, token)
		}
		_, err := g.Middleware(method)(ok)(ctx, nil)
		return errs.KindOf(err)
	}
	clin, admin, analyst := is.Token(t, "c", authz.RoleClinician), is.Token(t, "a", authz.RoleAdmin), is.Token(t, "n", authz.RoleAnalyst)
	cases := []struct {
		method, token string
		want          errs.Kind
	}{
		{"Read", "", errs.Unauthenticated},
		{"Read", clin, ""},
		{"Read", admin, ""}, // admin may do everything
		{"Read", analyst, errs.PermissionDenied},
		{"Admin", clin, errs.PermissionDenied},
		{"Admin", admin, ""},
		{"Me", analyst, ""},
		{"Me", "", errs.Unauthenticated},
	}
	for _, c := range cases {
		if got := call(c.method, c.token); got != c.want {
			t.Fatalf("%s with %q…: got %q want %q", c.method, c.token[:min(10, len(c.token))], got, c.want)
		}
	}
	// Public endpoints run without a token (and without a principal).
	if _, err := g.Middleware("Login")(func(context.Context, any) (any, error) { return nil, nil })(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if len(denied) != 4 || denied[0] != "Read:unauthenticated" || denied[1] != "Read:permission_denied" {
		t.Fatalf("denials reported: %v", denied)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a method missing from the role table must fail at wiring time")
		}
	}()
	g.Middleware("Unlisted")
}

func TestJWKSSourceRefetchesUnknownKidAtMostOncePerInterval(t *testing.T) {
	pub1, _, _ := ed25519.GenerateKey(rand.Reader)
	pub2, _, _ := ed25519.GenerateKey(rand.Reader)
	var fetches atomic.Int32
	var rotated atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		set := authz.JWKS{Keys: []authz.JWK{authz.PublicJWK("k1", pub1), {Kty: "RSA", Kid: "rsa"}}}
		if rotated.Load() {
			set.Keys = append(set.Keys, authz.PublicJWK("k2", pub2))
		}
		_ = json.NewEncoder(w).Encode(set)
	}))
	defer srv.Close()
	src := authz.NewJWKSSource(srv.URL, nil, time.Hour)
	ctx := context.Background()
	if k, err := src.PublicKey(ctx, "k1"); err != nil || !k.(ed25519.PublicKey).Equal(pub1) {
		t.Fatalf("k1: %v", err)
	}
	for range 100 { // a flood of forged kids costs no fetches within the interval
		if _, err := src.PublicKey(ctx, "forged"); err == nil {
			t.Fatal("forged kid accepted")
		}
	}
	if _, err := src.PublicKey(ctx, "rsa"); err == nil {
		t.Fatal("non-Ed25519 key accepted")
	}
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
	// After rotation a new kid is found with one refetch once the interval allows it.
	rotated.Store(true)
	src2 := authz.NewJWKSSource(srv.URL, nil, time.Nanosecond)
	if _, err := src2.PublicKey(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	if k, err := src2.PublicKey(ctx, "k2"); err != nil || !k.(ed25519.PublicKey).Equal(pub2) {
		t.Fatalf("rotated key: %v", err)
	}
}

func BenchmarkVerify(b *testing.B) {
	is := authztest.New(b)
	v := is.Verifier()
	tok := is.Token(b, "u1", authz.RoleClinician)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// TestVerifierCacheKeepsExpiry: a cached token is refused once it expires.
func TestVerifierCacheKeepsExpiry(t *testing.T) {
	is := authztest.New(t)
	v := is.Verifier()
	c := is.Claims("u1", authz.RoleClinician)
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(1500 * time.Millisecond))
	tok := is.Sign(t, c)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := v.Verify(context.Background(), tok)
		if errs.KindOf(err) == errs.Unauthenticated {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("expired token still accepted from the cache")
		}
		time.Sleep(50 * time.Millisecond) // polling an expiry, not synchronising goroutines
	}
}

// TestVerifierRefusesOtherSpellings: a genuine token's signature re-spelled with line breaks
// (which Go's base64 decoder skips; a Kafka header or gRPC value may carry them) is refused,
// as Attacks' spare-bit spelling is, and the genuine text is still accepted after them.
func TestVerifierRefusesOtherSpellings(t *testing.T) {
	is := authztest.New(t)
	v := is.Verifier()
	tok := is.Token(t, "u1", authz.RoleAdmin)
	i := strings.LastIndexByte(tok, '.') + 10
	for _, s := range []string{tok[:i] + "\n" + tok[i:], tok + "\r\n", tok[:i] + "\r" + tok[i:]} {
		if _, err := v.Verify(context.Background(), s); errs.KindOf(err) != errs.Unauthenticated {
			t.Errorf("%q: %v", s, err)
		}
	}
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Errorf("genuine token: %v", err)
	}
}

func TestBearerToken(t *testing.T) {
	for v, want := range map[string]string{
		"Bearer abc.DEF-_~+/==": "abc.DEF-_~+/==", "bearer  x ": "x", " BEARER x": "x",
		"Bearer": "", "Bearer ": "", "Basic x": "", "Bearer a b": "", "Bearer =": "", "Bearer a=b": "",
		"Bearer \xf4\x9b": "", "Bearer a\x00": "", "Bearerx y": "", "x": "",
	} {
		if got := authz.BearerToken(v); got != want {
			t.Errorf("BearerToken(%q) = %q, want %q", v, got, want)
		}
	}
}

// jwksServer serves a key set the test changes, counting fetches; a fetch blocks while hold
// is set.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	keys    []authz.JWK
	fetches atomic.Int32
	hold    chan struct{}
}

func newJWKSServer(t *testing.T, keys ...authz.JWK) *jwksServer {
	s := &jwksServer{keys: keys}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		hold, set := s.hold, authz.JWKS{Keys: append([]authz.JWK(nil), s.keys...)}
		s.mu.Unlock()
		if hold != nil {
			<-hold
		}
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(keys ...authz.JWK) {
	s.mu.Lock()
	s.keys = keys
	s.mu.Unlock()
}

// TestJWKSDropsKeysNoLongerListed: a key the auth service stops listing stops verifying
// within the refresh interval, cached tokens included; a key that reappears is trusted again.
func TestJWKSDropsKeysNoLongerListed(t *testing.T) {
	is := authztest.New(t)
	srv := newJWKSServer(t, authz.PublicJWK(is.Kid, is.Public))
	src := authz.NewJWKSSource(srv.URL, nil, 10*time.Millisecond).Refresh(50 * time.Millisecond)
	v := authz.NewVerifier(src, authz.DefaultIssuer, authz.DefaultAudience)
	tok := is.Token(t, "u1", authz.RoleClinician)
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("listed key: %v", err)
	}
	srv.set() // revoked: no longer listed
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := v.Verify(ctx, tok); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a key no longer listed still verifies")
		}
		time.Sleep(10 * time.Millisecond)
	}
	srv.set(authz.PublicJWK(is.Kid, is.Public))
	deadline = time.Now().Add(5 * time.Second)
	for {
		if _, err := v.Verify(ctx, tok); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a key listed again is not trusted again")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestJWKSFetchNeverStallsVerification: while a fetch hangs (a slow auth service), tokens of
// known keys keep verifying, and every caller asking for unknown kids at once shares the one
// fetch instead of queueing fetches.
func TestJWKSFetchNeverStallsVerification(t *testing.T) {
	is := authztest.New(t)
	srv := newJWKSServer(t, authz.PublicJWK(is.Kid, is.Public))
	src := authz.NewJWKSSource(srv.URL, nil, time.Nanosecond).Refresh(time.Hour)
	v := authz.NewVerifier(src, authz.DefaultIssuer, authz.DefaultAudience)
	tok := is.Token(t, "u1", authz.RoleClinician)
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	srv.mu.Lock()
	srv.hold = hold
	srv.mu.Unlock()
	var (
		wg      sync.WaitGroup
		started atomic.Int64
	)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started.Add(1)
			_, _ = src.PublicKey(ctx, "forged-"+strconv.FormatInt(kidSeq.Add(1), 10))
		}()
	}
	// The shared fetch has begun and hangs, and every caller is on its way to it (one that
	// arrives only after the release may start a fetch of its own: the bound below allows it).
	polltest.Until(t, 10*time.Second, "two fetches and 50 callers", func() bool { return srv.fetches.Load() >= 2 && started.Load() == 50 })
	done := make(chan error, 1)
	go func() { _, err := v.Verify(ctx, tok); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("a known key during a hanging fetch: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("verification waited for a hanging JWKS fetch")
	}
	close(hold)
	wg.Wait()
	if n := srv.fetches.Load(); n > 3 {
		t.Fatalf("%d fetches for 50 simultaneous unknown kids; want them to share one", n)
	}
}

// BenchmarkVerifyUnderForgedKids: valid tokens verified while a flood of tokens with random
// kids arrives (about a thousand a second); reports the JWKS fetches the flood caused.
func BenchmarkVerifyUnderForgedKids(b *testing.B) {
	for _, flood := range []bool{false, true} {
		b.Run(fmt.Sprintf("flood=%v", flood), func(b *testing.B) { benchForgedKids(b, flood) })
	}
}

func benchForgedKids(b *testing.B, flood bool) {
	is := authztest.New(b)
	srv := newJWKSServer(&testing.T{}, authz.PublicJWK(is.Kid, is.Public))
	defer srv.Close()
	src := authz.NewJWKSSource(srv.URL, nil, time.Second).Refresh(time.Minute)
	v := authz.NewVerifier(src, authz.DefaultIssuer, authz.DefaultAudience)
	tok := is.Token(b, "u1", authz.RoleClinician)
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	stop := make(chan struct{})
	var forged atomic.Int64
	if flood {
		go func() {
			t := time.NewTicker(time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					_, _ = src.PublicKey(ctx, "forged-"+strconv.FormatInt(kidSeq.Add(1), 10))
					forged.Add(1)
				}
			}
		}()
	}
	start, before := time.Now(), srv.fetches.Load()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	close(stop)
	secs := time.Since(start).Seconds()
	b.ReportMetric(float64(forged.Load())/secs, "forged/s")
	b.ReportMetric(float64(srv.fetches.Load()-before)/secs, "fetches/s")
}

// kidSeq numbers forged kids, each one new.
var kidSeq atomic.Int64

// TestJWKSFirstCallersShareTheFetch: callers arriving together at a source that has no keys
// yet all wait for the one fetch and all verify (none is refused because another caller's
// fetch was in flight: the fault ops/soak found).
func TestJWKSFirstCallersShareTheFetch(t *testing.T) {
	is := authztest.New(t)
	srv := newJWKSServer(t, authz.PublicJWK(is.Kid, is.Public))
	hold := make(chan struct{})
	srv.hold = hold
	v := authz.NewVerifier(authz.NewJWKSSource(srv.URL, nil, time.Hour), authz.DefaultIssuer, authz.DefaultAudience)
	tok := is.Token(t, "u1", authz.RoleClinician)
	errc := make(chan error, 40)
	verify := func() { _, err := v.Verify(context.Background(), tok); errc <- err }
	go verify()
	polltest.Until(t, 10*time.Second, "the first fetch", func() bool { return srv.fetches.Load() >= 1 }) // the first fetch is in flight, held
	for range 39 {                                                                                       // these arrive while it is: none may be refused for it
		go verify()
	}
	// A refused caller answers at once; one waiting for the fetch answers only after the
	// release. Give the 39 the time to reach the source, then release.
	time.AfterFunc(50*time.Millisecond, func() { close(hold) })
	for range 40 {
		if err := <-errc; err != nil {
			t.Fatalf("a caller arriving during the first fetch: %v", err)
		}
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches; want 1", n)
	}
}

// TestServiceSubjectNeedsItsCertificate: a token whose subject is a service ("svc:patient")
// passes the guard only when the caller's verified client certificate names that service.
func TestServiceSubjectNeedsItsCertificate(t *testing.T) {
	is := authztest.New(t)
	g := authz.NewGuard(is.Verifier(), authz.RoleTable{"M": {authz.Authenticated}}, nil)
	e := g.Middleware("M")(func(context.Context, any) (any, error) { return "ok", nil })
	tok := authz.WithToken(context.Background(), is.Token(t, "svc:patient", authz.RoleAdmin))
	for peer, want := range map[string]errs.Kind{"": errs.PermissionDenied, "billing": errs.PermissionDenied, "patient": ""} {
		ctx := tok
		if peer != "" {
			ctx = authz.WithPeerService(ctx, peer)
		}
		if _, err := e(ctx, nil); errs.KindOf(err) != want && !(want == "" && err == nil) {
			t.Errorf("peer %q: %v; want %q", peer, err, want)
		}
	}
	user := authz.WithToken(context.Background(), is.Token(t, "u1", authz.RoleClinician))
	if _, err := e(user, nil); err != nil {
		t.Errorf("a user's token without a certificate: %v", err)
	}
}
