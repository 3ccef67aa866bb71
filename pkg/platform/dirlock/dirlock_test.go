package dirlock

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestLock: shared holders coexist, an exclusive one is refused while they hold it and takes
// it once they let go, and then refuses them; a journal left by an interrupted restore
// refuses a shared holder.
func TestLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	a, err := Shared(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Shared(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Exclusive(dir); !errors.Is(err, ErrHeld) {
		t.Fatalf("exclusive under shared holders: %v", err)
	}
	_ = a.Release()
	_ = b.Release()
	x, err := Exclusive(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Shared(dir); !errors.Is(err, ErrHeld) {
		t.Fatalf("shared under an exclusive holder: %v", err)
	}
	_ = x.Release()
	if err := os.WriteFile(filepath.Join(dir, JournalName), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Shared(dir); err == nil {
		t.Fatal("a folder with an interrupted restore was accepted")
	}
}
