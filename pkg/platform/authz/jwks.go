package authz

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// JWK is one public key in a JSON Web Key Set (RFC 7517; Ed25519 as RFC 8037 "OKP").
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Kid string `json:"kid"`
	Alg string `json:"alg,omitempty"`
	Use string `json:"use,omitempty"`
}

// JWKS is a key set, as GET /.well-known/jwks.json serves it.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// PublicJWK describes an Ed25519 verification key.
func PublicJWK(kid string, pub ed25519.PublicKey) JWK {
	return JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(pub), Kid: kid, Alg: "EdDSA", Use: "sig"}
}

// PublicKey returns the Ed25519 key k holds; other key types are refused (we only ever
// sign with Ed25519, and accepting anything else would widen the attack surface).
func (k JWK) PublicKey() (ed25519.PublicKey, error) {
	if k.Kty != "OKP" || k.Crv != "Ed25519" {
		return nil, fmt.Errorf("authz: unsupported key type %q/%q", k.Kty, k.Crv)
	}
	b, err := base64.RawURLEncoding.DecodeString(k.X)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("authz: malformed Ed25519 key")
	}
	return ed25519.PublicKey(b), nil
}

// KeySource finds the verification key for a token's kid.
type KeySource interface {
	PublicKey(ctx context.Context, kid string) (crypto.PublicKey, error)
}

// KeyFunc adapts a function to KeySource (the auth service verifies with its own key ring).
type KeyFunc func(ctx context.Context, kid string) (crypto.PublicKey, error)

// PublicKey implements KeySource.
func (f KeyFunc) PublicKey(ctx context.Context, kid string) (crypto.PublicKey, error) {
	return f(ctx, kid)
}

// StaticKeys is a fixed key set (tests, or keys loaded from a file).
type StaticKeys map[string]ed25519.PublicKey

// PublicKey implements KeySource.
func (s StaticKeys) PublicKey(_ context.Context, kid string) (crypto.PublicKey, error) {
	if k, ok := s[kid]; ok {
		return k, nil
	}
	return nil, ErrUnknownKey
}

// ErrUnknownKey says no key with the token's kid is known, even after a refresh.
var ErrUnknownKey = errors.New("authz: unknown key id")

// DefaultJWKSRefresh is how often a cached key set is fetched again: a key the auth service
// stops listing (rotated out, revoked) stops verifying everywhere within it.
const DefaultJWKSRefresh = 30 * time.Second

// JWKSSource fetches the auth service's key set over HTTP and caches it. The set is fetched
// again when it is older than the refresh interval (keys no longer listed are dropped then)
// and when a token names an unknown kid (a rotated key is picked up at once); either way at
// most once per MinRefresh, and by one caller at a time (single flight) while the others keep
// verifying with the keys they have: no lock is held during the fetch, so a slow auth service
// or a flood of forged kids never stalls verification. A failed fetch keeps the keys it had.
type JWKSSource struct {
	url        string
	client     *http.Client
	minRefresh time.Duration
	refresh    time.Duration
	flight     singleflight.Group
	fetches    atomic.Int64

	mu      sync.RWMutex
	keys    map[string]ed25519.PublicKey
	fetched time.Time // last successful fetch
	tried   time.Time // last attempt
	err     error     // of the last attempt
}

// NewJWKSSource returns a source reading url, fetching at most once per minRefresh (≤ 0: 5 s)
// and refreshing every DefaultJWKSRefresh (see Refresh).
func NewJWKSSource(url string, client *http.Client, minRefresh time.Duration) *JWKSSource {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	if minRefresh <= 0 {
		minRefresh = 5 * time.Second
	}
	return &JWKSSource{url: url, client: client, minRefresh: minRefresh, refresh: DefaultJWKSRefresh}
}

// Refresh sets how old the cached set may grow before it is fetched again (≤ 0 keeps the
// default) and returns s.
func (s *JWKSSource) Refresh(every time.Duration) *JWKSSource {
	if every > 0 {
		s.refresh = every
	}
	return s
}

// Fetches is how many times the set was requested from the auth service.
func (s *JWKSSource) Fetches() int64 { return s.fetches.Load() }

// PublicKey implements KeySource. A known key is answered from the cache; when the set is
// older than the refresh interval it is fetched again in the background. An unknown kid
// waits for the fetch the rate limit allows, or joins the one in flight.
func (s *JWKSSource) PublicKey(ctx context.Context, kid string) (crypto.PublicKey, error) {
	k, ok, fresh, mayFetch := s.lookup(kid)
	switch {
	case ok && fresh:
		return k, nil
	case ok:
		if mayFetch {
			go s.update(ctx)
		}
		return k, nil
	}
	s.update(ctx)
	if k, ok, _, _ = s.lookup(kid); ok {
		return k, nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.keys) == 0 && s.err != nil {
		return nil, s.err
	}
	return nil, ErrUnknownKey
}

// lookup reads the cache: the key of kid, whether the set is within its refresh interval,
// and whether a fetch may be made now.
func (s *JWKSSource) lookup(kid string) (ed25519.PublicKey, bool, bool, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, ok := s.keys[kid]
	return k, ok, s.keys != nil && time.Since(s.fetched) < s.refresh, time.Since(s.tried) >= s.minRefresh
}

// update fetches the set, at most once per minRefresh, once for every caller asking at the
// same time (single flight: a caller arriving during a fetch waits for it); the fetch is
// detached from the asking caller's cancellation (others wait for it too) but bounded.
func (s *JWKSSource) update(ctx context.Context) {
	_, _, _ = s.flight.Do("jwks", func() (any, error) {
		s.mu.Lock()
		if time.Since(s.tried) < s.minRefresh {
			s.mu.Unlock()
			return nil, nil
		}
		s.tried = time.Now()
		s.mu.Unlock()
		s.fetches.Add(1)
		keys, err := s.fetch(context.WithoutCancel(ctx))
		s.mu.Lock()
		defer s.mu.Unlock()
		s.err = err
		if err == nil {
			s.keys, s.fetched = keys, time.Now()
		}
		return nil, nil
	})
}

func (s *JWKSSource) fetch(ctx context.Context) (map[string]ed25519.PublicKey, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("authz: fetch JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("authz: fetch JWKS: status %d", resp.StatusCode)
	}
	var set JWKS
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return nil, fmt.Errorf("authz: decode JWKS: %w", err)
	}
	keys := map[string]ed25519.PublicKey{}
	for _, k := range set.Keys {
		if pub, err := k.PublicKey(); err == nil && k.Kid != "" {
			keys[k.Kid] = pub
		}
	}
	return keys, nil
}
