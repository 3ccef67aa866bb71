package patient

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/ids"
	"github.com/pms/pms/pkg/platform/observe"
	"github.com/pms/pms/pkg/platform/privfile"
)

// Disclosures records, beside the chained audit log, which patient records each audit entry
// disclosed (issue 17): a search is still one chained entry, plus one indexed row per record
// returned, so the per-patient access log (GET /patients/{id}/access-log) finds a search that
// returned the patient. The rows are written by the audit writer's AfterBatch hook in the
// batch transaction that writes the entry, so an entry and its disclosures commit together
// (or not at all); the Writer's batching is untouched.
type Disclosures struct {
	dialect db.Dialect
	// inEntry: the writer stores EntryColumns (Wire), so a single-record access is kept in
	// its own entry's row instead of a disclosure row. Set before the writer starts.
	inEntry bool
	mu      sync.Mutex
	pending map[string]disclosure // by entry id, until the batch holding the entry commits
}

// EntryColumns are the columns of audit_log (migration 00032) that make an entry its own
// disclosure: how the request arrived, and whether it was a break-glass access. Set only on
// an entry that disclosed exactly its subject.
var EntryColumns = []string{"disclosed_via", "disclosed_emergency"}

// Wire gives the audit writer's options what the recorder needs: the hook that writes the
// disclosure rows in the batch transaction (before next, o's AfterBatch) and the entry
// columns, so that a single-record access (a read) costs its chained entry only, not a
// second row and index entry beside it. A writer built with Hook alone (no entry columns)
// gets a row for every disclosure, as before migration 00032.
func (d *Disclosures) Wire(o *audit.Options) {
	d.inEntry = true
	o.ExtraColumns = append(o.ExtraColumns, EntryColumns...)
	o.AfterBatch = d.Hook(o.AfterBatch)
}

// disclosure is what an entry disclosed: the patients (in the order returned), how the
// request arrived, and for a search its query fingerprint.
type disclosure struct {
	patients    []string
	search      bool
	transport   string
	fingerprint string
	// emergency: the record was used under a break-glass grant (markEmergency). mark is the
	// request's mark itself, which a change sets inside its transaction, after prepare
	// registered the disclosure: the hook reads it when it writes the row.
	emergency bool
	mark      *emergencyMark
	added     time.Time
}

// emergencyMark is set by checkAccess when a restricted record is used under the caller's
// grant; withEmergencyMark puts one in every endpoint's context (NewEndpoints), and the
// disclosing log copies it into the disclosure row, so the access log says "emergency".
type emergencyMark struct{ used atomic.Bool }

type emergencyKey struct{}

func withEmergencyMark(ctx context.Context) context.Context {
	return context.WithValue(ctx, emergencyKey{}, &emergencyMark{})
}

func markEmergency(ctx context.Context) {
	if m, ok := ctx.Value(emergencyKey{}).(*emergencyMark); ok {
		m.used.Store(true)
	}
}

func isEmergency(ctx context.Context) bool {
	m, ok := ctx.Value(emergencyKey{}).(*emergencyMark)
	return ok && m.used.Load()
}

// pendingTTL bounds how long the disclosures of an entry whose caller gave up wait for the
// writer; past it the entry was either written or dropped.
const pendingTTL = time.Minute

// NewDisclosures returns the disclosure recorder for the patient database d.
func NewDisclosures(d *db.DB) *Disclosures {
	return &Disclosures{dialect: d.Dialect, pending: map[string]disclosure{}}
}

type disclosureKey struct{}

// withSearch marks ctx as a search that returned patients, with its query fingerprint.
func withSearch(ctx context.Context, patients []string, fingerprint string) context.Context {
	return context.WithValue(ctx, disclosureKey{}, disclosure{patients: patients, search: true, fingerprint: fingerprint})
}

// withDisclosed marks ctx as an action that showed the records ids (duplicate candidates):
// one disclosure row each, the entry's subject included only when ids names it.
func withDisclosed(ctx context.Context, ids []string) context.Context {
	return context.WithValue(ctx, disclosureKey{}, disclosure{patients: ids})
}

