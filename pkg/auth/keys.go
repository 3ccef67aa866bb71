package auth

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/privfile"
)

// KeyFileName is the key ring's file under the data folder when no key file is configured.
const KeyFileName = "auth-keys.json"

// keyRetention is how long after its retirement a key stays listed (and trusted): until every
// token it signed has expired, plus a minute for clocks that disagree.
const keyRetention = authz.AccessTokenTTL + time.Minute

// keyFile is the key ring on disk (JSON, mode 0600). Exactly one key, the newest, holds its
// private half and signs; retired keys keep only their public half and their retirement
// time, and are dropped once every token they signed has expired.
type keyFile struct {
	Keys []storedKey `json:"keys"`
}

type storedKey struct {
	Kid        string     `json:"kid"`
	Alg        string     `json:"alg"`
	PublicKey  string     `json:"publicKey"`            // base64url, 32 bytes
	PrivateKey string     `json:"privateKey,omitempty"` // base64url Ed25519 seed, signing key only
	CreatedAt  time.Time  `json:"createdAt"`
	RetiredAt  *time.Time `json:"retiredAt,omitempty"`
}

// verificationKey is one key the ring trusts.
type verificationKey struct {
	kid       string
	public    ed25519.PublicKey
	retiredAt time.Time // zero for the signing key
}

// KeyRingOptions configure OpenKeyRing. Zero values work.
type KeyRingOptions struct {
	// Now is the clock; tests move it. Defaults to time.Now.
	Now func() time.Time
	// Logger receives warnings (a key file readable by others, a failed reload).
	Logger log.Logger
}

// KeyRing holds the auth service's signing key and every key still trusted for
// verification, backed by a file. It re-reads the file when it changes (at most a stat per
// signature or key-set request), so `pms auth rotate-key` takes effect in a running process
// without a restart, and replicas sharing the file agree.
type KeyRing struct {
	// checked is when PublicKey last looked at the file (Unix ns).
	checked atomic.Int64
	path    string
	now     func() time.Time
	log     log.Logger

	mu      sync.RWMutex
	signKid string
	signKey ed25519.PrivateKey
	keys    []verificationKey // signing key first
	stamp   fileStamp
}

// fileStamp tells whether the file changed since it was read: a rewrite through a rename is
// another file, an edit in place changes the time or size.
type fileStamp struct {
	fi fs.FileInfo
}

func (s fileStamp) same(fi fs.FileInfo) bool {
	return s.fi != nil && os.SameFile(s.fi, fi) && s.fi.ModTime().Equal(fi.ModTime()) && s.fi.Size() == fi.Size()
}

// OpenKeyRing loads the key ring at path, creating it (and its folder, 0700) with a new key
// when it does not exist. created reports whether a key was generated.
func OpenKeyRing(path string, o KeyRingOptions) (ring *KeyRing, created bool, err error) {
	r := &KeyRing{path: path, now: o.Now, log: o.Logger}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = log.NewNopLogger()
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, false, fmt.Errorf("auth: key folder: %w", err)
		}
		k, err := newStoredKey(r.now())
		if err != nil {
			return nil, false, err
		}
		if err := writeKeyFile(path, keyFile{Keys: []storedKey{k}}, true); err != nil {
			if !errors.Is(err, fs.ErrExist) { // another replica created it first: use theirs
				return nil, false, err
			}
		} else {
			created = true
		}
	}
	if err := r.load(); err != nil {
		return nil, false, err
	}
	return r, created, nil
}

// RotateKeyFile retires the signing key of the ring at path (keeping its public half listed
// until the tokens it signed have expired), makes a new signing key, drops retired keys whose
// tokens have all expired, and writes the file back atomically. A running auth service picks
// the change up on its next signature. With revoke the old key is dropped at once instead (a
// compromised key: its tokens stop verifying at the auth service now, and at every other
// service on its next JWKS refresh). It returns the new and the retired key ids.
func RotateKeyFile(path string, now time.Time, revoke bool) (newKid, oldKid string, err error) {
	kf, err := readKeyFile(path)
	if err != nil {
		return "", "", err
	}
	next, err := newStoredKey(now)
	if err != nil {
		return "", "", err
	}
	out := keyFile{Keys: []storedKey{next}}
	for _, k := range kf.Keys {
		if k.RetiredAt == nil {
			at := now.UTC()
			k.RetiredAt, k.PrivateKey, oldKid = &at, "", k.Kid
			if revoke { // compromised: trusted nowhere from now on, its tokens included
				continue
			}
		}
		if now.Sub(*k.RetiredAt) < keyRetention {
			out.Keys = append(out.Keys, k)
		}
	}
	if err := writeKeyFile(path, out, false); err != nil {
		return "", "", err
	}
	return next.Kid, oldKid, nil
}

// newStoredKey generates an Ed25519 key whose kid is its RFC 7638 thumbprint.
func newStoredKey(now time.Time) (storedKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return storedKey{}, err
	}
	b64 := base64.RawURLEncoding
	return storedKey{Kid: Thumbprint(pub), Alg: "EdDSA", PublicKey: b64.EncodeToString(pub),
		PrivateKey: b64.EncodeToString(priv.Seed()), CreatedAt: now.UTC()}, nil
}

// Thumbprint is the RFC 7638 JWK thumbprint of an Ed25519 key (base64url SHA-256 of its
// canonical JWK), used as its kid: stable, and derived from the key alone.
func Thumbprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// writeKeyFile writes kf to path with mode 0600 through a temporary file and a rename, so a
// reader never sees half a file. With exclusive, an existing file is not replaced
// (fs.ErrExist).
func writeKeyFile(path string, kf keyFile, exclusive bool) error {
	b, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return err
	}
	err = privfile.Write(path, append(b, '\n'), exclusive)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("auth: write key file: %w", err)
	}
	return err
}

