package audit

import (
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
	"time"

	"github.com/pms/pms/pkg/platform/privfile"
)

// CheckpointKeyFile is the file, under the data folder, of service's checkpoint key ring.
func CheckpointKeyFile(dataDir, service string) string {
	return filepath.Join(dataDir, "audit-checkpoint-"+service+".json")
}

// checkpointKeyFile is a checkpoint key ring on disk (JSON, mode 0600), modelled on auth's
// key ring: the newest key holds its private half and signs; retired keys keep only their
// public half. Unlike auth's tokens, checkpoints never expire, so retired public keys are
// kept for good: a checkpoint signed years ago still verifies after any number of rotations.
type checkpointKeyFile struct {
	Keys []checkpointKey `json:"keys"`
}

type checkpointKey struct {
	Kid     string     `json:"kid"`
	Public  string     `json:"public"`            // base64 Ed25519 public key
	Private string     `json:"private,omitempty"` // base64 seed; the signing key only
	Created time.Time  `json:"created"`
	Retired *time.Time `json:"retired,omitempty"`
}

// CheckpointKeys is a service's checkpoint signing key and every public key it has used,
// backed by a file. Sign re-reads the file when it changed, so `pms audit rotate-key` takes
// effect in a running service, and replicas sharing the file agree.
type CheckpointKeys struct {
	path string

	mu      sync.Mutex
	stamp   fileStamp
	kid     string
	private ed25519.PrivateKey
	public  map[string]ed25519.PublicKey
}

// fileStamp tells whether a file changed since it was read.
type fileStamp struct {
	mod  time.Time
	size int64
	ino  os.FileInfo
}

func stampOf(fi os.FileInfo) fileStamp { return fileStamp{mod: fi.ModTime(), size: fi.Size(), ino: fi} }

func (s fileStamp) same(fi os.FileInfo) bool {
	return s.ino != nil && os.SameFile(s.ino, fi) && s.mod.Equal(fi.ModTime()) && s.size == fi.Size()
}

// OpenCheckpointKeys loads the key ring at path, creating it (and its folder, 0700) with a
// new key when it does not exist. created reports whether a key was generated.
func OpenCheckpointKeys(path string) (k *CheckpointKeys, created bool, err error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, false, fmt.Errorf("audit: checkpoint key folder: %w", err)
		}
		key, err := newCheckpointKey(time.Now())
		if err != nil {
			return nil, false, err
		}
		switch err := writeCheckpointKeys(path, checkpointKeyFile{Keys: []checkpointKey{key}}, true); {
		case err == nil:
			created = true
		case errors.Is(err, fs.ErrExist): // another process made it first
		default:
			return nil, false, err
		}
	}
	k = &CheckpointKeys{path: path}
	if err := k.load(); err != nil {
		return nil, false, err
	}
	return k, created, nil
}

// RotateCheckpointKeyFile retires the signing key of the ring at path (keeping its public
// half, so the checkpoints it signed still verify) and makes a new signing key. It returns
// the new and the retired key ids.
func RotateCheckpointKeyFile(path string, now time.Time) (newKid, oldKid string, err error) {
	kf, err := readCheckpointKeys(path)
	if err != nil {
		return "", "", err
	}
	for i := range kf.Keys {
		if kf.Keys[i].Private != "" {
			oldKid = kf.Keys[i].Kid
			kf.Keys[i].Private = ""
			t := now.UTC()
			kf.Keys[i].Retired = &t
		}
	}
	key, err := newCheckpointKey(now)
	if err != nil {
		return "", "", err
	}
	kf.Keys = append([]checkpointKey{key}, kf.Keys...)
	if err := writeCheckpointKeys(path, kf, false); err != nil {
		return "", "", err
	}
	return key.Kid, oldKid, nil
}

// CheckpointPublicKeys reads the public keys of the ring at path, by key id, without
// creating anything: what a verifier needs.
func CheckpointPublicKeys(path string) (map[string]ed25519.PublicKey, error) {
	kf, err := readCheckpointKeys(path)
	if err != nil {
		return nil, err
	}
	keys, _, _, err := kf.parse()
	return keys, err
}

