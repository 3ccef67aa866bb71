package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"

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
	key, created, err = privfile.Key(path, mfaKeyLen, base64.StdEncoding)
	if errors.Is(err, privfile.ErrBadKey) {
		return nil, false, fmt.Errorf("auth: mfa key file %s must hold %d bytes in base64", path, mfaKeyLen)
	}
	if err != nil {
		return nil, false, fmt.Errorf("auth: mfa key: %w", err)
	}
	return key, created, nil
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
