// Package authztest mints real access tokens for tests: an Ed25519 key pair, a JWKS served
// on a real loopback listener, and tokens for any role, signed exactly as the auth service
// signs them.
package authztest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v4"
	"github.com/google/uuid"
	"github.com/pms/pms/pkg/platform/authz"
)

// Issuer is a test token issuer.
type Issuer struct {
	Kid     string
	Private ed25519.PrivateKey
	Public  ed25519.PublicKey
	server  *httptest.Server
}

// New returns an issuer whose JWKS is served until the test ends.
func New(t testing.TB) *Issuer {
	t.Helper()
	is := Start()
	t.Cleanup(is.Close)
	return is
}

// Start returns an issuer serving its JWKS until Close; for a TestMain that shares one
// issuer across a package's tests.
func Start() *Issuer {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	is := &Issuer{Kid: "test-" + uuid.NewString()[:8], Private: priv, Public: pub}
	is.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(authz.JWKS{Keys: []authz.JWK{authz.PublicJWK(is.Kid, is.Public)}})
	}))
	return is
}

// Close stops serving the JWKS.
func (is *Issuer) Close() { is.server.Close() }

// JWKSURL is where the issuer's key set is served.
func (is *Issuer) JWKSURL() string { return is.server.URL + "/.well-known/jwks.json" }

// Keys returns the issuer's key set for an in-process verifier.
func (is *Issuer) Keys() authz.StaticKeys { return authz.StaticKeys{is.Kid: is.Public} }

// Verifier returns a verifier trusting this issuer with the default iss and aud.
func (is *Issuer) Verifier() *authz.Verifier {
	return authz.NewVerifier(is.Keys(), authz.DefaultIssuer, authz.DefaultAudience)
}

// Claims returns valid claims for subject with role, expiring in 15 minutes.
func (is *Issuer) Claims(subject, role string) authz.Claims {
	now := time.Now()
	return authz.Claims{Email: subject + "@example.org", Role: role, RegisteredClaims: jwt.RegisteredClaims{
		Issuer: authz.DefaultIssuer, Audience: jwt.ClaimStrings{authz.DefaultAudience}, Subject: subject,
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(authz.AccessTokenTTL)), ID: uuid.NewString(),
	}}
}

// Sign signs c with the issuer's key.
func (is *Issuer) Sign(t testing.TB, c authz.Claims) string {
	t.Helper()
	tok, err := authz.Sign(is.Private, is.Kid, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Token returns a valid access token for subject with role.
func (is *Issuer) Token(t testing.TB, subject, role string) string {
	return is.Sign(t, is.Claims(subject, role))
}
