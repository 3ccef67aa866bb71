package analytics

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
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
	cDuplicates = "patients_possible_duplicates"
	cMerged     = "patients_merged" // merges less unmerges
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
	n, err := db.Affected(s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO state (id, generation) VALUES (1, ?) ON CONFLICT (id) DO NOTHING`), newGeneration()))
	if err != nil {
		return "", false, err
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
// offset, and reports whether it was new (FoldBatch of one event).
func (s *Store) Fold(ctx context.Context, ev Event) (bool, error) {
	fresh, err := s.FoldBatch(ctx, []Event{ev})
	if err != nil {
		return false, err
	}
	return fresh[0], nil
}

// FoldBatch applies evs, in order, to the figures in one transaction with their event ids
// and their partitions' offsets, and reports which of them were new: a repeat (an event id
// folded before, or earlier in evs) only moves its partition's offset. Either every event
// of the batch is folded or none is, so a crash or an error mid-batch leaves nothing half
// folded, and the batch (or each of its events alone) can simply be folded again. The
// figures are summed in memory and each row they touch is written once per batch: that is
// what lets analytics keep pace with thousands of events a second, where one transaction
// per event could not. Every row it updates is its events' partitions' own (see the
// migration), so folds of different partitions never wait for one another.
func (s *Store) FoldBatch(ctx context.Context, evs []Event) ([]bool, error) {
	var fresh []bool
	ids := make([]string, len(evs))
	for i := range evs {
		ids[i] = evs[i].ID
	}
	err := db.InTx(ctx, s.db, func(tx *sqlx.Tx) error {
		d := newDelta()
		var err error
		if fresh, err = outbox.MarkProcessedBatch(ctx, tx, s.db, Consumer, ids); err != nil {
			return err
		}
		for i, ev := range evs {
			d.offset(ev)
			if !fresh[i] {
				continue
			}
			if err := s.apply(ctx, tx, d, ev, fmt.Sprintf("%s/%d", ev.Topic, ev.Partition)); err != nil {
				return err
			}
		}
		return d.write(ctx, tx, s.db)
	})
	if err != nil {
		return nil, err
	}
	return fresh, nil
}

// offsetMove is how far a batch moves one partition: its next offset and its latest
// occurred_at (nil when no event had one).
type offsetMove struct {
	next int64
	at   time.Time
}

// delta is what one batch adds to the figures, summed by row.
type delta struct {
	counters map[[2]string]int64    // name, shard
	days     map[[2]string][4]int64 // day, shard → registered, updated, deleted, invoices_issued
	amounts  map[[2]string][2]int64 // currency, shard → invoiced, paid
	offsets  map[Partition]offsetMove
}

func newDelta() *delta {
	return &delta{
		counters: map[[2]string]int64{}, days: map[[2]string][4]int64{},
		amounts: map[[2]string][2]int64{}, offsets: map[Partition]offsetMove{},
	}
}

// offset moves ev's partition past ev. A repeat moves it too, and may move last_event_at:
// its occurred_at was folded before, so the maximum over the partitions stays what it was.
func (d *delta) offset(ev Event) {
	p := Partition{ev.Topic, ev.Partition}
	m := d.offsets[p]
	m.next = max(m.next, ev.Offset+1)
	if ev.OccurredAt.After(m.at) {
		m.at = ev.OccurredAt
	}
	d.offsets[p] = m
}

func (d *delta) addAmount(shard, currency string, invoiced, paid int64) {
	if currency == "" {
		currency = "XXX" // ISO 4217's "no currency": an event that lacks one still adds up
	}
	a := d.amounts[[2]string{currency, shard}]
	a[0] += invoiced
	a[1] += paid
	d.amounts[[2]string{currency, shard}] = a
}

// write upserts every row d touches, one statement per table, rows in key order (so two
// batches on the same rows lock them in the same order).
func (d *delta) write(ctx context.Context, tx *sqlx.Tx, dd *db.DB) error {
	if err := upsert(ctx, tx, `INSERT INTO offsets (topic, partition, next_offset, last_event_at) VALUES `, 4,
		` ON CONFLICT (topic, partition) DO UPDATE SET
			next_offset = CASE WHEN excluded.next_offset > offsets.next_offset THEN excluded.next_offset ELSE offsets.next_offset END,
			last_event_at = CASE WHEN offsets.last_event_at IS NULL OR excluded.last_event_at > offsets.last_event_at
				THEN excluded.last_event_at ELSE offsets.last_event_at END`,
		sortedKeys(d.offsets, func(a, b Partition) bool {
			return a.Topic < b.Topic || a.Topic == b.Topic && a.Partition < b.Partition
		}), func(p Partition) []any {
			m := d.offsets[p]
			var at any
			if !m.at.IsZero() {
				at = dd.Time(m.at)
			}
			return []any{p.Topic, p.Partition, m.next, at}
		}); err != nil {
		return err
	}
	if err := upsert(ctx, tx, `INSERT INTO counters (name, shard, value) VALUES `, 3,
		` ON CONFLICT (name, shard) DO UPDATE SET value = counters.value + excluded.value`,
		sortedKeys(d.counters, lessPair), func(k [2]string) []any { return []any{k[0], k[1], d.counters[k]} }); err != nil {
		return err
	}
	if err := upsert(ctx, tx, `INSERT INTO days (day, shard, registered, updated, deleted, invoices_issued) VALUES `, 6,
		` ON CONFLICT (day, shard) DO UPDATE SET registered = days.registered + excluded.registered,
			updated = days.updated + excluded.updated, deleted = days.deleted + excluded.deleted,
			invoices_issued = days.invoices_issued + excluded.invoices_issued`,
		sortedKeys(d.days, lessPair), func(k [2]string) []any {
			v := d.days[k]
			return []any{k[0], k[1], v[0], v[1], v[2], v[3]}
		}); err != nil {
		return err
	}
	return upsert(ctx, tx, `INSERT INTO amounts (currency, shard, invoiced, paid) VALUES `, 4,
		` ON CONFLICT (currency, shard) DO UPDATE SET invoiced = amounts.invoiced + excluded.invoiced, paid = amounts.paid + excluded.paid`,
		sortedKeys(d.amounts, lessPair), func(k [2]string) []any {
			v := d.amounts[k]
			return []any{k[0], k[1], v[0], v[1]}
		})
}

// upsertRows bounds the rows of one statement (PostgreSQL takes at most 65,535 parameters,
// SQLite 32,766).
const upsertRows = 1000

// upsert runs head + "(?, ...), (?, ...)" + tail over keys, cols parameters a row, in
// statements of at most upsertRows rows.
func upsert[K any](ctx context.Context, tx *sqlx.Tx, head string, cols int, tail string, keys []K, row func(K) []any) error {
	for len(keys) > 0 {
		n := min(len(keys), upsertRows)
		var q strings.Builder
		q.WriteString(head)
		args := make([]any, 0, n*cols)
		tuple := "(" + strings.Repeat("?, ", cols-1) + "?)"
		for i, k := range keys[:n] {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString(tuple)
			args = append(args, row(k)...)
		}
		q.WriteString(tail)
		if _, err := tx.ExecContext(ctx, tx.Rebind(q.String()), args...); err != nil {
			return db.Classify(err)
		}
		keys = keys[n:]
	}
	return nil
}

func sortedKeys[K comparable, V any](m map[K]V, less func(a, b K) bool) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return less(keys[i], keys[j]) })
	return keys
}

func lessPair(a, b [2]string) bool { return a[0] < b[0] || a[0] == b[0] && a[1] < b[1] }

// apply adds the figures ev moves (API.md, "Analytics") to d, in the rows of shard; the
// invoices it issues or voids are written at once, so a later event of the batch sees them.
func (s *Store) apply(ctx context.Context, tx *sqlx.Tx, d *delta, ev Event, shard string) error {
	if ev.Topic == TopicAudit && ev.Type == AuditCheckpoint {
		return nil // a signed chain head, not an access (docs/audit.md)
	}
	count := func(name string) { d.counters[[2]string{name, shard}]++ }
	count(cEvents + ev.Topic)
	day := -1 // index into delta.days' counts
	switch ev.Topic {
	case TopicPatient:
		switch ev.Type {
		case PatientCreated:
			count(cRegistered)
			if ev.PossibleDuplicates > 0 {
				count(cDuplicates)
			}
			day = 0
		case PatientUpdated:
			count(cUpdated)
			day = 1
		case PatientDeleted:
			count(cDeleted)
			day = 2
		case PatientMerged:
			count(cMerged)
		case PatientUnmerged:
			d.counters[[2]string{cMerged, shard}]--
		}
	case TopicBilling:
		switch ev.Type {
		case InvoiceIssued:
			count(cIssued)
			day = 3
			if err := s.issue(ctx, tx, d, ev, shard); err != nil {
				return err
			}
		case PaymentRecorded:
			d.addAmount(shard, ev.Currency, 0, ev.Amount)
		case InvoicePaid:
			count(cPaid)
		case InvoiceVoided:
			count(cVoided)
			if err := s.void(ctx, tx, d, ev.InvoiceID, shard); err != nil {
				return err
			}
		}
	case TopicAudit:
		if ev.Outcome == OutcomeDenied {
			count(cDenied)
		} else if ev.Outcome == "success" || ev.Outcome == "" {
			switch ClassifyAction(ev.Action) {
			case AccessRead:
				count(cReads)
			case AccessChange:
				count(cChanges)
			}
		}
	}
	if day >= 0 && !ev.OccurredAt.IsZero() {
		k := [2]string{ev.OccurredAt.UTC().Format(DayLayout), shard}
		v := d.days[k]
		v[day]++
		d.days[k] = v
	}
	return nil
}

// issue remembers an issued invoice's subtotal and adds it to invoiced (once per invoice).
func (s *Store) issue(ctx context.Context, tx *sqlx.Tx, d *delta, ev Event, shard string) error {
	n, err := db.Affected(tx.ExecContext(ctx, tx.Rebind(`INSERT INTO issued_invoices (invoice_id, currency, subtotal) VALUES (?, ?, ?)
		ON CONFLICT (invoice_id) DO NOTHING`), ev.InvoiceID, ev.Currency, ev.Subtotal))
	if err != nil || n == 0 {
		return err // n == 0: issued before, already counted
	}
	d.addAmount(shard, ev.Currency, ev.Subtotal, 0)
	return nil
}

// void takes an issued invoice's subtotal away from invoiced, once; an invoice that was
// never issued (a voided draft) added nothing and takes nothing away.
func (s *Store) void(ctx context.Context, tx *sqlx.Tx, d *delta, invoiceID, shard string) error {
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
	d.addAmount(shard, inv.Currency, -inv.Subtotal, 0)
	return nil
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
			case cDuplicates:
				out.Patients.Duplicates = r.Value
			case cMerged:
				out.Patients.Merged = r.Value
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
		out.Patients.Live = out.Patients.Registered - out.Patients.Deleted - out.Patients.Merged
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

// SkipTo moves p's next offset to fold up to next (never back) without folding anything: a
// fenced message is dealt with, and the lag and the place a restart resumes from move past it.
func (s *Store) SkipTo(ctx context.Context, p Partition, next int64) error {
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO offsets (topic, partition, next_offset) VALUES (?, ?, ?)
		ON CONFLICT (topic, partition) DO UPDATE SET
		next_offset = CASE WHEN excluded.next_offset > offsets.next_offset THEN excluded.next_offset ELSE offsets.next_offset END`),
		p.Topic, p.Partition, next)
	return db.Classify(err)
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
