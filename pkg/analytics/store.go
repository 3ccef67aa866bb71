package analytics

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/outbox"
)

// Consumer is the name analytics records processed event ids under.
const Consumer = "analytics"

// The counter rows of the scalar figures.
const (
	cRegistered = "patients_registered"
	cUpdated    = "patients_updated"
	cDeleted    = "patients_deleted"
	cIssued     = "invoices_issued"
	cPaid       = "invoices_paid"
	cVoided     = "invoices_voided"
	cReads      = "access_reads"
	cChanges    = "access_changes"
	cDenied     = "access_denied"
	cEvents     = "events_" // + topic
)

// Store keeps the figures on sqlx; one SQL text serves PostgreSQL and SQLite.
type Store struct {
	db  *db.DB
	now func() time.Time
}

// NewStore returns the store over d (migrated with migrations.Analytics).
func NewStore(d *db.DB) *Store { return &Store{db: d, now: time.Now} }

// Generation returns the current generation, which names the consumer group. A database
// without one (new, or emptied) gets a new generation, and fresh is true: its group has no
// committed offsets, so the topics are replayed from the earliest offset.
func (s *Store) Generation(ctx context.Context) (gen string, fresh bool, err error) {
	// Two replicas starting on one empty database both try; one generation wins.
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO state (id, generation) VALUES (1, ?) ON CONFLICT (id) DO NOTHING`), newGeneration())
	if err != nil {
		return "", false, db.Classify(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return "", false, db.Classify(err)
	}
	if err := s.db.GetContext(ctx, &gen, `SELECT generation FROM state WHERE id = 1`); err != nil {
		return "", false, db.Classify(err)
	}
	return gen, n == 1, nil
}

// Reset empties every figure and every processed event id and starts a new generation, in
// one transaction: the next consumer replays the topics from the earliest offset into an
// empty database.
func (s *Store) Reset(ctx context.Context) (gen string, err error) {
	gen = newGeneration()
	err = db.InTx(ctx, s.db, func(tx *sqlx.Tx) error {
		for _, t := range []string{"state", "counters", "days", "amounts", "issued_invoices", "offsets", "processed_events"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+t); err != nil {
				return db.Classify(err)
			}
		}
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO state (id, generation) VALUES (1, ?)`), gen)
		return db.Classify(err)
	})
	return gen, err
}

