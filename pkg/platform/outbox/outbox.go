// Package outbox is the transactional outbox every service publishes its events through
// (DESIGN.md): an event is a row in the service's own database, written in the same
// transaction as the change it describes, so a rolled-back change publishes nothing and a
// committed one is never lost. A Relay publishes the pending rows to Kafka in order, with an
// idempotent producer (acks=all), and marks them sent; it is woken by commits (a channel
// signal in the process, LISTEN/NOTIFY on PostgreSQL across processes) and polls only as a
// fallback. Delivery is at least once: consumers deduplicate on the event id, recording it
// with MarkProcessed in the transaction of their own effect.
//
// The tables live in each service's migrations (see migrations/patient/*/00002_outbox.sql):
// outbox, processed_events and command_replies.
package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/errs"
)

// Table is the outbox table's name in every service's database.
const Table = "outbox"

// Message is one event to publish: its topic, key (the partitioning key: events of one key
// keep their order), value and headers.
type Message struct {
	Topic   string
	Key     string
	Value   []byte
	Headers map[string]string
}

// Outbox writes messages into a service's outbox table inside the caller's transactions and
// wakes that service's Relay.
type Outbox struct {
	d       *db.DB
	wake    chan struct{}
	notify  bool
	channel string
	// insert1 is the INSERT of one row, built once: most changes write one event.
	insert1 string
}

// Options configure New. The zero value is what services use.
type Options struct {
	// NotifyInTx makes Add queue a NOTIFY in every writing transaction on PostgreSQL, so that
	// a relay in another process learns of each commit at once. It is off by default because
	// PostgreSQL serialises the commits of notifying transactions (measured here: it halves
	// the patient service's create throughput). Without it, a relay in the writer's process
	// is woken by Wake, and when another process's relay holds the outbox, the writer's relay
	// forwards the wake-up to it with one NOTIFY outside any writing transaction.
	NotifyInTx bool
}

// New returns the outbox of database d.
func New(d *db.DB, o Options) *Outbox {
	ob := &Outbox{
		d:       d,
		wake:    make(chan struct{}, 1),
		notify:  d.Dialect == db.Postgres && o.NotifyInTx,
		channel: notifyChannel(d.Schema),
	}
	ob.insert1 = ob.insertStmt(1)
	return ob
}

// notifyChannel is the LISTEN/NOTIFY channel of one schema's outbox: a hash, so that any
// schema name makes a valid, short identifier, and relays of other schemas are not woken.
func notifyChannel(schema string) string {
	h := fnv.New64a()
	fmt.Fprintf(h, "pms/outbox\x00%s", schema)
	return fmt.Sprintf("pms_outbox_%016x", h.Sum64())
}

// maxRowsPerInsert keeps one INSERT under both databases' bind-parameter limits.
const maxRowsPerInsert = 1000

// MaxMessageBytes bounds one message (value, key and headers). A row the broker would refuse
// would block its key's events behind it forever, so Add refuses it instead, failing the
// transaction: the change is not made without its event. Kafka's default limit is 1 MB.
const MaxMessageBytes = 900 << 10

// Add writes msgs into the outbox within tx, the transaction of the change they describe
// (or queues them on it: a db.Pipeline), so they are published if and only if tx commits. Call Wake after the commit to wake the relay
// of this process at once. (Add already wakes it, which suffices on SQLite, whose single
// connection makes the relay wait for the commit; on PostgreSQL that early wake-up finds
// nothing yet, and without Wake the rows wait for the relay's next poll.)
func (o *Outbox) Add(ctx context.Context, tx db.Execer, msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	now := o.d.Time(time.Now())
	for rest := msgs; len(rest) > 0; {
		n := min(len(rest), maxRowsPerInsert)
		args := make([]any, 0, n*5)
		for _, m := range rest[:n] {
			if m.Topic == "" {
				return errs.New(errs.Internal, "outbox: message without a topic")
			}
			h, err := encodeHeaders(m.Headers)
			if err != nil {
				return err
			}
			if size := len(m.Value) + len(m.Key) + len(h); size > MaxMessageBytes {
				return errs.Newf(errs.Internal, "outbox: a %s message of %d bytes is over the limit of %d", m.Topic, size, MaxMessageBytes)
			}
			v := m.Value
			if v == nil {
				v = []byte{}
			}
			args = append(args, m.Topic, m.Key, v, h, now)
		}
		if _, err := tx.ExecContext(ctx, o.insertStmt(n), args...); err != nil {
			return db.Classify(err)
		}
		rest = rest[n:]
	}
	if o.notify {
		if _, err := tx.ExecContext(ctx, `SELECT pg_notify($1, '')`, o.channel); err != nil {
			return db.Classify(err)
		}
	}
	o.Wake()
	return nil
}

