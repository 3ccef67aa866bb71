package backup

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/pms/pms/pkg/platform/dirlock"
	"github.com/pms/pms/pkg/platform/privfile"
)

// sqliteCompanions are the files SQLite keeps beside a database, the database itself last:
// a database is moved with them (or an old WAL would be replayed into the new file), and
// moved last, so while it is still in place nothing of it has been put back wrong.
var sqliteCompanions = []string{"-journal", "-shm", "-wal", ""}

// journal is what a swap in progress writes first: enough to undo it.
type journal struct {
	// Aside is the folder (under the data folder) the replaced files went to.
	Aside string `json:"aside"`
	// Names are the members swapped in; Existed those that replaced a file.
	Names   []string        `json:"names"`
	Existed map[string]bool `json:"existed"`
}

// Swap moves names (slash paths) from staged into dataDir, the files they replace (with
// their SQLite companions) into dataDir/aside. It writes a journal first and removes it
// last: a swap that fails is undone at once, one interrupted (the process killed) is undone
// by Recover, and a platform refuses to start while the journal is there (dirlock.Shared).
// The caller holds dataDir's exclusive lock.
func Swap(staged, dataDir, aside string, names []string) (err error) {
	j := journal{Aside: aside, Names: names, Existed: map[string]bool{}}
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(dataDir, filepath.FromSlash(n))); err == nil {
			j.Existed[n] = true
		}
	}
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	if err := privfile.Write(filepath.Join(dataDir, dirlock.JournalName), b, true); err != nil {
		return fmt.Errorf("backup: journal: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, undo(dataDir, j))
		}
	}()
	for _, n := range names {
		for _, suffix := range sqliteCompanions {
			from := filepath.Join(dataDir, filepath.FromSlash(n)) + suffix
			if _, err := os.Lstat(from); errors.Is(err, fs.ErrNotExist) {
				continue
			}
			to := filepath.Join(dataDir, aside, filepath.FromSlash(n)) + suffix
			if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
				return err
			}
			if err := os.Rename(from, to); err != nil {
				return err
			}
		}
	}
	for _, n := range names {
		to := filepath.Join(dataDir, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(staged, filepath.FromSlash(n)), to); err != nil {
			return err
		}
	}
	if err := syncDir(dataDir); err != nil {
		return err
	}
	return os.Remove(filepath.Join(dataDir, dirlock.JournalName))
}

// Recover undoes a swap interrupted in dataDir (whose exclusive lock the caller holds): the
// replaced files come back from the aside folder, the members that replaced nothing are
// removed, and the journal goes. It reports whether there was one.
func Recover(dataDir string) (bool, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, dirlock.JournalName))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return true, err
	}
	var j journal
	if err := json.Unmarshal(b, &j); err != nil || !filepath.IsLocal(j.Aside) {
		return true, fmt.Errorf("backup: %s is unreadable; move the files back by hand: %v", dirlock.JournalName, err)
	}
	return true, undo(dataDir, j)
}

// undo puts back what a swap moved, then removes the journal.
func undo(dataDir string, j journal) error {
	for _, n := range j.Names {
		if !localName(n) {
			return fmt.Errorf("backup: journal names %q", n)
		}
		p := filepath.Join(dataDir, filepath.FromSlash(n))
		old := filepath.Join(dataDir, j.Aside, filepath.FromSlash(n))
		_, err := os.Stat(old)
		movedAside := err == nil
		// What is in place is new when the old database went aside (it goes last) or when
		// there was none; else it is still the old one, perhaps without some companions.
		if movedAside || !j.Existed[n] {
			for _, suffix := range sqliteCompanions {
				if err := os.Remove(p + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
			}
		}
		for _, suffix := range sqliteCompanions {
			if _, err := os.Lstat(old + suffix); errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err := os.Rename(old+suffix, p+suffix); err != nil {
				return err
			}
		}
	}
	if err := syncDir(dataDir); err != nil {
		return err
	}
	return os.Remove(filepath.Join(dataDir, dirlock.JournalName))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
