package authztest

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v4"

	"github.com/pms/pms/pkg/platform/authz"
)

// Attacks returns every forged or unacceptable access token the contract says must be
// refused with 401, by name, built against the issuer is (whose Private key is the real
// signing key, so claim-level attacks carry a valid signature). refresh is a real refresh
// token of the auth service, presented as an access token ("" leaves that case out). The
// tokens fit in an HTTP header, so over-the-wire suites (HTTP, gRPC, gateway) can send every
// one of them.
func Attacks(t testing.TB, is *Issuer, refresh string) map[string]string {
	t.Helper()
	sign := func(m jwt.SigningMethod, key any, c authz.Claims, kid string) string {
		tok := jwt.NewWithClaims(m, c)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := is.Claims("u1", authz.RoleClinician)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
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
	out := map[string]string{
		"no token":              "",
		"garbage":               "not.a.jwt",
		"alg none":              none,
		"HS256 with public key": sign(jwt.SigningMethodHS256, []byte(is.Public), good, is.Kid),
		"RS256 foreign key":     sign(jwt.SigningMethodRS256, rsaKey, good, is.Kid),
		"ES256 foreign key":     sign(jwt.SigningMethodES256, ecKey, good, is.Kid),
		"EdDSA foreign key":     sign(jwt.SigningMethodEdDSA, foreign, good, is.Kid),
		"unknown kid":           sign(jwt.SigningMethodEdDSA, is.Private, good, "other-kid"),
		"no kid":                sign(jwt.SigningMethodEdDSA, is.Private, good, ""),
		"wrong iss":             edit(func(c *authz.Claims) { c.Issuer = "evil" }),
		"wrong aud":             edit(func(c *authz.Claims) { c.Audience = jwt.ClaimStrings{"other-service"} }),
		"expired":               edit(func(c *authz.Claims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Minute)) }),
		"no exp":                edit(func(c *authz.Claims) { c.ExpiresAt = nil }),
		"nbf in the future":     edit(func(c *authz.Claims) { c.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Hour)) }),
		"unknown role":          edit(func(c *authz.Claims) { c.Role = "superuser" }),
		"no subject":            edit(func(c *authz.Claims) { c.Subject = "" }),
		"payload tampered":      parts[0] + "." + base64.RawURLEncoding.EncodeToString(forged) + "." + parts[2],
		"signature stripped":    parts[0] + "." + parts[1] + ".",
		// The genuine signature spelled otherwise: a lenient base64 decoder ignores the spare
		// low bits of the last character, so this decodes to the same bytes.
		"signature re-spelled": parts[0] + "." + parts[1] + "." + respell(parts[2]),
		"over 8 KiB":           strings.Repeat("a", 9<<10),
	}
	if refresh != "" {
		out["refresh token as access token"] = refresh
	}
	return out
}

// b64url is the base64url alphabet, in value order.
const b64url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// respell flips the lowest bit of seg's last character. For an Ed25519 signature (64 bytes,
// 86 characters) that bit carries no data, so only a strict decoder tells the two apart.
func respell(seg string) string {
	last := strings.IndexByte(b64url, seg[len(seg)-1])
	return seg[:len(seg)-1] + string(b64url[last^1])
}