func newGeneration() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Fold applies ev to the figures in one transaction with its event id and its partition's
// offset, and reports whether it was new. A repeat (same event id) only moves the offset.
// Every row it updates is its partition's own (see the migration), so folds of different
// partitions never wait for one another.
func (s *Store) Fold(ctx context.Context, ev Event) (bool, error) {
	var fresh bool
	err := db.InTx(ctx, s.db, func(tx *sqlx.Tx) error {
		// A repeat may move last_event_at too: its occurred_at was folded before, so the
		// maximum over the partitions stays what it was.
		var at any
		if !ev.OccurredAt.IsZero() {
			at = s.db.Time(ev.OccurredAt)
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO offsets (topic, partition, next_offset, last_event_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (topic, partition) DO UPDATE SET
			next_offset = CASE WHEN excluded.next_offset > offsets.next_offset THEN excluded.next_offset ELSE offsets.next_offset END,
			last_event_at = CASE WHEN offsets.last_event_at IS NULL OR excluded.last_event_at > offsets.last_event_at
				THEN excluded.last_event_at ELSE offsets.last_event_at END`),
			ev.Topic, ev.Partition, ev.Offset+1, at); err != nil {
			return db.Classify(err)
		}
		ok, err := outbox.MarkProcessed(ctx, tx, s.db, Consumer, ev.ID)
		if err != nil || !ok {
			return err
		}
		fresh = true
		return s.apply(ctx, tx, ev, fmt.Sprintf("%s/%d", ev.Topic, ev.Partition))
	})
	return fresh, err
}

// apply moves the figures ev moves (API.md, "Analytics"), in the rows of shard.
func (s *Store) apply(ctx context.Context, tx *sqlx.Tx, ev Event, shard string) error {
	if ev.Topic == TopicAudit && ev.Type == AuditCheckpoint {
		return nil // a signed chain head, not an access (docs/audit.md)
	}
	counters := map[string]int64{cEvents + ev.Topic: 1}
	dayCol := ""
	switch ev.Topic {
	case TopicPatient:
		switch ev.Type {
		case PatientCreated:
			counters[cRegistered], dayCol = 1, "registered"
		case PatientUpdated:
			counters[cUpdated], dayCol = 1, "updated"
		case PatientDeleted:
			counters[cDeleted], dayCol = 1, "deleted"
		}
	case TopicBilling:
		switch ev.Type {
		case InvoiceIssued:
			counters[cIssued], dayCol = 1, "invoices_issued"
			if err := s.issue(ctx, tx, ev, shard); err != nil {
				return err
			}
		case PaymentRecorded:
			if err := s.addAmount(ctx, tx, shard, ev.Currency, 0, ev.Amount); err != nil {
				return err
			}
		case InvoicePaid:
			counters[cPaid] = 1
		case InvoiceVoided:
			counters[cVoided] = 1
			if err := s.void(ctx, tx, ev.InvoiceID, shard); err != nil {
				return err
			}
		}
	case TopicAudit:
		if ev.Outcome == OutcomeDenied {
			counters[cDenied] = 1
		} else if ev.Outcome == "success" || ev.Outcome == "" {
			switch ClassifyAction(ev.Action) {
			case AccessRead:
				counters[cReads] = 1
			case AccessChange:
				counters[cChanges] = 1
			}
		}
	}
	names := make([]string, 0, len(counters))
	for n := range counters {
		names = append(names, n)
	}
	sort.Strings(names)
	q := `INSERT INTO counters (name, shard, value) VALUES `
	args := make([]any, 0, 3*len(names))
	for i, n := range names {
		if i > 0 {
			q += ", "
		}
		q += "(?, ?, ?)"
		args = append(args, n, shard, counters[n])
	}
	q += ` ON CONFLICT (name, shard) DO UPDATE SET value = counters.value + excluded.value`
	if _, err := tx.ExecContext(ctx, tx.Rebind(q), args...); err != nil {
		return db.Classify(err)
	}
	if dayCol != "" && !ev.OccurredAt.IsZero() {
		day := ev.OccurredAt.UTC().Format(DayLayout)
		// dayCol is one of four constants above, never input.
		if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO days (day, shard, `+dayCol+`) VALUES (?, ?, 1)
			ON CONFLICT (day, shard) DO UPDATE SET `+dayCol+` = days.`+dayCol+` + 1`), day, shard); err != nil {
			return db.Classify(err)
		}
	}
	return nil
}

// issue remembers an issued invoice's subtotal and adds it to invoiced (once per invoice).
func (s *Store) issue(ctx context.Context, tx *sqlx.Tx, ev Event, shard string) error {
	res, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO issued_invoices (invoice_id, currency, subtotal) VALUES (?, ?, ?)
		ON CONFLICT (invoice_id) DO NOTHING`), ev.InvoiceID, ev.Currency, ev.Subtotal)
	if err != nil {
		return db.Classify(err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return db.Classify(err)
	}
	return s.addAmount(ctx, tx, shard, ev.Currency, ev.Subtotal, 0)
}

// void takes an issued invoice's subtotal away from invoiced, once; an invoice that was
// never issued (a voided draft) added nothing and takes nothing away.
func (s *Store) void(ctx context.Context, tx *sqlx.Tx, invoiceID, shard string) error {
	var inv struct {
		Currency string `db:"currency"`
		Subtotal int64  `db:"subtotal"`
	}
	err := tx.GetContext(ctx, &inv, tx.Rebind(`UPDATE issued_invoices SET voided = 1 WHERE invoice_id = ? AND voided = 0
		RETURNING currency, subtotal`), invoiceID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return db.Classify(err)
	}
	return s.addAmount(ctx, tx, shard, inv.Currency, -inv.Subtotal, 0)
}

func (s *Store) addAmount(ctx context.Context, tx *sqlx.Tx, shard, currency string, invoiced, paid int64) error {
	if currency == "" {
		currency = "XXX" // ISO 4217's "no currency": an event that lacks one still adds up
	}
	_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO amounts (currency, shard, invoiced, paid) VALUES (?, ?, ?, ?)
		ON CONFLICT (currency, shard) DO UPDATE SET invoiced = amounts.invoiced + excluded.invoiced, paid = amounts.paid + excluded.paid`),
		currency, shard, invoiced, paid)
	return db.Classify(err)
}

