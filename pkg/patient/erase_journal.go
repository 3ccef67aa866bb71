package patient

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/observe"
)

// ErasureJournalFileName is the erasure journal's file under the data directory.
const ErasureJournalFileName = "patient-erasures.jsonl"

// ErasureJournal is the record of erasures kept outside the database and its backups
// (issue 23: an erased patient stays erased after a restore from an older backup). Each
// erasure appends a line — ids and who, never the reason or any PHI — and syncs it before
// its transaction commits; a service starting on a restored database re-applies every
// journalled erasure the database does not hold (Store.ReapplyErasures). Keep the file on
// storage every replica of the patient service shares, and out of backups.
type ErasureJournal struct {
	path string
	mu   sync.Mutex
}

// journalRecord is one line of the journal.
type journalRecord struct {
	PatientID string    `json:"patientId"`
	MRN       string    `json:"mrn"`
	ErasedAt  time.Time `json:"erasedAt"`
	ErasedBy  string    `json:"erasedBy"`
}

// OpenErasureJournal opens (creating, mode 0600) the journal at path.
func OpenErasureJournal(path string) (*ErasureJournal, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("erasure journal: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("erasure journal: %w", err)
	}
	return &ErasureJournal{path: path}, f.Close()
}

func (j *ErasureJournal) append(r journalRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("erasure journal: %w", err)
	}
	_, werr := f.Write(append(b, '\n'))
	return errors.Join(werr, f.Sync(), f.Close())
}

func (j *ErasureJournal) records() ([]journalRecord, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	f, err := os.Open(j.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("erasure journal: %w", err)
	}
	defer f.Close()
	var out []journalRecord
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r journalRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.PatientID == "" {
			continue // a line torn by a crash mid-write: its erasure did not commit
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

// UseErasureJournal makes every erasure append to j before it commits.
func (s *Store) UseErasureJournal(j *ErasureJournal) { s.journal = j }

// ErasureActor is the actor of erasures re-applied from the journal.
const ErasureActor = "svc:patient/erasure-journal"

// ReapplyErasures erases again every patient the journal says was erased and the database
// does not hold as erased (a restore from a backup older than the erasure brought its data
// back): a live record is deleted first. Each is audited as erase by ErasureActor, with the
// original erasure's time and admin in the reason. It returns how many it re-applied.
func (s *Store) ReapplyErasures(ctx context.Context) (int, error) {
	if s.journal == nil {
		return 0, nil
	}
	recs, err := s.journal.records()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range recs {
		ctx := authz.WithPrincipal(observe.WithRequestID(ctx, observe.NewRequestID()), authz.Principal{Subject: ErasureActor, Role: authz.RoleAdmin})
		ctx = audit.WithPending(ctx, ActionErase, r.PatientID)
		m := changeMeta{At: time.Now().UTC().Truncate(time.Microsecond), Actor: ErasureActor, Role: authz.RoleAdmin, RequestID: observe.RequestID(ctx)}
		reason := fmt.Sprintf("re-applied from the erasure journal: erased at %s by %s", r.ErasedAt.UTC().Format(time.RFC3339), r.ErasedBy)
		_, err := s.erase(ctx, r.PatientID, reason, m, true)
		switch {
		case err == nil:
			n++
		case errors.Is(err, ErrErased), errors.Is(err, ErrNotFound):
			// erased already, or the backup predates the patient
		default:
			return n, err
		}
	}
	return n, nil
}