// Sign signs msg with the current key and returns its id with the signature.
func (k *CheckpointKeys) Sign(msg []byte) (kid string, sig []byte, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if fi, err := os.Stat(k.path); err == nil && !k.stamp.same(fi) {
		_ = k.loadLocked() // a bad edit keeps the keys already loaded
	}
	if k.private == nil {
		return "", nil, fmt.Errorf("audit: checkpoint key ring %s has no signing key", k.path)
	}
	return k.kid, ed25519.Sign(k.private, msg), nil
}

// PublicKeys returns every public key of the ring, by key id.
func (k *CheckpointKeys) PublicKeys() map[string]ed25519.PublicKey {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make(map[string]ed25519.PublicKey, len(k.public))
	for kid, p := range k.public {
		out[kid] = p
	}
	return out
}

func (k *CheckpointKeys) load() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.loadLocked()
}

func (k *CheckpointKeys) loadLocked() error {
	fi, err := os.Stat(k.path)
	if err != nil {
		return fmt.Errorf("audit: checkpoint key ring: %w", err)
	}
	kf, err := readCheckpointKeys(k.path)
	if err != nil {
		return err
	}
	public, kid, private, err := kf.parse()
	if err != nil {
		return err
	}
	k.public, k.kid, k.private, k.stamp = public, kid, private, stampOf(fi)
	return nil
}

// parse checks the file: every key's id is the thumbprint of its public key, and exactly one
// key (the signing key) holds a private half that matches its public half.
func (kf checkpointKeyFile) parse() (public map[string]ed25519.PublicKey, kid string, private ed25519.PrivateKey, err error) {
	public = map[string]ed25519.PublicKey{}
	for _, key := range kf.Keys {
		pb, err := base64.StdEncoding.DecodeString(key.Public)
		if err != nil || len(pb) != ed25519.PublicKeySize || thumbprint(pb) != key.Kid {
			return nil, "", nil, fmt.Errorf("audit: checkpoint key %q is not a valid Ed25519 public key", key.Kid)
		}
		public[key.Kid] = ed25519.PublicKey(pb)
		if key.Private != "" {
			seed, err := base64.StdEncoding.DecodeString(key.Private)
			if err != nil || len(seed) != ed25519.SeedSize || private != nil {
				return nil, "", nil, fmt.Errorf("audit: checkpoint key ring holds a bad or second signing key (%q)", key.Kid)
			}
			private = ed25519.NewKeyFromSeed(seed)
			if !private.Public().(ed25519.PublicKey).Equal(ed25519.PublicKey(pb)) {
				return nil, "", nil, fmt.Errorf("audit: checkpoint key %q: private and public halves differ", key.Kid)
			}
			kid = key.Kid
		}
	}
	return public, kid, private, nil
}

func newCheckpointKey(now time.Time) (checkpointKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return checkpointKey{}, err
	}
	return checkpointKey{Kid: thumbprint(pub), Public: base64.StdEncoding.EncodeToString(pub),
		Private: base64.StdEncoding.EncodeToString(priv.Seed()), Created: now.UTC()}, nil
}

// thumbprint is the RFC 7638 JWK thumbprint of an Ed25519 key, the key's id.
func thumbprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// writeCheckpointKeys writes kf to path (mode 0600) through a temporary file and a rename (or,
// with exclusive, a link that fails when path exists).
func writeCheckpointKeys(path string, kf checkpointKeyFile, exclusive bool) error {
	b, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return err
	}
	err = privfile.Write(path, append(b, '\n'), exclusive)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("audit: write checkpoint keys: %w", err)
	}
	return err
}

func readCheckpointKeys(path string) (checkpointKeyFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return checkpointKeyFile{}, fmt.Errorf("audit: read checkpoint keys: %w", err)
	}
	var kf checkpointKeyFile
	if err := json.Unmarshal(b, &kf); err != nil {
		return checkpointKeyFile{}, fmt.Errorf("audit: %s is not a checkpoint key ring: %w", path, err)
	}
	return kf, nil
}
