package audit

import (
	"context"
	"database/sql"
	"time"

	"github.com/IBM/sarama"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/outbox"
)

// Tail is the outbox relay's source of a service's audit events (outbox.Tail): the relay
// reads the entries after the position it keeps in audit_published and publishes each as
// the AuditEvent OutboxHook would have written, so an audited read writes no outbox row and
// its relay marks none. The chain's seq is its commit order (the writers take turns under
// one lock and read the tail after taking it), so no entry can commit behind the position.
type Tail struct {
	d                            *db.DB
	table, service               string
	fetchSQL, posSQL, advanceSQL string
	atSQL                        string
}

// NewTail returns the tail of d's audit table (default audit_log) for service's events. It
// panics on an invalid table name, a wiring mistake.
func NewTail(d *db.DB, table, service string) *Tail {
	table, err := checkTable(table)
	if err != nil {
		panic(err)
	}
	return &Tail{d: d, table: table, service: service,
		fetchSQL:   d.Rebind(`SELECT ` + columns + ` FROM ` + table + ` WHERE seq > ? ORDER BY seq LIMIT ?`),
		posSQL:     d.Rebind(`SELECT seq FROM audit_published WHERE tbl = ?`),
		atSQL:      d.Rebind(`SELECT at FROM ` + table + ` WHERE seq = ?`),
		advanceSQL: d.Rebind(`INSERT INTO audit_published (tbl, seq) VALUES (?, ?) ON CONFLICT (tbl) DO UPDATE SET seq = excluded.seq`),
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

// Fetch implements outbox.Tail.
func (t *Tail) Fetch(ctx context.Context, q outbox.Queryer, after int64, limit int) ([]*sarama.ProducerMessage, error) {
	rows, err := q.QueryContext(ctx, t.fetchSQL, after, limit)
	if err != nil {
		return nil, db.Classify(err)
	}
	defer rows.Close()
	msgs := make([]*sarama.ProducerMessage, 0, min(limit, 256))
	for rows.Next() {
		var e Entry
		var at db.Timestamp
		if err := rows.Scan(&e.Seq, &e.ID, &at, &e.Actor, &e.Role, &e.Action, &e.SubjectID, &e.Outcome, &e.RequestID,
			&e.ClientAddress, &e.PrevHash, &e.Hash); err != nil {
			return nil, db.Classify(err)
		}
		e.At = at.Time
		m, err := eventMessage(t.service, e)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m.ProducerMessage(e.Seq))
	}
	return msgs, db.Classify(rows.Err())
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
