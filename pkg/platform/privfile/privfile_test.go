package privfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestWrite: the file is 0600 in a folder made 0700, a replace swaps the content, an
// exclusive write of an existing file fails with fs.ErrExist and changes nothing, and no
// temporary file is left behind.
func TestWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	path := filepath.Join(dir, "k")
	if err := Write(path, []byte("one"), true); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v %v", fi.Mode().Perm(), err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("folder mode %v %v", fi.Mode().Perm(), err)
	}
	if err := Write(path, []byte("two"), true); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("exclusive over an existing file: %v", err)
	}
	if err := Write(path, []byte("three"), false); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "three" {
		t.Fatalf("content %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("left in the folder: %v", entries)
	}
}