// insertStmt returns the INSERT of n rows. On PostgreSQL the rows are filtered on
// pg_current_xact_id(), which gives the transaction its xid before the rows' ids are drawn
// (an INSERT ... VALUES draws them first, and assigns the xid when it writes the first row):
// the relay's floor (Relay.settle) relies on every id being drawn by a transaction that
// already has its xid.
func (o *Outbox) insertStmt(n int) string {
	if n == 1 && o.insert1 != "" {
		return o.insert1
	}
	const row = "(?, ?, ?, ?, ?)"
	var b strings.Builder
	b.WriteString("INSERT INTO " + Table + " (topic, msg_key, value, headers, created_at) ")
	if o.d.Dialect == db.Postgres {
		b.WriteString("SELECT * FROM (VALUES (?::text, ?::text, ?::bytea, ?::text, ?::timestamptz)")
	} else {
		b.WriteString("VALUES " + row)
	}
	for range n - 1 {
		b.WriteString(", " + row)
	}
	if o.d.Dialect == db.Postgres {
		b.WriteString(") AS v WHERE pg_current_xact_id() IS NOT NULL")
	}
	return o.d.Rebind(b.String())
}

// Wake tells a relay of this process that there may be new rows. It never blocks.
func (o *Outbox) Wake() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func encodeHeaders(h map[string]string) (string, error) {
	if len(h) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(h)
	if err != nil {
		return "", errs.Wrap(errs.Internal, "outbox: headers", err)
	}
	return string(b), nil
}

// recordHeaders decodes a row's headers (encodeHeaders' JSON object) into Kafka record
// headers. The relay decodes every row it publishes, and encoding/json into a map was most
// of its CPU (issue 20 item 10), so the form encodeHeaders writes for printable ASCII, with
// no escapes, is parsed by hand, the headers slicing one copy of s; anything else goes
// through encoding/json, its keys sorted as json.Marshal writes them.
func recordHeaders(s string) ([]sarama.RecordHeader, error) {
	if h, ok := plainHeaders(s); ok {
		return h, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, err
	}
	out := make([]sarama.RecordHeader, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, sarama.RecordHeader{Key: []byte(k), Value: []byte(m[k])})
	}
	return out, nil
}

// plainHeaders parses {"k":"v",...} whose strings are printable ASCII without escapes; ok is
// false for anything else, which recordHeaders leaves to encoding/json.
func plainHeaders(s string) (h []sarama.RecordHeader, ok bool) {
	b := []byte(s)
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return nil, false
	}
	if len(b) == 2 {
		return []sarama.RecordHeader{}, true
	}
	str := func(i int) ([]byte, int, bool) { // the string opening at b[i]; the index after it
		if i >= len(b) || b[i] != '"' {
			return nil, 0, false
		}
		for j := i + 1; j < len(b); j++ {
			switch c := b[j]; {
			case c == '"':
				return b[i+1 : j : j], j + 1, true
			case c == '\\' || c < 0x20 || c > 0x7e:
				return nil, 0, false
			}
		}
		return nil, 0, false
	}
	h = make([]sarama.RecordHeader, 0, 4)
	for i := 1; ; {
		k, next, ok := str(i)
		if !ok || next >= len(b) || b[next] != ':' {
			return nil, false
		}
		v, next, ok := str(next + 1)
		if !ok || next >= len(b) {
			return nil, false
		}
		h = append(h, sarama.RecordHeader{Key: k, Value: v})
		switch b[next] {
		case '}':
			if next != len(b)-1 {
				return nil, false
			}
			return h, true
		case ',':
			i = next + 1
		default:
			return nil, false
		}
	}
}