// disclosingActions are the actions that disclose (or change) a patient's record; the
// access log shows them. Reading the access log or the audit log is audited but is not a
// disclosure of the record.
var disclosingActions = map[string]bool{ActionCreate: true, ActionRead: true, ActionSearch: true,
	ActionUpdate: true, ActionDelete: true, ActionHistory: true, ActionBillingAccount: true, ActionInvoices: true, ActionDuplicates: true,
	// A merge and an unmerge change the merged record (merge.go); the access log of the
	// duplicate shows them.
	ActionMerge: true, ActionUnmerge: true}

// pageIDs is a search page's ids as the patient_ids column takes them. On PostgreSQL, 16-byte
// values that pgx sends as a binary uuid[]: the server copies them, where a text array literal
// made it parse 500 UUIDs per page (half of the insert's cost in PostgreSQL); an id that is
// not a UUID (never: the store's ids are) falls back to the literal. On SQLite, a JSON array.
func (d *Disclosures) pageIDs(ids []string) any {
	if d.dialect == db.SQLite {
		b, _ := json.Marshal(ids)
		return string(b)
	}
	out := make([][16]byte, len(ids))
	for i, id := range ids {
		u, err := uuid.Parse(id)
		if err != nil {
			return "{" + strings.Join(ids, ",") + "}"
		}
		out[i] = u
	}
	return out
}

// Log wraps the service's audit log: an entry of a disclosing action is registered with its
// disclosures before it is appended, so the hook writes them with it.
func (d *Disclosures) Log(inner AuditLog) AuditLog { return disclosingLog{d: d, inner: inner} }

type disclosingLog struct {
	d     *Disclosures
	inner AuditLog
}

// Settle passes a change's request to chain its pending entries (audit.Settler) through to
// the writer — without it the recorder would take the log for one that cannot settle and
// write the change's entry a second time. With the writer wired (Wire) each entry already
// carries its disclosure from audit_pending; unwired, the records the change disclosed are
// registered for this process's hook (prepare, again: the service registered them before the
// transaction), and an entry chained by another process gets its row from the entry alone,
// its transport unknown.
func (l disclosingLog) Settle(ctx context.Context) error {
	s, ok := l.inner.(audit.Settler)
	if !ok {
		return nil
	}
	if !l.d.inEntry {
		l.prepare(ctx)
	}
	err := s.Settle(ctx)
	if err == nil {
		l.d.mu.Lock()
		for _, e := range audit.PendingEntries(ctx) {
			delete(l.d.pending, e.ID)
		}
		l.d.mu.Unlock()
	}
	return err
}

// via is the transport a disclosure records: how the user reached the platform, not the
// gateway's hop; "internal" for the platform's own calls.
func via(ctx context.Context) string {
	if t := observe.Origin(ctx); t != "" {
		return t
	}
	return "internal"
}

// prepare makes each disclosing entry of ctx's pending change (audit.WithPending, and the
// entries WithPendingAlso adds, such as a merge's survivor) its own disclosure, as a read
// is: with the writer wired (Wire), the change's transaction records the entry's transport
// and break-glass use beside it in audit_pending (audit.WithPendingExtra, asked at the
// insert, after the transaction has checked the access), and whichever writer chains it, in
// this process or another after a crash or a restart, writes them into the entry's row.
// Unwired, it registers the disclosures for this process's hook instead. The service calls
// it before the change's transaction: once that commits, the writer may chain the entries
// at any moment (its periodic move of audit_pending), and an entry chained before its
// disclosure is registered would get a row with an unknown transport and no emergency mark.
// A change that does not commit leaves its registrations until pendingTTL.
func (l disclosingLog) prepare(ctx context.Context) context.Context {
	if l.d.inEntry {
		return audit.WithPendingExtra(ctx, EntryColumns, func(e audit.Entry) []any {
			if !disclosingActions[e.Action] || e.SubjectID == "" {
				return nil
			}
			return []any{via(ctx), isEmergency(ctx)}
		})
	}
	for _, e := range audit.PendingEntries(ctx) {
		if disclosingActions[e.Action] && e.SubjectID != "" {
			l.register(ctx, e.ID, disclosure{patients: []string{e.SubjectID}})
		}
	}
	return ctx
}

