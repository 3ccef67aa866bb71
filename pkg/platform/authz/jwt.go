package authz

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	kitjwt "github.com/go-kit/kit/auth/jwt"
	"github.com/golang-jwt/jwt/v4"
	"github.com/pms/pms/pkg/platform/errs"
)

// Token defaults shared by the issuer (auth service) and every verifier.
const (
	DefaultIssuer   = "pms-auth"
	DefaultAudience = "pms"
	AccessTokenTTL  = 15 * time.Minute
)

// Claims are an access token's claims: the registered ones (iss, aud, sub, iat, nbf, exp,
// jti) plus the user's email and role, the session (refresh family) it belongs to and the
// user's token version when it was issued; revocations name those last two.
type Claims struct {
	Email     string `json:"email"`
	Role      string `json:"role"`
	SessionID string `json:"sid,omitempty"`
	Version   int64  `json:"ver,omitempty"`
	jwt.RegisteredClaims
}

// Sign returns a compact EdDSA JWT with kid in its header. The auth service issues tokens
// with it; tests mint them with it.
func Sign(key ed25519.PrivateKey, kid string, c Claims) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	t.Header["kid"] = kid
	return t.SignedString(key)
}

// Verifier checks access tokens: EdDSA only (the algorithm is allow-listed, so "none", HMAC
// signed with the public key, or RSA/ECDSA with a foreign key all fail), a known kid, a valid
// signature, the expected iss and aud, a present and unexpired exp, nbf, a subject and a
// known role. It is built on go-kit's auth/jwt parser.
//
// Verified tokens are cached by their exact text until they expire: an Ed25519 check costs
// tens of microseconds and a client sends the same token on every request for 15 minutes.
// The cache changes nothing about what is accepted (a token is stateless, and its expiry is
// checked on every hit); it is bounded, and forged tokens never enter it.
type Verifier struct {
	keys             KeySource
	issuer, audience string
	parse            func(ctx context.Context) (*Claims, error)
	cache            sync.Map // token text → cachedPrincipal
	cached           atomic.Int64
	deny             *DenyTable
}

type cachedPrincipal struct {
	p   Principal
	exp time.Time
	kid string
	key ed25519.PublicKey
}

// maxCachedTokens bounds the verification cache; past it the cache is emptied (cheap, rare,
// and only costs re-verification).
const maxCachedTokens = 10000

// NewVerifier returns a verifier trusting keys for tokens of issuer and audience.
func NewVerifier(keys KeySource, issuer, audience string) *Verifier {
	keyFunc := func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" || len(kid) > 128 {
			return nil, ErrUnknownKey
		}
		return keys.PublicKey(context.Background(), kid)
	}
	mw := kitjwt.NewParser(keyFunc, jwt.SigningMethodEdDSA, func() jwt.Claims { return &Claims{} })
	capture := mw(func(ctx context.Context, _ any) (any, error) {
		c, _ := ctx.Value(kitjwt.JWTClaimsContextKey).(*Claims)
		return c, nil
	})
	v := &Verifier{keys: keys, issuer: issuer, audience: audience}
	v.parse = func(ctx context.Context) (*Claims, error) {
		out, err := capture(ctx, nil)
		if err != nil {
			return nil, err
		}
		c, _ := out.(*Claims)
		if c == nil {
			return nil, kitjwt.ErrTokenInvalid
		}
		return c, nil
	}
	return v
}

// WithRevocations makes v refuse tokens table revokes, cached ones included, and lets its
// guards refuse writes while table is stale.
func (v *Verifier) WithRevocations(table *DenyTable) *Verifier {
	v.deny = table
	return v
}

// Revocations is the verifier's revocation table, or nil.
func (v *Verifier) Revocations() *DenyTable { return v.deny }

// Unauthenticated errors: one message for every way a token can be bad, so a caller learns
// nothing about which check failed; the cause stays for logs.
func unauthenticated(cause error) error {
	return errs.Wrap(errs.Unauthenticated, "a valid access token is required", cause)
}