func readKeyFile(path string) (keyFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return keyFile{}, fmt.Errorf("auth: read key file: %w", err)
	}
	var kf keyFile
	if err := json.Unmarshal(b, &kf); err != nil {
		return keyFile{}, fmt.Errorf("auth: key file %s is not a key ring: %w", path, err)
	}
	return kf, nil
}

// load reads the file and replaces the ring's keys; on any error the ring is unchanged.
func (r *KeyRing) load() error {
	fi, err := os.Stat(r.path)
	if err != nil {
		return fmt.Errorf("auth: key file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		_ = level.Warn(r.log).Log("msg", "the key file is readable by others; it should be mode 0600", "path", r.path)
	}
	kf, err := readKeyFile(r.path)
	if err != nil {
		return err
	}
	var (
		signKid string
		signKey ed25519.PrivateKey
		keys    []verificationKey
	)
	b64 := base64.RawURLEncoding
	for _, k := range kf.Keys {
		pub, err := b64.DecodeString(k.PublicKey)
		if err != nil || len(pub) != ed25519.PublicKeySize || k.Kid == "" || (k.Alg != "" && k.Alg != "EdDSA") {
			return fmt.Errorf("auth: key file %s: key %q is not an Ed25519 key", r.path, k.Kid)
		}
		if k.RetiredAt == nil {
			seed, err := b64.DecodeString(k.PrivateKey)
			if err != nil || len(seed) != ed25519.SeedSize {
				return fmt.Errorf("auth: key file %s: signing key %q has no valid private key", r.path, k.Kid)
			}
			priv := ed25519.NewKeyFromSeed(seed)
			if !priv.Public().(ed25519.PublicKey).Equal(ed25519.PublicKey(pub)) {
				return fmt.Errorf("auth: key file %s: key %q: private and public halves differ", r.path, k.Kid)
			}
			if signKey != nil {
				return fmt.Errorf("auth: key file %s: more than one signing key", r.path)
			}
			signKid, signKey = k.Kid, priv
			keys = append([]verificationKey{{kid: k.Kid, public: pub}}, keys...)
			continue
		}
		keys = append(keys, verificationKey{kid: k.Kid, public: pub, retiredAt: *k.RetiredAt})
	}
	if signKey == nil {
		return fmt.Errorf("auth: key file %s has no signing key", r.path)
	}
	r.mu.Lock()
	r.signKid, r.signKey, r.keys = signKid, signKey, keys
	r.stamp = fileStamp{fi: fi}
	r.mu.Unlock()
	return nil
}

// refresh re-reads the file when its stamp changed. A file that cannot be read leaves the
// ring as it was (and logs why), so a bad edit does not stop logins.
func (r *KeyRing) refresh() {
	fi, err := os.Stat(r.path)
	if err != nil {
		_ = level.Warn(r.log).Log("msg", "key file unreadable; keeping the keys in memory", "err", err)
		return
	}
	r.mu.RLock()
	same := r.stamp.same(fi)
	r.mu.RUnlock()
	if same {
		return
	}
	if err := r.load(); err != nil {
		_ = level.Warn(r.log).Log("msg", "key file reload failed; keeping the keys in memory", "err", err)
	}
}

// Sign signs c with the current signing key, with its kid in the header (authz.Sign).
func (r *KeyRing) Sign(c authz.Claims) (string, error) {
	r.refresh()
	r.mu.RLock()
	kid, key := r.signKid, r.signKey
	r.mu.RUnlock()
	return authz.Sign(key, kid, c)
}

// SigningKey returns the current signing key and its kid (tests forge tokens with it).
func (r *KeyRing) SigningKey() (string, ed25519.PrivateKey) {
	r.refresh()
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.signKid, r.signKey
}

// trusted returns the keys still trusted at now: the signing key and retired keys whose
// tokens may not all have expired yet.
func (r *KeyRing) trusted(now time.Time) []verificationKey {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]verificationKey, 0, len(r.keys))
	for _, k := range r.keys {
		if k.retiredAt.IsZero() || now.Sub(k.retiredAt) < keyRetention {
			out = append(out, k)
		}
	}
	return out
}

// PublicKey implements authz.KeySource, so the auth service's own guard verifies with the
// ring, without a request to itself. An unknown kid re-reads the file first (at most a stat
// when nothing changed), so a token signed by a replica's freshly rotated key is known.
func (r *KeyRing) PublicKey(_ context.Context, kid string) (crypto.PublicKey, error) {
	// A key revoked in the file (pms auth rotate-key --revoke) stops verifying here within a
	// second, without a stat per verification.
	if now := time.Now().UnixNano(); now-r.checked.Load() > int64(time.Second) {
		r.checked.Store(now)
		r.refresh()
	}
	for attempt := 0; attempt < 2; attempt++ {
		for _, k := range r.trusted(r.now()) {
			if k.kid == kid {
				return k.public, nil
			}
		}
		if attempt == 0 {
			r.refresh()
		}
	}
	return nil, authz.ErrUnknownKey
}

// JWKS returns every trusted verification key, the signing key first.
func (r *KeyRing) JWKS() authz.JWKS {
	r.refresh()
	keys := r.trusted(r.now())
	set := authz.JWKS{Keys: make([]authz.JWK, len(keys))}
	for i, k := range keys {
		set.Keys[i] = authz.PublicJWK(k.kid, k.public)
	}
	return set
}

// Path is the ring's file.
func (r *KeyRing) Path() string { return r.path }
