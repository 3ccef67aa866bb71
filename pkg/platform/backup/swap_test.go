package backup

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/pms/pms/pkg/platform/dirlock"
)

// tree returns every file under dir with its content.
func tree(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || fi.Name() == dirlock.FileName {
			return err
		}
		b, err := os.ReadFile(p)
		lines = append(lines, strings.TrimPrefix(p, dir)+"="+string(b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func put(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSwap: a swap puts the new files in place and the old ones (with their WAL) aside; a
// swap that fails half-way puts everything back; one interrupted (the journal left, some
// files moved) is refused by a platform and undone by Recover.
func TestSwap(t *testing.T) {
	old := map[string]string{"a.db": "old a", "a.db-wal": "old a wal", "b.db": "old b", "keys/k.json": "old k"}
	names := []string{"a.db", "b.db", "c.db", "keys/k.json"}
	fresh := map[string]string{"a.db": "new a", "b.db": "new b", "c.db": "new c", "keys/k.json": "new k"}

	t.Run("done", func(t *testing.T) {
		data, staged := t.TempDir(), t.TempDir()
		put(t, data, old)
		put(t, staged, fresh)
		if err := Swap(staged, data, ".aside", names); err != nil {
			t.Fatal(err)
		}
		want := "/.aside/a.db-wal=old a wal\n/.aside/a.db=old a\n/.aside/b.db=old b\n/.aside/keys/k.json=old k\n/a.db=new a\n/b.db=new b\n/c.db=new c\n/keys/k.json=new k"
		if got := tree(t, data); got != want {
			t.Fatalf("after the swap:\n%s\nwant\n%s", got, want)
		}
	})
	t.Run("fails half-way", func(t *testing.T) {
		data, staged := t.TempDir(), t.TempDir()
		put(t, data, old)
		before := tree(t, data)
		put(t, staged, map[string]string{"a.db": "new a", "b.db": "new b"}) // c.db missing: its rename fails
		if err := Swap(staged, data, ".aside", names); err == nil {
			t.Fatal("a swap with a missing member succeeded")
		}
		if got := tree(t, data); got != before {
			t.Fatalf("a failed swap left:\n%s\nwant\n%s", got, before)
		}
	})
	t.Run("interrupted", func(t *testing.T) {
		data := t.TempDir()
		put(t, data, old)
		before := tree(t, data)
		// The state a kill leaves: the journal written, a.db's WAL and a.db moved aside, the
		// new a.db in place, b.db not touched yet.
		j := `{"aside":".aside","names":["a.db","b.db","c.db","keys/k.json"],"existed":{"a.db":true,"b.db":true,"keys/k.json":true}}`
		put(t, data, map[string]string{dirlock.JournalName: j})
		if err := os.MkdirAll(filepath.Join(data, ".aside"), 0o700); err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"a.db-wal", "a.db"} {
			if err := os.Rename(filepath.Join(data, n), filepath.Join(data, ".aside", n)); err != nil {
				t.Fatal(err)
			}
		}
		put(t, data, map[string]string{"a.db": "new a"})
		if _, err := dirlock.Shared(data); err == nil {
			t.Fatal("a platform would start on a half-restored folder")
		}
		undone, err := Recover(data)
		if err != nil || !undone {
			t.Fatalf("recover: %v %v", undone, err)
		}
		if got := tree(t, data); got != before {
			t.Fatalf("after recovery:\n%s\nwant\n%s", got, before)
		}
	})
}
