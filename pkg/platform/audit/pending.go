package audit

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/ids"
	"github.com/pms/pms/pkg/platform/observe"
)

// PendingTable is the table a change's own transaction records its audit entry in (InTx);
// the Writer of DefaultTable moves its rows into the chain.
const PendingTable = "audit_pending"

// pendingColumns are audit_pending's entry columns, in the order of pendingArgs.
const pendingColumns = "id, at, actor, role, action, subject_id, outcome, request_id, client_address"

// pending is the entry a change will record in its own transaction, carried by the context
// from the service (WithPending) to the store's transaction (InTx) and back to the recorder
// (Recorder.Change), which then only waits for the writer to chain it.
type pending struct {
	e Entry
	// also are further entries the same transaction records (WithPendingAlso): a second
	// fact of one change, such as a recovery code spent to disable a second factor.
	also []Entry
	// extraColumns and extra are WithPendingExtra's: values the transaction records beside
	// each entry, asked for when it inserts them.
	extraColumns []string
	extra        func(Entry) []any
	committed    atomic.Bool // set once a transaction holding the entry has committed
	unchanged    atomic.Bool // set by NotChanged: the transaction changed nothing, records nothing
}

// NotChanged tells InTx that the change's transaction, which is about to commit, changed
// nothing after all (a concurrent change won, a token was spent): it records no pending
// entry, and the caller audits the refusal as usual.
func NotChanged(ctx context.Context) {
	if p := pendingFrom(ctx); p != nil {
		p.unchanged.Store(true)
	}
}

type pendingKey struct{}

// WithPending returns ctx carrying the audit entry of a change: action on subject by the
// context's actor, outcome success. A store's InTx records it inside the change's transaction,
// so an acknowledged change always has its entry, however long the database is away after
// the commit (issue 17: one change in ~1,100 lost its entry under a 30 s outage when the
// entry was written after the commit).
func WithPending(ctx context.Context, action, subject string) context.Context {
	actor, role := authz.Actor(ctx)
	p := &pending{e: Entry{
		ID: ids.Ordered(), Actor: actor, Role: role, Action: action, SubjectID: subject,
		Outcome: OutcomeSuccess, RequestID: observe.RequestID(ctx), ClientAddress: observe.ClientAddr(ctx),
	}}
	return context.WithValue(ctx, pendingKey{}, p)
}

// WithPendingAlso returns ctx whose pending change (WithPending, which must come first)
// records one more entry in its transaction: action on subject, outcome success. The change
// keeps its first entry's action (SettleCommitted matches that one); the extra entry commits
// with it or not at all. Without a pending change ctx is returned as it is.
func WithPendingAlso(ctx context.Context, action, subject string) context.Context {
	p := pendingFrom(ctx)
	if p == nil {
		return ctx
	}
	actor, role := authz.Actor(ctx)
	q := &pending{e: p.e, also: append(append([]Entry(nil), p.also...), Entry{
		ID: ids.Ordered(), Actor: actor, Role: role, Action: action, SubjectID: subject,
		Outcome: OutcomeSuccess, RequestID: observe.RequestID(ctx), ClientAddress: observe.ClientAddr(ctx),
	}), extraColumns: p.extraColumns, extra: p.extra}
	return context.WithValue(ctx, pendingKey{}, q)
}

// WithPendingExtra returns ctx whose pending change (WithPending, which must come first)
// records, beside each of its entries in audit_pending, the values extra gives for columns:
// the writer's Options.ExtraColumns, which the service's migrations add to audit_pending as
// well. extra is asked when the change's transaction inserts the entries, so it sees what
// the transaction decided (a break-glass use); it returns nil for an entry that has none.
// Whichever writer moves the entries into the chain, in this process or another after a
// restart, writes the values with them: what the entry's own process knew is not lost with
// it. Without a pending change ctx is returned as it is; a column name that is not a plain
// identifier panics, a wiring mistake.
func WithPendingExtra(ctx context.Context, columns []string, extra func(Entry) []any) context.Context {
	p := pendingFrom(ctx)
	if p == nil {
		return ctx
	}
	mustBeColumns(columns)
	q := &pending{e: p.e, also: p.also, extraColumns: columns, extra: extra}
	return context.WithValue(ctx, pendingKey{}, q)
}

