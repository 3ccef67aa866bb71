package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pms/pms/pkg/platform/privfile"
)

// MFAKeyFileName is the MFA sealing key's file under the data folder when no
// --auth-mfa-key-file is configured.
const MFAKeyFileName = "auth/mfa.key"

// mfaKeyLen is the sealing key's length: AES-256.
const mfaKeyLen = 32

// OpenMFAKey reads the key that seals TOTP secrets at rest (32 bytes, base64 on one line)
// from path, creating it (mode 0600, folder 0700) with a random key when it does not exist,
// as OpenKeyRing does for the signing keys: two replicas starting at once cannot both create
// it (the file is linked into place exclusively; the loser reads the winner's). A key that
// is lost makes every enrolled factor unusable (their owners fall back to recovery codes),
// so it belongs in the same backups as the database.
func OpenMFAKey(path string) (key []byte, created bool, err error) {
	key, err = readMFAKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("auth: mfa key: %w", err)
	}
	key = make([]byte, mfaKeyLen)
	if _, err := rand.Read(key); err != nil {
		return nil, false, err
	}
	if err := writeMFAKey(path, key); err != nil {
		if errors.Is(err, fs.ErrExist) {
			key, err = readMFAKey(path)
			return key, false, err
		}
		return nil, false, err
	}
	return key, true, nil
}

func readMFAKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("auth: read mfa key: %w", err)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != mfaKeyLen {
		return nil, fmt.Errorf("auth: mfa key file %s must hold %d bytes in base64", path, mfaKeyLen)
	}
	return key, nil
}

// writeMFAKey writes key to path (mode 0600) through a temporary file linked into place,
// failing with fs.ErrExist when path exists.
func writeMFAKey(path string, key []byte) error {
	err := privfile.Write(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), true)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("auth: write mfa key: %w", err)
	}
	return err
}

// sealer seals TOTP secrets with AES-256-GCM. The user id is the additional data, so a
// sealed secret copied onto another user's row does not open.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (sealer, error) {
	if len(key) != mfaKeyLen {
		return sealer{}, fmt.Errorf("auth: the mfa key must be %d bytes", mfaKeyLen)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return sealer{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return sealer{}, err
	}
	return sealer{aead: aead}, nil
}

// seal returns base64(nonce || ciphertext) of secret for userID.
func (s sealer) seal(secret, userID string) (string, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, []byte(secret), []byte(userID))), nil
}

// open is seal's inverse; a wrong key, user or a tampered value is an error.
func (s sealer) open(sealed, userID string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil || len(b) < s.aead.NonceSize() {
		return "", errors.New("auth: sealed mfa secret is malformed")
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, b[:n], b[n:], []byte(userID))
	if err != nil {
		return "", errors.New("auth: sealed mfa secret does not open (another key?)")
	}
	return string(plain), nil
}