// register keeps dis for the hook until the entry id is chained (or pendingTTL passes).
func (l disclosingLog) register(ctx context.Context, id string, dis disclosure) {
	dis.emergency = isEmergency(ctx)
	dis.mark, _ = ctx.Value(emergencyKey{}).(*emergencyMark)
	dis.transport = via(ctx)
	dis.added = time.Now()
	l.d.mu.Lock()
	for id, p := range l.d.pending {
		if dis.added.Sub(p.added) > pendingTTL {
			delete(l.d.pending, id)
		}
	}
	l.d.pending[id] = dis
	l.d.mu.Unlock()
}

func (l disclosingLog) Append(ctx context.Context, e audit.Entry) error {
	if !disclosingActions[e.Action] || e.Outcome == audit.OutcomeNotFound || e.Outcome == audit.OutcomeRejected {
		// Not an access to a record (a rejected request disclosed nothing; an unknown id
		// names no patient): the chained entry is the whole trace.
		return l.inner.Append(ctx, e)
	}
	dis, _ := ctx.Value(disclosureKey{}).(disclosure)
	if !dis.search && e.SubjectID != "" && len(dis.patients) == 0 {
		dis.patients = []string{e.SubjectID}
	}
	if len(dis.patients) == 0 && !dis.search {
		return l.inner.Append(ctx, e)
	}
	if l.d.inEntry && !dis.search && len(dis.patients) == 1 && dis.patients[0] == e.SubjectID {
		// The entry names the one record it disclosed: it is its own disclosure row.
		e.Extra = []any{via(ctx), isEmergency(ctx)}
		return l.inner.Append(ctx, e)
	}
	if e.ID == "" {
		e.ID = ids.Ordered()
	}
	l.register(ctx, e.ID, dis)
	err := l.inner.Append(ctx, e)
	if err == nil || ctx.Err() == nil {
		// Committed (with its disclosures) or failed as a whole. A caller that gave up may
		// still have its entry written later, so its disclosures stay pending for the hook
		// until pendingTTL, well past the writer's batch timeout and retry window.
		l.d.mu.Lock()
		delete(l.d.pending, e.ID)
		l.d.mu.Unlock()
	}
	return err
}

// disclosureColumns is the number of bind parameters per audit_disclosures row.
const disclosureColumns = 6

