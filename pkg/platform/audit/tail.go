package audit

import (
	"context"
	"database/sql"
	"slices"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/outbox"
	"github.com/prometheus/client_golang/prometheus"
)

// Tail is the outbox relay's source of a service's audit events (outbox.Tail): the relay
// reads the entries after the position it keeps in audit_published and publishes each as
// the AuditEvent OutboxHook would have written, so an audited read writes no outbox row and
// its relay marks none. The chain's seq is its commit order (the writers take turns under
// one lock and read the tail after taking it), so no entry can commit behind the position.
//
// The batches this process's writer commits are handed to the tail as well (Remember, the
// writer's Committed hook), so the relay publishes them from memory instead of reading them
// back (issue 20 item 2: the readback was a query and a dozen columns decoded per read).
// A remembered run is served only when it continues the chain exactly where the relay is:
// Fetch is asked for the entries after the last one it returned and the run's first entry
// is hashed onto that one (its prev_hash). Anything else — the first fetch, a position
// moved back after a failed send or a restore, another replica's entries in between, a run
// not linked to what the table holds — is read from the table, as before. Both sources
// build the same messages (TestTailFromMemoryMatchesTable).
type Tail struct {
	d                            *db.DB
	table, service               string
	fetchSQL, posSQL, advanceSQL string
	atSQL                        string

	mu sync.Mutex
	// recent holds committed entries of this process's writer not yet returned by Fetch,
	// consecutive in seq, each hashed onto the one before it; at most maxRemembered.
	recent []Entry
	// lastSeq and lastHash are the entry Fetch returned last (or the one before the first
	// it read from the table); lastSeq is -1 until a fetch has read the table.
	lastSeq  int64
	lastHash string
	// fromMemory and fromTable count the fetches each source answered (Stats).
	fromMemory, fromTable int64
}

// maxRemembered bounds the entries a tail keeps for its relay: beyond it (a relay that is
// not the active one, or one far behind) they are dropped and read from the table instead.
const maxRemembered = 4096

// NewTail returns the tail of d's audit table (default audit_log) for service's events. It
// panics on an invalid table name, a wiring mistake.
func NewTail(d *db.DB, table, service string) *Tail {
	table, err := checkTable(table)
	if err != nil {
		panic(err)
	}
	return &Tail{d: d, table: table, service: service,
		// From the entry at the position itself: its hash is what the next remembered run
		// must be hashed onto.
		fetchSQL:   d.Rebind(`SELECT ` + columns + ` FROM ` + table + ` WHERE seq >= ? ORDER BY seq LIMIT ?`),
		posSQL:     d.Rebind(`SELECT seq FROM audit_published WHERE tbl = ?`),
		atSQL:      d.Rebind(`SELECT at FROM ` + table + ` WHERE seq = ?`),
		advanceSQL: d.Rebind(`INSERT INTO audit_published (tbl, seq) VALUES (?, ?) ON CONFLICT (tbl) DO UPDATE SET seq = excluded.seq`),
		lastSeq:    -1,
	}
}

// Position implements outbox.Tail: a table without a row starts at 0 (the migration gives
// audit_log, whose existing entries went out through the outbox, its end).
func (t *Tail) Position(ctx context.Context, q outbox.Queryer) (int64, error) {
	return queryOne[int64](ctx, q, t.posSQL, t.table)
}

// queryOne returns the one value stmt reads, T's zero value when it reads no row.
func queryOne[T any](ctx context.Context, q outbox.Queryer, stmt string, args ...any) (T, error) {
	var v T
	rows, err := q.QueryContext(ctx, stmt, args...)
	if err != nil {
		return v, db.Classify(err)
	}
	defer rows.Close()
	if rows.Next() {
		if err := rows.Scan(&v); err != nil {
			return v, db.Classify(err)
		}
	}
	return v, db.Classify(rows.Err())
}