// MarkProcessed records, within tx, that consumer has handled the event eventID, and
// reports whether this is the first time. A consumer calls it in the same transaction as its
// effect and skips the effect when it returns false: so an event delivered twice (the relay
// and Kafka deliver at least once) is applied once.
func MarkProcessed(ctx context.Context, tx *sqlx.Tx, d *db.DB, consumer, eventID string) (bool, error) {
	n, err := db.Affected(tx.ExecContext(ctx, tx.Rebind(`INSERT INTO processed_events (consumer, event_id, processed_at) VALUES (?, ?, ?)
		ON CONFLICT (consumer, event_id) DO NOTHING`), consumer, eventID, d.Time(time.Now())))
	return n == 1, err
}

// MarkProcessedBatch is MarkProcessed for a batch of events in one transaction: it reports,
// for each of eventIDs, whether this is its first time (an id twice in the batch is first
// only at its first place). On PostgreSQL it is one statement whatever the batch's size,
// the ids travelling as one text[]: a consumer folding a batch of audit events no longer
// pays a round trip per event (issue 20 item 2).
func MarkProcessedBatch(ctx context.Context, tx *sqlx.Tx, d *db.DB, consumer string, eventIDs []string) ([]bool, error) {
	first := make([]bool, len(eventIDs))
	if d.Dialect != db.Postgres {
		for i, id := range eventIDs {
			ok, err := MarkProcessed(ctx, tx, d, consumer, id)
			if err != nil {
				return nil, err
			}
			first[i] = ok
		}
		return first, nil
	}
	rows, err := tx.QueryContext(ctx, `INSERT INTO processed_events (consumer, event_id, processed_at)
		SELECT $1, id, $2 FROM unnest($3::text[]) AS u(id)
		ON CONFLICT (consumer, event_id) DO NOTHING RETURNING event_id`, consumer, d.Time(time.Now()), eventIDs)
	if err != nil {
		return nil, db.Classify(err)
	}
	defer rows.Close()
	fresh := make(map[string]bool, len(eventIDs))
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, db.Classify(err)
		}
		fresh[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, db.Classify(err)
	}
	for i, id := range eventIDs {
		if fresh[id] {
			first[i] = true
			delete(fresh, id) // a repeat later in the batch is not first
		}
	}
	return first, nil
}

// MarkApplied is MarkProcessed for a consumer that resumes from its own offsets: in the same
// transaction it records the next offset of the partition of ctx's message (the transport's
// WithPosition), which ConsumerOffsets returns.
func MarkApplied(ctx context.Context, tx *sqlx.Tx, d *db.DB, consumer, eventID string) (bool, error) {
	first, err := MarkProcessed(ctx, tx, d, consumer, eventID)
	if err != nil {
		return false, err
	}
	return first, recordOffset(ctx, tx, consumer)
}

// Position is where a message was read: a consumer's place in a partition.
type Position struct {
	Topic     string
	Partition int32
	Offset    int64
}

type positionKey struct{}

// WithPosition returns ctx carrying p, the message being handled; the Kafka transport sets
// it, and MarkApplied records the next offset in the transaction that applies the message.
func WithPosition(ctx context.Context, p Position) context.Context {
	return context.WithValue(ctx, positionKey{}, p)
}