// PendingEntry is the entry ctx's change records in its own transaction (WithPending), if
// any: what a wrapper of the writer (the patient service's disclosures) needs to know of the
// entry a Settle will chain.
func PendingEntry(ctx context.Context) (Entry, bool) {
	if p := pendingFrom(ctx); p != nil {
		return p.e, true
	}
	return Entry{}, false
}

// PendingEntries is every entry ctx's change records in its transaction: PendingEntry's,
// then those WithPendingAlso added.
func PendingEntries(ctx context.Context) []Entry {
	p := pendingFrom(ctx)
	if p == nil {
		return nil
	}
	return append([]Entry{p.e}, p.also...)
}

func pendingFrom(ctx context.Context) *pending {
	p, _ := ctx.Value(pendingKey{}).(*pending)
	return p
}

// InTx is db.InTx for a change: when ctx carries a pending entry (WithPending), fn's
// transaction also inserts it into audit_pending, after fn succeeded, so the change and its
// audit entry commit together or not at all. The insert takes no chain lock: concurrent
// changes do not wait for each other or for the writer. A second transaction under the same
// context inserts nothing twice (the id is unique).
func InTx(ctx context.Context, d *db.DB, fn func(tx *sqlx.Tx) error) error {
	p := pendingFrom(ctx)
	if p == nil {
		return db.InTx(ctx, d, fn)
	}
	p.unchanged.Store(false)
	err := db.InTx(ctx, d, func(tx *sqlx.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if p.unchanged.Load() {
			return nil
		}
		if err := insertPending(ctx, tx, d, p, p.e); err != nil {
			return err
		}
		for _, e := range p.also {
			if err := insertPending(ctx, tx, d, p, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && !p.unchanged.Load() {
		p.committed.Store(true)
	}
	return err
}

func insertPending(ctx context.Context, tx *sqlx.Tx, d *db.DB, p *pending, e Entry) error {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	e.At = e.At.UTC().Truncate(time.Microsecond)
	if err := validate(&e); err != nil {
		return err
	}
	cols, marks := pendingColumns, "?, ?, ?, ?, ?, ?, ?, ?, ?"
	args := []any{e.ID, d.Time(e.At), e.Actor, e.Role, e.Action, e.SubjectID, e.Outcome, e.RequestID, e.ClientAddress}
	if p.extra != nil {
		if v := p.extra(e); v != nil {
			if len(v) != len(p.extraColumns) {
				return errs.Newf(errs.Internal, "audit: %d extra values for %d columns", len(v), len(p.extraColumns))
			}
			cols += ", " + strings.Join(p.extraColumns, ", ")
			marks += strings.Repeat(", ?", len(v))
			args = append(args, v...)
		}
	}
	_, err := tx.ExecContext(ctx, d.Rebind(`INSERT INTO `+PendingTable+` (`+cols+`)
		VALUES (`+marks+`) ON CONFLICT (id) DO NOTHING`), args...)
	return db.Classify(err)
}

// Settler is an Appender that can be asked to chain the pending entries now (a *Writer).
type Settler interface {
	Settle(ctx context.Context) error
}

// pendingRow is one audit_pending row: its queue position and its entry, Extra included
// when the row has any of the writer's extra columns set.
type pendingRow struct {
	PSeq  int64
	Entry Entry
}

// selectPending reads up to limit audit_pending rows in queue order with extra, the
// writer's extra columns, as each entry's Extra (nil where they are all NULL: an entry
// recorded without them, or by a process from before them).
func selectPending(ctx context.Context, tx *sqlx.Tx, stmt string, extra int, limit int) ([]pendingRow, error) {
	rows, err := tx.QueryContext(ctx, stmt, limit)
	if err != nil {
		return nil, db.Classify(err)
	}
	defer rows.Close()
	var out []pendingRow
	for rows.Next() {
		var r pendingRow
		var at db.Timestamp
		e := &r.Entry
		dest := []any{&r.PSeq, &e.ID, &at, &e.Actor, &e.Role, &e.Action, &e.SubjectID, &e.Outcome, &e.RequestID, &e.ClientAddress}
		vals := make([]any, extra)
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, db.Classify(err)
		}
		e.At = at.Time
		for _, v := range vals {
			if v != nil {
				e.Extra = vals
				break
			}
		}
		out = append(out, r)
	}
	return out, db.Classify(rows.Err())
}