// Fetch implements outbox.Tail: from the remembered entries when they continue what it
// returned last, else from the table.
func (t *Tail) Fetch(ctx context.Context, q outbox.Queryer, after int64, limit int) ([]*sarama.ProducerMessage, error) {
	if msgs := t.remembered(after, limit); len(msgs) > 0 {
		return msgs, nil
	}
	rows, err := q.QueryContext(ctx, t.fetchSQL, after, limit+1)
	if err != nil {
		return nil, db.Classify(err)
	}
	defer rows.Close()
	msgs := make([]*sarama.ProducerMessage, 0, min(limit, 256))
	// The link a remembered run must continue: the last entry returned, else the one at the
	// position (genesis before the first); unknown (-1) if the table holds neither.
	lastSeq, lastHash := int64(-1), ""
	if after == 0 {
		lastSeq, lastHash = 0, genesisHash
	}
	for len(msgs) < limit && rows.Next() {
		var e Entry
		var at db.Timestamp
		if err := rows.Scan(&e.Seq, &e.ID, &at, &e.Actor, &e.Role, &e.Action, &e.SubjectID, &e.Outcome, &e.RequestID,
			&e.ClientAddress, &e.PrevHash, &e.Hash); err != nil {
			return nil, db.Classify(err)
		}
		lastSeq, lastHash = e.Seq, e.Hash
		if e.Seq <= after {
			continue // the entry at the position: only its hash was wanted
		}
		e.At = at.Time
		m, err := eventMessage(t.service, e)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m.ProducerMessage(e.Seq))
	}
	if err := rows.Err(); err != nil {
		return nil, db.Classify(err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.fromTable++
	t.lastSeq, t.lastHash = lastSeq, lastHash
	if lastSeq >= 0 {
		t.forget(lastSeq)
	}
	return msgs, nil
}

// remembered returns the messages of up to limit remembered entries after position after,
// if they continue the entry Fetch returned last; nil otherwise (the table answers then).
func (t *Tail) remembered(after int64, limit int) []*sarama.ProducerMessage {
	t.mu.Lock()
	t.forget(after)
	if len(t.recent) == 0 || t.lastSeq != after || t.recent[0].Seq != after+1 || t.recent[0].PrevHash != t.lastHash {
		t.mu.Unlock()
		return nil
	}
	// The run is copied out, so the writer's Remember never waits on the messages' encoding.
	run := slices.Clone(t.recent[:min(limit, len(t.recent))])
	last := run[len(run)-1]
	t.lastSeq, t.lastHash = last.Seq, last.Hash
	t.forget(last.Seq)
	t.fromMemory++
	t.mu.Unlock()
	msgs := make([]*sarama.ProducerMessage, 0, len(run))
	for i := range run {
		m, err := eventMessage(t.service, run[i])
		if err != nil {
			t.mu.Lock()
			t.lastSeq = -1 // the table answers, and reports the error
			t.mu.Unlock()
			return nil
		}
		msgs = append(msgs, m.ProducerMessage(run[i].Seq))
	}
	return msgs
}

// forget drops the remembered entries at or before seq through. t.mu is held.
func (t *Tail) forget(through int64) {
	if len(t.recent) == 0 {
		return
	}
	k := int(min(max(through-t.recent[0].Seq+1, 0), int64(len(t.recent))))
	n := copy(t.recent, t.recent[k:])
	clear(t.recent[n:])
	t.recent = t.recent[:n]
}

// Remember takes a batch of entries the writer has just committed (Options.Committed), for
// the relay to publish without reading them back. A batch that does not continue the
// remembered entries (another writer chained in between) replaces them; beyond
// maxRemembered they are dropped. Either way the table still has them.
func (t *Tail) Remember(entries []Entry) {
	for i := 1; i < len(entries); i++ {
		if entries[i].Seq != entries[i-1].Seq+1 || entries[i].PrevHash != entries[i-1].Hash {
			return // not one run of the chain: leave it to the table
		}
	}
	if len(entries) == 0 || len(entries) > maxRemembered {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := len(t.recent); n > 0 {
		if last := t.recent[n-1]; entries[0].Seq != last.Seq+1 || entries[0].PrevHash != last.Hash || n+len(entries) > maxRemembered {
			clear(t.recent)
			t.recent = t.recent[:0]
		}
	}
	t.recent = append(t.recent, entries...)
}

// Stats returns how many fetches the remembered entries and the table answered.
func (t *Tail) Stats() (fromMemory, fromTable int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.fromMemory, t.fromTable
}

// RegisterMetrics exports Stats on reg as pms_<service>_audit_tail_fetches_total{source}
// ("memory", "table"): a relay that keeps reading the table while its writer commits (another
// replica's relay is the active one, or it lags far behind) shows there. Like the writer's
// series, one already registered is shared rather than a panic (register).
func (t *Tail) RegisterMetrics(reg prometheus.Registerer) {
	for _, source := range []string{"memory", "table"} {
		register(reg, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "pms", Subsystem: t.service, Name: "audit_tail_fetches_total",
			Help:        "Fetches of the audit relay's tail, by what answered: the batches this process committed, or the table.",
			ConstLabels: prometheus.Labels{"source": source},
		}, func() float64 {
			mem, table := t.Stats()
			if source == "memory" {
				return float64(mem)
			}
			return float64(table)
		}))
	}
}

// Advance implements outbox.Tail.
func (t *Tail) Advance(ctx context.Context, q outbox.Queryer, to int64) error {
	_, err := q.ExecContext(ctx, t.advanceSQL, t.table, to)
	return db.Classify(err)
}

// Backlog implements outbox.Tail: the entries after the position (seq has no gaps).
func (t *Tail) Backlog(ctx context.Context, q outbox.Queryer) (int64, error) {
	pos, err := t.Position(ctx, q)
	if err != nil {
		return 0, err
	}
	top, err := queryOne[int64](ctx, q, `SELECT coalesce(max(seq), 0) FROM `+t.table)
	return max(top-pos, 0), err
}

// Oldest implements outbox.Tail.
func (t *Tail) Oldest(ctx context.Context, q outbox.Queryer) (time.Time, error) {
	pos, err := t.Position(ctx, q)
	if err != nil {
		return time.Time{}, err
	}
	at, err := queryOne[db.Timestamp](ctx, q, t.atSQL, pos+1)
	return at.Time, err
}

// Republish moves the tail of d's audit_log back to the last entry written before since, so
// the relay publishes what followed again (with its event ids: consumers dedupe). A restore
// calls it beside outbox.Republish.
func Republish(ctx context.Context, d *db.DB, since time.Time) error {
	var seq sql.NullInt64
	err := d.GetContext(ctx, &seq, d.Rebind(`SELECT min(seq) FROM `+DefaultTable+` WHERE at >= ?`), d.Time(since))
	if err != nil || !seq.Valid {
		return db.Classify(err)
	}
	_, err = d.ExecContext(ctx, d.Rebind(`UPDATE audit_published SET seq = ? WHERE tbl = ? AND seq >= ?`), seq.Int64-1, DefaultTable, seq.Int64)
	return db.Classify(err)
}
