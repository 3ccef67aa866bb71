// Package privfile writes the files that hold secrets (signing and sealing keys, Kafka
// credentials): mode 0600 from the first byte, through a temporary file in the same folder,
// so a reader never sees half a file and a crash leaves the old one.
package privfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Write writes b to path (mode 0600; its folder is made 0700 when missing). It replaces an
// existing file by a rename, or with exclusive links the new file into place and fails with
// fs.ErrExist when path exists, so two processes starting at once cannot both create it.
func Write(path string, b []byte, exclusive bool) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(b)
	if err := errors.Join(tmp.Chmod(0o600), werr, tmp.Sync(), tmp.Close()); err != nil {
		return err
	}
	if exclusive {
		return os.Link(tmp.Name(), path) // fs.ErrExist when path exists
	}
	return os.Rename(tmp.Name(), path)
}

// Encoding is how a key is kept as text in its file: hex or base64.
type Encoding interface {
	EncodeToString([]byte) string
	DecodeString(string) ([]byte, error)
}

// Hex is the hex Encoding (encoding/hex has functions, not a type).
var Hex Encoding = hexEncoding{}

type hexEncoding struct{}

func (hexEncoding) EncodeToString(b []byte) string        { return hex.EncodeToString(b) }
func (hexEncoding) DecodeString(s string) ([]byte, error) { return hex.DecodeString(s) }

// ErrBadKey says a key file exists but does not hold a key of the expected size.
var ErrBadKey = errors.New("not a key of the expected size in the expected encoding")

// Key returns the size-byte key kept in the file at path as text in enc, creating it with
// random bytes (mode 0600, through Write exclusive) when the file does not exist; created
// says so. Two processes creating it at once both end with the one that won. Every service's
// secret key file (search fingerprints, data keys, MFA sealing) is loaded through it.
func Key(path string, size int, enc Encoding) (key []byte, created bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key = make([]byte, size)
		if _, err := rand.Read(key); err != nil {
			return nil, false, err
		}
		err := Write(path, []byte(enc.EncodeToString(key)+"\n"), true)
		if errors.Is(err, fs.ErrExist) {
			key, _, err = Key(path, size, enc) // another process made it first
			return key, false, err
		}
		if err != nil {
			return nil, false, err
		}
		return key, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	key, err = enc.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != size {
		return nil, false, ErrBadKey
	}
	return key, false, nil
}
