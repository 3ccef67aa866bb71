// Package privfile writes the files that hold secrets (signing and sealing keys, Kafka
// credentials): mode 0600 from the first byte, through a temporary file in the same folder,
// so a reader never sees half a file and a crash leaves the old one.
package privfile

import (
	"errors"
	"os"
	"path/filepath"
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
