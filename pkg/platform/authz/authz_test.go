package authz_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v4"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/authz/authztest"
	"github.com/pms/pms/pkg/platform/errs"
)

// Attacks returns every forged or unacceptable token the contract says must be refused
// (401), built against issuer is. Other suites (HTTP, gRPC, gateway) reuse the same list.
func attacks(t *testing.T, is *authztest.Issuer) map[string]string {
	sign := func(m jwt.SigningMethod, key any, c authz.Claims, kid string) string {
		tok := jwt.NewWithClaims(m, c)
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := is.Claims("u1", authz.RoleClinician)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, foreign, _ := ed25519.GenerateKey(rand.Reader)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, good).SignedString(jwt.UnsafeAllowNoneSignatureType)
	edit := func(f func(*authz.Claims)) string {
		c := is.Claims("u1", authz.RoleClinician)
		f(&c)
		return is.Sign(t, c)
	}
	valid := is.Sign(t, good)
	parts := strings.Split(valid, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var m map[string]any
	_ = json.Unmarshal(payload, &m)
	m["role"] = authz.RoleAdmin
	forged, _ := json.Marshal(m)
	return map[string]string{
		"no token":                "",
		"garbage":                 "not.a.jwt",
		"alg none":                none,
		"HS256 with public key":   sign(jwt.SigningMethodHS256, []byte(is.Public), good, is.Kid),
		"RS256 foreign key":       sign(jwt.SigningMethodRS256, rsaKey, good, is.Kid),
		"ES256 foreign key":       sign(jwt.SigningMethodES256, ecKey, good, is.Kid),
		"EdDSA foreign key":       sign(jwt.SigningMethodEdDSA, foreign, good, is.Kid),
		"unknown kid":             sign(jwt.SigningMethodEdDSA, is.Private, good, "other-kid"),
		"no kid":                  sign(jwt.SigningMethodEdDSA, is.Private, good, ""),
		"wrong iss":               edit(func(c *authz.Claims) { c.Issuer = "evil" }),
		"wrong aud":               edit(func(c *authz.Claims) { c.Audience = jwt.ClaimStrings{"other-service"} }),
		"expired":                 edit(func(c *authz.Claims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Minute)) }),
		"no exp":                  edit(func(c *authz.Claims) { c.ExpiresAt = nil }),
		"nbf in the future":       edit(func(c *authz.Claims) { c.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Hour)) }),
		"unknown role":            edit(func(c *authz.Claims) { c.Role = "superuser" }),
		"no subject":              edit(func(c *authz.Claims) { c.Subject = "" }),
		"payload tampered":        parts[0] + "." + base64.RawURLEncoding.EncodeToString(forged) + "." + parts[2],
		"refresh token as access": base64.RawURLEncoding.EncodeToString(make([]byte, 32)),
		"huge token":              strings.Repeat("a", 100<<10),
		"signature stripped":      parts[0] + "." + parts[1] + ".",
	}
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