// Hook returns the audit writer's AfterBatch hook: it writes the disclosure and search rows of
// the batch's entries in the batch transaction, then runs next (the outbox hook) if set.
func (d *Disclosures) Hook(next func(ctx context.Context, tx db.Execer, entries []audit.Entry) error) func(ctx context.Context, tx db.Execer, entries []audit.Entry) error {
	maxRows := 65535 / disclosureColumns
	if d.dialect == db.SQLite {
		maxRows = 32766 / disclosureColumns
	}
	return func(ctx context.Context, tx db.Execer, entries []audit.Entry) error {
		var rows, searches, pages []any
		d.mu.Lock()
		for i := range entries {
			e := &entries[i]
			if e.Extra != nil {
				continue // its own disclosure (Wire): the entry's row holds it
			}
			dis, ok := d.pending[e.ID]
			if !ok {
				// A change's entry the writer moved late (after an outage, a restart, or past
				// pendingTTL) has no registered disclosure; its entry still names the record, so
				// its row is written from it, the transport unknown.
				if disclosingActions[e.Action] && e.SubjectID != "" && e.Outcome == audit.OutcomeSuccess && e.Action != ActionSearch {
					rows = append(rows, e.Seq, e.ID, e.SubjectID, 0, "unknown", false)
				}
				continue
			}
			// Kept pending until Append returns: a rolled-back batch is retried with them.
			if dis.search {
				searches = append(searches, e.Seq, e.ID, dis.fingerprint, len(dis.patients))
				if len(dis.patients) > 0 {
					// The page as one row, its ids as one array (migration 00022): a 500-row
					// page costs one row and one GIN insertion, not 500 b-tree entries.
					pages = append(pages, e.Seq, e.ID, dis.transport, d.pageIDs(dis.patients))
				}
			} else {
				emergency := dis.emergency || dis.mark != nil && dis.mark.used.Load()
				for _, p := range dis.patients {
					rows = append(rows, e.Seq, e.ID, p, 0, dis.transport, emergency)
				}
			}
		}
		d.mu.Unlock()
		for len(rows) > 0 {
			n := min(len(rows)/disclosureColumns, maxRows)
			q := "INSERT INTO audit_disclosures (entry_seq, entry_id, patient_id, position, transport, emergency) VALUES " +
				strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?), ", n), ", ")
			if _, err := tx.ExecContext(ctx, tx.Rebind(q), rows[:n*disclosureColumns]...); err != nil {
				return db.Classify(err)
			}
			rows = rows[n*disclosureColumns:]
		}
		// Every statement of the batch holds the chain's lock and every caller of the batch
		// waits for it: each kind of row is one statement per batch, not one per entry.
		var stmts []string
		var args []any
		if len(searches) > 0 {
			stmts = append(stmts, "INSERT INTO audit_searches (entry_seq, entry_id, fingerprint, results) VALUES "+
				strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?), ", len(searches)/4), ", "))
			args = append(args, searches...)
		}
		if len(pages) > 0 {
			row := "(?, ?, ?, ?::uuid[])"
			if d.dialect == db.SQLite {
				row = "(?, ?, ?, ?)"
			}
			stmts = append(stmts, "INSERT INTO audit_disclosure_pages (entry_seq, entry_id, transport, patient_ids) VALUES "+
				strings.TrimSuffix(strings.Repeat(row+", ", len(pages)/4), ", "))
			args = append(args, pages...)
		}
		if len(stmts) == 2 && d.dialect == db.Postgres {
			// One statement for both: the searches' insert as a data-modifying CTE (one round
			// trip also where the batch is not pipelined: a batch that moves pending entries).
			stmts = []string{"WITH s AS (" + stmts[0] + ") " + stmts[1]}
		}
		for i, q := range stmts {
			a := args
			if len(stmts) == 2 { // SQLite: no DML in a CTE; its statements are in-process calls
				if i == 0 {
					a = args[:len(searches)]
				} else {
					a = args[len(searches):]
				}
			}
			if _, err := tx.ExecContext(ctx, tx.Rebind(q), a...); err != nil {
				return db.Classify(err)
			}
		}
		if next != nil {
			if err := next(ctx, tx, entries); err != nil {
				return err
			}
		}
		return nil
	}
}

// SearchKeyFileName is the search key's file under the data directory.
const SearchKeyFileName = "patient-search.key"

// SearchKeySize is the length of the search fingerprint key in bytes.
const SearchKeySize = 32

// LoadSearchKey reads the search fingerprint key from path, creating it (SearchKeySize random
// bytes, hex, mode 0600) when the file does not exist. Deleting or rotating the file makes
// every fingerprint written under the old key unlinkable to any query: that is how the
// queries' trace is destroyed without touching the chained audit log.
func LoadSearchKey(path string) ([]byte, error) {
	key, _, err := privfile.Key(path, SearchKeySize, privfile.Hex)
	if errors.Is(err, privfile.ErrBadKey) {
		return nil, fmt.Errorf("search key %s: want %d hex-encoded bytes", path, SearchKeySize)
	}
	if err != nil {
		return nil, fmt.Errorf("search key: %w", err)
	}
	return key, nil
}

// fingerprint is the keyed fingerprint of a search's filters (HMAC-SHA-256, hex): equal
// queries under one key have equal fingerprints, so an investigator holding the key can test
// whether a given query was made, while without the key a name or birth date cannot be
// brute-forced from it. The page token is not part of the query. Empty without a key.
func fingerprint(key []byte, q ListQuery) string {
	if len(key) == 0 {
		return ""
	}
	parts := []string{strings.ToLower(strings.TrimSpace(q.Q)), strings.ToLower(strings.TrimSpace(q.Email)), q.DateOfBirth}
	// The demographic filters (search_filters.go) join the fingerprint only when given, so a
	// query without them keeps the fingerprint it had before they existed.
	if demo := []string{strings.ToLower(q.Family), strings.ToLower(q.Given), q.Phone, q.Gender, q.BornFrom, q.BornTo}; strings.Join(demo, "") != "" {
		parts = append(parts, demo...)
	}
	b, _ := json.Marshal(parts)
	m := hmac.New(sha256.New, key)
	m.Write(b)
	return hex.EncodeToString(m.Sum(nil))
}
