// Package seqmark keeps, in a small file outside a service's database, a high-water mark
// above every number the service's counters have handed out (the registration number behind
// an MRN, invoice numbers). A restore brings a database back to an earlier point, and its
// counters with it; numbers handed out after that point were seen by people (wristbands,
// letters) and must never be handed out again. The file is not in the backups, so it still
// knows them: a service starting on its database raises each counter above its mark
// (db.RaiseSequences), and `pms restore` does the same to what it puts in place.
//
// Marks are reserved a block ahead, so the file is written (and synced) once per Block
// numbers, inside the transaction that hands out the first number past the mark: a number
// is never committed without a mark above it on disk.
package seqmark

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/pms/pms/pkg/platform/privfile"
)

// Block is how far ahead of the number handed out a mark is reserved.
const Block = 1000

// File is the marks file of service under dataDir.
func File(dataDir, service string) string {
	return filepath.Join(dataDir, "sequences-"+service+".json")
}

// Marks are one service's high-water marks, by counter (the table whose AUTOINCREMENT it is).
type Marks struct {
	path string
	mu   sync.Mutex
	m    map[string]int64
}

// Open reads the marks at path (none when the file does not exist).
func Open(path string) (*Marks, error) {
	m, err := Read(path)
	if err != nil {
		return nil, err
	}
	return &Marks{path: path, m: m}, nil
}

// Read returns the marks at path; a missing file is no marks.
func Read(path string) (map[string]int64, error) {
	out := map[string]int64{}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("seqmark: %w", err)
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("seqmark: %s is not a marks file: %w", path, err)
	}
	return out, nil
}

// Current returns a copy of the marks.
func (m *Marks) Current() map[string]int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]int64, len(m.m))
	for k, v := range m.m {
		out[k] = v
	}
	return out
}

// Issued records that n was handed out from table's counter: past the mark, the mark moves
// Block ahead and the file is written before Issued returns. An error means the number must
// not be used (the caller's transaction rolls back).
func (m *Marks) Issued(table string, n int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n <= m.m[table] {
		return nil
	}
	next := make(map[string]int64, len(m.m)+1)
	for k, v := range m.m {
		next[k] = v
	}
	next[table] = n + Block
	b, err := json.Marshal(next)
	if err != nil {
		return err
	}
	if err := privfile.Write(m.path, b, false); err != nil {
		return fmt.Errorf("seqmark: %w", err)
	}
	m.m = next
	return nil
}