// Summary reads the figures; q's days (already validated) limit the day buckets. Lag is
// left to the caller.
func (s *Store) Summary(ctx context.Context, q SummaryQuery) (Summary, error) {
	var out Summary
	err := db.InTx(ctx, s.db, func(tx *sqlx.Tx) error {
		var rows []struct {
			Name  string `db:"name"`
			Value int64  `db:"value"`
		}
		if err := tx.SelectContext(ctx, &rows, `SELECT name, CAST(SUM(value) AS BIGINT) AS value FROM counters GROUP BY name`); err != nil {
			return db.Classify(err)
		}
		for _, r := range rows {
			switch r.Name {
			case cRegistered:
				out.Patients.Registered = r.Value
			case cUpdated:
				out.Patients.Updated = r.Value
			case cDeleted:
				out.Patients.Deleted = r.Value
			case cIssued:
				out.Invoices.Issued = r.Value
			case cPaid:
				out.Invoices.Paid = r.Value
			case cVoided:
				out.Invoices.Voided = r.Value
			case cReads:
				out.Access.Reads = r.Value
			case cChanges:
				out.Access.Changes = r.Value
			case cDenied:
				out.Access.Denied = r.Value
			case cEvents + TopicPatient:
				out.Events.Patient = r.Value
			case cEvents + TopicBilling:
				out.Events.Billing = r.Value
			case cEvents + TopicAudit:
				out.Events.Audit = r.Value
			}
		}
		out.Patients.Live = out.Patients.Registered - out.Patients.Deleted
		from, to := q.From, q.To
		if from == "" {
			from = "0000-00-00"
		}
		if to == "" {
			to = "9999-99-99"
		}
		out.Days = []Day{}
		if err := tx.SelectContext(ctx, &out.Days, tx.Rebind(`SELECT day, CAST(SUM(registered) AS BIGINT) AS registered,
			CAST(SUM(updated) AS BIGINT) AS updated, CAST(SUM(deleted) AS BIGINT) AS deleted,
			CAST(SUM(invoices_issued) AS BIGINT) AS invoicesissued
			FROM days WHERE day >= ? AND day <= ? GROUP BY day ORDER BY day`), from, to); err != nil {
			return db.Classify(err)
		}
		out.Amounts = []Amount{}
		if err := tx.SelectContext(ctx, &out.Amounts, `SELECT currency, CAST(SUM(invoiced) AS BIGINT) AS invoiced, CAST(SUM(paid) AS BIGINT) AS paid
			FROM amounts GROUP BY currency ORDER BY currency`); err != nil {
			return db.Classify(err)
		}
		var last db.Timestamp
		if err := tx.GetContext(ctx, &last, `SELECT MAX(last_event_at) FROM offsets`); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return db.Classify(err)
		}
		if !last.IsZero() {
			t := last.UTC()
			out.LastEventAt = &t
		}
		return nil
	})
	return out, err
}

// NextOffsets returns the next offset to fold of every partition folded so far.
func (s *Store) NextOffsets(ctx context.Context) (map[Partition]int64, error) {
	var rows []struct {
		Topic     string `db:"topic"`
		Partition int32  `db:"partition"`
		Next      int64  `db:"next_offset"`
	}
	if err := s.db.SelectContext(ctx, &rows, `SELECT topic, partition, next_offset FROM offsets`); err != nil {
		return nil, db.Classify(err)
	}
	out := make(map[Partition]int64, len(rows))
	for _, r := range rows {
		out[Partition{r.Topic, r.Partition}] = r.Next
	}
	return out, nil
}
