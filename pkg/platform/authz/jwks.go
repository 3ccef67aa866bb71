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
	"time"
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

// JWKSSource fetches the auth service's key set over HTTP and caches it. A token with an
// unknown kid triggers a refetch, at most once per MinRefresh, so a rotated key is picked up
// at once while a flood of forged kids cannot turn into a flood of fetches.
type JWKSSource struct {
	url        string
	client     *http.Client
	minRefresh time.Duration

	mu        sync.Mutex
	keys      map[string]ed25519.PublicKey
	lastFetch time.Time
}

// NewJWKSSource returns a source reading url. minRefresh ≤ 0 means 5 s.
func NewJWKSSource(url string, client *http.Client, minRefresh time.Duration) *JWKSSource {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	if minRefresh <= 0 {
		minRefresh = 5 * time.Second
	}
	return &JWKSSource{url: url, client: client, minRefresh: minRefresh}
}

// PublicKey implements KeySource.
func (s *JWKSSource) PublicKey(ctx context.Context, kid string) (crypto.PublicKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[kid]; ok {
		return k, nil
	}
	if time.Since(s.lastFetch) < s.minRefresh {
		return nil, ErrUnknownKey
	}
	s.lastFetch = time.Now()
	keys, err := s.fetch(ctx)
	if err != nil {
		return nil, err
	}
	s.keys = keys
	if k, ok := keys[kid]; ok {
		return k, nil
	}
	return nil, ErrUnknownKey
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
