// Package dirlock is the lock a data folder's users take on <dir>/.lock (flock(2)): every
// process of a running platform holds it shared, and `pms restore` takes it exclusive, so a
// restore never replaces the files under a platform that has them open, and a platform never
// starts on a folder a restore is rewriting. The kernel drops a lock when its process dies,
// so a crash leaves nothing to clean up.
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// FileName is the lock file under the data folder.
const FileName = ".lock"

// JournalName is the file a restore writes under the data folder while it swaps files in
// (pkg/platform/backup); while it exists the folder is half restored and a platform refuses
// to start on it.
const JournalName = ".restore-journal"

// ErrHeld is returned when the lock is held in a way that excludes the one asked for.
var ErrHeld = errors.New("dirlock: the data folder is in use")

// Lock is a held lock; Release gives it back.
type Lock struct{ f *os.File }

// Shared takes dir's lock shared (a running service; several may hold it at once), creating
// dir (0700) and the lock file when missing. It fails at once with ErrHeld while a restore
// holds it, and when a restore was interrupted (its journal is still there).
func Shared(dir string) (*Lock, error) {
	l, err := take(dir, syscall.LOCK_SH)
	if err != nil {
		return nil, fmt.Errorf("%w: a restore is running on %s", err, dir)
	}
	if _, err := os.Stat(filepath.Join(dir, JournalName)); err == nil {
		_ = l.Release()
		return nil, fmt.Errorf("dirlock: %s holds an interrupted restore (%s): run the same pms restore again", dir, JournalName)
	}
	return l, nil
}

// Exclusive takes dir's lock exclusive (a restore), creating dir and the lock file when
// missing. It fails at once with ErrHeld while any process holds it.
func Exclusive(dir string) (*Lock, error) {
	l, err := take(dir, syscall.LOCK_EX)
	if err != nil {
		return nil, fmt.Errorf("%w: a running platform holds %s; stop it first", err, dir)
	}
	return l, nil
}

func take(dir string, how int) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("dirlock: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, FileName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("dirlock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrHeld
		}
		return nil, fmt.Errorf("dirlock: %w", err)
	}
	return &Lock{f: f}, nil
}

// Release gives the lock back; a nil Lock is nothing to release.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