// recordOffset keeps, within tx, the next offset consumer is to apply in the partition of
// ctx's message (WithPosition), never moving it back; without a position it does nothing.
func recordOffset(ctx context.Context, tx *sqlx.Tx, consumer string) error {
	p, ok := ctx.Value(positionKey{}).(Position)
	if !ok {
		return nil
	}
	_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO consumer_offsets (consumer, topic, partition, next_offset) VALUES (?, ?, ?, ?)
		ON CONFLICT (consumer, topic, partition) DO UPDATE SET
		next_offset = CASE WHEN excluded.next_offset > consumer_offsets.next_offset THEN excluded.next_offset ELSE consumer_offsets.next_offset END`),
		consumer, p.Topic, p.Partition, p.Offset+1)
	return db.Classify(err)
}

// ConsumerOffsets returns, by topic and partition, the next offset consumer is to apply, as
// its own database knows it (MarkApplied): the place it resumes from, which after a
// restore is behind the broker's committed offsets, so nothing applied since the backup is
// skipped.
func ConsumerOffsets(ctx context.Context, d *db.DB, consumer string) (map[string]map[int32]int64, error) {
	var rows []struct {
		Topic     string `db:"topic"`
		Partition int32  `db:"partition"`
		Next      int64  `db:"next_offset"`
	}
	if err := d.SelectContext(ctx, &rows, d.Rebind(`SELECT topic, partition, next_offset FROM consumer_offsets WHERE consumer = ?`), consumer); err != nil {
		return nil, db.Classify(err)
	}
	out := map[string]map[int32]int64{}
	for _, r := range rows {
		if out[r.Topic] == nil {
			out[r.Topic] = map[int32]int64{}
		}
		out[r.Topic][r.Partition] = r.Next
	}
	return out, nil
}

// Republish marks every event written at or after since as not yet published, so the relay
// publishes it again (with its event id: consumers dedupe). A restore calls it with the
// moment its backup began: what was published while the backup ran, perhaps after the
// snapshot of a consumer that reads it, is on the topics again even when the topics are new.
func Republish(ctx context.Context, d *db.DB, since time.Time) (int64, error) {
	return db.Affected(d.ExecContext(ctx, d.Rebind(`UPDATE outbox SET published_at = NULL WHERE created_at >= ? AND published_at IS NOT NULL`), d.Time(since)))
}

// Fence is an interval of a topic whose messages a consumer skips: those with a record
// timestamp after After and not after Until.
type Fence struct {
	Topic        string
	After, Until time.Time
}

// Holds reports whether f skips a message of topic stamped at.
func (f Fence) Holds(topic string, at time.Time) bool {
	return topic == f.Topic && at.After(f.After) && !at.After(f.Until)
}

// AddFence records f in d, a consumer's database. A restore adds one per topic the database
// consumes: from the moment the topic's source was snapshotted to the restore, the events on
// the topic are of changes the restore took away from the source, and applying them would
// make records (an account) of things the source no longer has (a patient).
func AddFence(ctx context.Context, d *db.DB, f Fence) error {
	_, err := d.ExecContext(ctx, d.Rebind(`INSERT INTO consumer_fences (topic, after_time, until_time) VALUES (?, ?, ?)
		ON CONFLICT (topic, after_time) DO UPDATE SET until_time = excluded.until_time`),
		f.Topic, d.Time(f.After), d.Time(f.Until))
	return db.Classify(err)
}

// FenceRecovery fences, in d (a consumer's database), each of topics off the events of the
// changes a PostgreSQL point-in-time recovery took away from their sources: those stamped
// after the recovered database's last commit and before its server started
// (db.LastRecovery). It assumes the sources' databases were recovered to the same point, as
// they are when the services share one cluster (the caller checks). A change the sources had
// committed by then but published later is still marked unpublished in the recovered outbox,
// so the relay publishes it again, stamped after the fence: nothing is lost. A recovery
// fences once; later starts on the same server add nothing new (AddFence is idempotent).
func FenceRecovery(ctx context.Context, d *db.DB, topics []string) (db.Recovery, bool, error) {
	r, ok, err := db.LastRecovery(ctx, d)
	if err != nil || !ok {
		return r, false, err
	}
	for _, topic := range topics {
		if err := AddFence(ctx, d, Fence{Topic: topic, After: r.LastCommit, Until: r.ServerStart}); err != nil {
			return r, false, err
		}
	}
	return r, true, nil
}

// SkipOffset records that consumer has dealt with the message at p without applying it (a
// fenced message), so the offsets it resumes from, and its lag, move past it. Its event id is
// not recorded as processed: the same event published again after a fence must still apply.
func SkipOffset(ctx context.Context, d *db.DB, consumer string, p Position) error {
	return db.InTx(ctx, d, func(tx *sqlx.Tx) error { return recordOffset(WithPosition(ctx, p), tx, consumer) })
}

// Fences returns the fences recorded in d.
func Fences(ctx context.Context, d *db.DB) ([]Fence, error) {
	var rows []struct {
		Topic string       `db:"topic"`
		After db.Timestamp `db:"after_time"`
		Until db.Timestamp `db:"until_time"`
	}
	if err := d.SelectContext(ctx, &rows, `SELECT topic, after_time, until_time FROM consumer_fences`); err != nil {
		return nil, db.Classify(err)
	}
	out := make([]Fence, len(rows))
	for i, r := range rows {
		out[i] = Fence{Topic: r.Topic, After: r.After.Time, Until: r.Until.Time}
	}
	return out, nil
}