// Verify checks raw and returns its principal, or an Unauthenticated error.
func (v *Verifier) Verify(ctx context.Context, raw string) (Principal, error) {
	if raw == "" {
		return Principal{}, unauthenticated(kitjwt.ErrTokenContextMissing)
	}
	if len(raw) > 8<<10 {
		return Principal{}, unauthenticated(kitjwt.ErrTokenMalformed)
	}
	if c, ok := v.cache.Load(raw); ok {
		cp := c.(cachedPrincipal)
		// A hit still needs its key to be trusted now: a retired or removed key ends its
		// tokens at once, as it would without the cache.
		if k, err := v.keys.PublicKey(ctx, cp.kid); err == nil && time.Now().Before(cp.exp) {
			if pub, ok := k.(ed25519.PublicKey); ok && pub.Equal(cp.key) {
				if v.deny.Revoked(cp.p) {
					return Principal{}, unauthenticated(ErrRevoked)
				}
				return cp.p, nil
			}
		}
		v.cache.Delete(raw)
	}
	if !canonical(raw) {
		return Principal{}, unauthenticated(kitjwt.ErrTokenMalformed)
	}
	c, err := v.parse(WithToken(ctx, raw))
	if err != nil {
		return Principal{}, unauthenticated(err)
	}
	switch {
	case !c.VerifyIssuer(v.issuer, true):
		return Principal{}, unauthenticated(errors.New("wrong issuer"))
	case !c.VerifyAudience(v.audience, true):
		return Principal{}, unauthenticated(errors.New("wrong audience"))
	case c.ExpiresAt == nil:
		return Principal{}, unauthenticated(errors.New("no expiry"))
	case c.Subject == "" || !ValidRole(c.Role):
		return Principal{}, unauthenticated(errors.New("no subject or unknown role"))
	}
	p := Principal{Subject: c.Subject, Email: c.Email, Role: c.Role, SessionID: c.SessionID, Version: c.Version}
	if v.deny.Revoked(p) {
		return Principal{}, unauthenticated(ErrRevoked)
	}
	if kid, key, ok := v.keyOf(ctx, raw); ok && (c.NotBefore == nil || !c.NotBefore.After(time.Now())) {
		if v.cached.Add(1) > maxCachedTokens {
			v.cache.Clear()
			v.cached.Store(0)
		}
		v.cache.Store(raw, cachedPrincipal{p: p, exp: c.ExpiresAt.Time, kid: kid, key: key})
	}
	return p, nil
}

// keyOf returns the kid and key that verified raw (already verified, so parsing the
// header again cannot fail in a way that matters; if it does, the token is not cached).
func (v *Verifier) keyOf(ctx context.Context, raw string) (string, ed25519.PublicKey, bool) {
	t, _, err := jwt.NewParser().ParseUnverified(raw, &Claims{})
	if err != nil {
		return "", nil, false
	}
	kid, _ := t.Header["kid"].(string)
	k, err := v.keys.PublicKey(ctx, kid)
	if err != nil {
		return "", nil, false
	}
	pub, ok := k.(ed25519.PublicKey)
	return kid, pub, ok
}

// canonical reports whether raw is three segments of unpadded base64url, each in its one
// canonical spelling. The JWT parser's decoder is lenient: it skips line breaks and ignores
// the spare low bits of a segment's last character, so a genuine token would otherwise have
// other spellings that verify too (and are cached as other tokens). The signature covers
// the text of the first two segments but not of the third, so only this check keeps a
// signature from being re-spelled.
func canonical(raw string) bool {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if strings.ContainsAny(p, "\r\n") {
			return false
		}
		if _, err := base64.RawURLEncoding.Strict().DecodeString(p); err != nil {
			return false
		}
	}
	return true
}

// UnverifiedSubject is the sub claim of token, read without verifying it (or "" when the
// token does not parse): for naming who a message claimed to come from where the token itself
// must not be kept (a dead letter), never for deciding anything.
func UnverifiedSubject(token string) string {
	if len(token) > 8192 {
		return ""
	}
	var c Claims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &c); err != nil || len(c.Subject) > 200 {
		return ""
	}
	return c.Subject
}
