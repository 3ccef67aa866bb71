package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/privfile"
)

// RewindFileName is the revocations mark's file under the data directory.
const RewindFileName = "auth-revocations-head.json"

// RewindMark records, outside the database and its backups, the highest revocation sequence
// number this service has committed (issue 23: after a restore every session must sign in
// again, and a revoked session must not come back). A database brought back to an earlier
// point — a `pms restore`, or a PostgreSQL point-in-time recovery — has a revocation head
// below the mark: the revocations made since are gone, and so the sessions they ended would
// work again. The service sees it on start (Store.Rewound) and ends every session and
// replaces the signing key.
type RewindMark struct {
	path string
	mu   sync.Mutex
}

type rewindFile struct {
	Head int64 `json:"head"`
}

// OpenRewindMark returns the mark kept at path (created on the first revocation).
func OpenRewindMark(path string) *RewindMark { return &RewindMark{path: path} }

// Head is the highest revocation seq recorded, 0 when none.
func (m *RewindMark) Head() (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, err := os.ReadFile(m.path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("revocations mark: %w", err)
	}
	var f rewindFile
	if err := json.Unmarshal(b, &f); err != nil {
		return 0, fmt.Errorf("revocations mark %s: %w", m.path, err)
	}
	return f.Head, nil
}

// set records head (written beside and renamed, synced), never lowering the mark unless
// reset says so (after a detected rewind).
func (m *RewindMark) set(head int64, reset bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !reset {
		if b, err := os.ReadFile(m.path); err == nil {
			var f rewindFile
			if json.Unmarshal(b, &f) == nil && f.Head >= head {
				return nil
			}
		}
	}
	return privfile.Write(m.path, []byte(`{"head":`+strconv.FormatInt(head, 10)+"}\n"), false)
}

// UseRewindMark makes every revocation record its seq in m before it commits.
func (s *Store) UseRewindMark(m *RewindMark) { s.rewind = m }

// markRevocation records seq in the rewind mark (inside the revocation's transaction: a
// revocation is never committed without the mark at or above it).
func (s *Store) markRevocation(seq int64) error {
	if s.rewind == nil {
		return nil
	}
	if err := s.rewind.set(seq, false); err != nil {
		return errs.Wrap(errs.Unavailable, "the revocations mark cannot be written", err)
	}
	return nil
}

// Rewound reports whether the database's revocation head is below the mark: the database
// was brought back to an earlier point. It returns the database's head as well.
func (s *Store) Rewound(ctx context.Context) (bool, int64, error) {
	if s.rewind == nil {
		return false, 0, nil
	}
	mark, err := s.rewind.Head()
	if err != nil {
		return false, 0, err
	}
	var head int64
	if err := s.db.GetContext(ctx, &head, `SELECT COALESCE(MAX(seq), 0) FROM revocations`); err != nil {
		return false, 0, db.Classify(err)
	}
	return head < mark, head, nil
}

// RecoverIfRewound is what a start does on a database Rewound says was brought back: every
// session ends (EndEverySession), the signing key ring at keyFile gets a new key and drops
// the old ones (RotateKeyFile with revoke: every access token signed before is refused), and
// the mark comes down to the database's head. It reports whether it did, and how many
// refresh tokens it revoked; the caller opens the key ring again when it did.
func (s *Store) RecoverIfRewound(ctx context.Context, keyFile string, now time.Time) (bool, int64, error) {
	rewound, head, err := s.Rewound(ctx)
	if err != nil || !rewound {
		return false, 0, err
	}
	n, err := s.recoverFromRewind(ctx, keyFile, head, now)
	return true, n, err
}

func (s *Store) recoverFromRewind(ctx context.Context, keyFile string, head int64, now time.Time) (int64, error) {
	n, err := EndEverySession(ctx, s.db, now)
	if err != nil {
		return 0, err
	}
	if _, _, err := RotateKeyFile(keyFile, now, true); err != nil {
		return n, err
	}
	return n, s.rewind.set(head, true)
}
