package outbox

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/prometheus/client_golang/prometheus"
)

// RelayOptions configure a Relay.
type RelayOptions struct {
	// NewProducer makes the producer the relay publishes with. It should be idempotent with
	// acks=all and return successes (kafkatransport.NewConfig does all three). The relay
	// makes a new one after any failed round, so a broker that lost its producer state
	// (restarted, failed over) never wedges it.
	NewProducer func() (sarama.SyncProducer, error)
	// Service names the service in metric names (pms_<service>_outbox_...).
	Service string
	// Registerer, when set, receives the relay's metrics.
	Registerer prometheus.Registerer
	// Logger receives failures and outages (counts and ids, never values).
	Logger log.Logger
	// Batch is the most rows one read fetches and one SendMessages publishes; default 2000.
	// Under load every batch is full and goes out as one produce request per partition. A
	// drain of 100k ran at 83-86k events/s with 1,000, 94-98k with 2,000 and 81-89k with
	// 3,000 (bench-kafka, side by side).
	Batch int
	// Poll is the fallback interval when nothing wakes the relay; default 1 s.
	Poll time.Duration
	// Linger is how long the relay waits after a wake-up before its round, so that the
	// commits of that time go out in one round; default DefaultLinger, negative for none.
	// It applies only to a relay that was idle when woken: a round that found a full batch,
	// or one during which another commit woke the relay, is followed by the next at once.
	Linger time.Duration
	// MaxBackoff caps the wait between failed rounds (the broker or the database is down);
	// default 5 s.
	MaxBackoff time.Duration
	// Retention is how long published rows are kept before they are deleted; default 1 h.
	Retention time.Duration
	// Tails are tables the relay publishes from positions it keeps, after the outbox's own
	// rows in each round (Tail).
	Tails []Tail
}

// Relay publishes a database's outbox to Kafka. Rows go out in id order, which per key is
// the order of the changes (a service writes a key's changes one transaction at a time); a
// row is marked sent only after the broker acknowledged it. While the broker is down the
// relay keeps trying with backoff and the backlog gauge grows; nothing is lost or skipped.
//
// On PostgreSQL one relay per schema is active at a time (a transaction-scoped advisory lock
// around each round), so several replicas of a service can each run one. Every relay LISTENs
// on the outbox's channel; a relay woken by its own process's commit that finds the lock
// taken NOTIFYs, so the active relay in another process publishes the new rows at once.
type Relay struct {
	d      *db.DB
	ob     *Outbox
	o      RelayOptions
	logger log.Logger
	m      *relayMetrics
	lock   int64

	producer sarama.SyncProducer

	stopping chan struct{}
	stopOnce sync.Once
	flushCtx context.Context
	cancel   context.CancelFunc
	done     chan struct{}
	mu       sync.Mutex
	state    int // 0 idle, 1 running, 2 stopped before Run: Run is then a no-op

	published atomic.Int64
	// floor (PostgreSQL) is an id at or below which every outbox row is published: rounds
	// and the backlog gauge read above it. Marking a row rewrites it outside the index of
	// pending rows (published_at is in that index's predicate), whose entry stays until a
	// VACUUM; read from its start, the index walked every row marked since, and after 500k
	// marks one fetch took 590 ms cold (the soak's slowdown, issue 20 item 7). It starts at
	// 0 in every process, so rows a restore marked unpublished again (Republish, run before
	// the services start) are found.
	floor atomic.Int64
	// notes are candidate floors: the outbox's highest id a round's snapshot saw and that
	// round's own xid, oldest first (see settle).
	notes     []floorNote
	lastCount time.Time
	lastPrune time.Time
	// ids are the outbox's highest id at each pruning pass, oldest first: what prune may
	// delete once a pass is older than the retention.
	ids []idMark
}

// floorNote is the highest id a round's snapshot saw in the outbox and the round's own xid,
// drawn after that snapshot: every row at or below id was written by a transaction with a
// lower xid.
type floorNote struct {
	id, xid int64
}

// maxFloorNotes bounds notes while a long transaction holds the snapshots' xmin back.
const maxFloorNotes = 64

// idMark is the outbox's highest id at a moment: every row at or below it was written
// before then.
type idMark struct {
	at time.Time
	id int64
}

// DefaultLinger is RelayOptions.Linger's default. A round costs the same few round trips to
// the database (its transaction, the lock, the reads, the marks) and a produce request
// whatever it carries, and every committed transaction wakes the relay: at a moderate load
// each commit made a round of its own, and the soak (issue 20 item 7, thirtieth session)
// found the relay a fifth of the patient service's CPU at 160 requests a second. Waiting a
// few milliseconds puts the commits of that time in one round. It delays events, not
// answers: a 2xx never waits for the relay.
const DefaultLinger = 5 * time.Millisecond

// NewRelay returns the relay of ob's database; Run starts it.
func NewRelay(ob *Outbox, o RelayOptions) *Relay {
	if o.Batch <= 0 {
		o.Batch = 2000
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Linger == 0 {
		o.Linger = DefaultLinger
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Second
	}
	if o.Retention <= 0 {
		o.Retention = time.Hour
	}
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	r := &Relay{
		d: ob.d, ob: ob, o: o,
		logger:   log.With(o.Logger, "component", "outbox-relay"),
		m:        newRelayMetrics(o.Registerer, o.Service),
		lock:     relayLockKey(ob.d.Schema),
		stopping: make(chan struct{}),
		done:     make(chan struct{}),
	}
	r.flushCtx, r.cancel = context.WithCancel(context.Background())
	return r
}

func relayLockKey(schema string) int64 { return db.LockKey("pms/outbox-relay", schema) }

// Published returns how many messages the relay has published since it started.
func (r *Relay) Published() int64 { return r.published.Load() }

// Run publishes until Stop, then flushes what is pending (within Stop's deadline) and
// returns nil.
func (r *Relay) Run() error {
	r.mu.Lock()
	switch r.state {
	case 2:
		r.mu.Unlock()
		return nil
	case 1:
		r.mu.Unlock()
		return errors.New("outbox: Relay.Run called twice")
	}
	r.state = 1
	r.mu.Unlock()
	defer close(r.done)
	defer r.closeProducer()
	var listenDone chan struct{}
	if r.d.Dialect == db.Postgres {
		listenCtx, stopListen := context.WithCancel(context.Background())
		listenDone = make(chan struct{})
		go func() { defer close(listenDone); r.listen(listenCtx) }()
		defer func() { stopListen(); <-listenDone }()
	}
	poll := time.NewTimer(r.o.Poll)
	defer poll.Stop()
	backoff := 50 * time.Millisecond
	for {
		stopping := isClosed(r.stopping)
		more, err := r.round(r.flushCtx)
		r.housekeeping(err == nil)
		switch {
		case err != nil:
			if stopping || r.flushCtx.Err() != nil {
				_ = level.Warn(r.logger).Log("msg", "stopping with events still pending; they are published at the next start", "err", err)
				return nil
			}
			r.m.failures.Inc()
			_ = level.Warn(r.logger).Log("msg", "outbox round failed; retrying", "err", err, "backoff", backoff)
			if !r.sleep(backoff) {
				continue // stopping: one more round to flush if the broker is back
			}
			backoff = min(backoff*2, r.o.MaxBackoff)
			continue
		case more:
			backoff = 50 * time.Millisecond
			continue // more may be pending: no wait
		}
		backoff = 50 * time.Millisecond
		if stopping {
			return nil // flushed
		}
		select {
		case <-r.ob.wake:
			// Commits landed while the round ran: at this load rounds already carry several
			// events each, and a linger would only delay them (at 5,000 events/s it doubled
			// commit-to-consume p50 and took p99 past issue 20 item 10's 20 ms).
			continue
		default:
		}
		if !poll.Stop() {
			select {
			case <-poll.C:
			default:
			}
		}
		poll.Reset(r.o.Poll)
		select {
		case <-r.ob.wake:
			if r.o.Linger > 0 {
				r.sleep(r.o.Linger) // a Stop cuts it short: the round below flushes
				// The round reads everything committed before it starts, so a wake-up that
				// came during the linger is answered by it (a commit that lands after its
				// read wakes the relay again).
				select {
				case <-r.ob.wake:
				default:
				}
			}
		case <-poll.C:
		case <-r.stopping:
		}
	}
}

// sleep waits d; Stop cuts it short (returning false).
func (r *Relay) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.stopping:
		return false
	}
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Stop asks Run to flush and return, and waits for it. If ctx ends first, the round in
// progress is abandoned (its rows stay pending; they go out at the next start, possibly
// twice) and Stop still waits for Run, so nothing outlives it.
func (r *Relay) Stop(ctx context.Context) error {
	r.stopOnce.Do(func() { close(r.stopping) })
	r.mu.Lock()
	if r.state == 0 {
		r.state = 2
	}
	st := r.state
	r.mu.Unlock()
	if st == 2 {
		return nil
	}
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		r.cancel()
		<-r.done
		return ctx.Err()
	}
}

type pendingRow struct {
	ID      int64
	Topic   string
	Key     string
	Value   []byte
	Headers string
}

// maxBatchesPerRound bounds one round (its transaction on PostgreSQL), so that the marks of a
// long drain commit every so often and a crash republishes at most this many batches.
const maxBatchesPerRound = 16

// round publishes pending rows, up to maxBatchesPerRound batches, and marks those the broker
// acknowledged. It reports whether its last read found a full batch (more may be waiting).
func (r *Relay) round(ctx context.Context) (bool, error) {
	if r.d.Dialect != db.Postgres {
		more, _, err := r.publishPending(ctx, r.d.DB) // SQLite: one writer, no floor
		if err == nil {
			var tails bool
			tails, err = r.publishTails(ctx, r.d.DB)
			more = more || tails
		}
		return more, err
	}
	// PostgreSQL: one active relay per schema. The lock lives as long as this transaction;
	// a relay that does not get it has nothing to do this round.
	var (
		more, got bool
		through   int64
		settled   int64
		sendErr   error
	)
	err := db.InTx(ctx, r.d, func(tx *sqlx.Tx) error {
		// The round's commit does not wait for the WAL flush: a mark lost to a crash only
		// publishes its row again, which consumers deduplicate. The same statement reads, for
		// the floor (settle), its snapshot's xmin, the highest id it sees, and an xid drawn
		// after its snapshot was taken (the round's own).
		var xmin, xid, top int64
		if err := tx.QueryRowxContext(ctx, `SELECT pg_try_advisory_xact_lock($1), set_config('synchronous_commit', 'off', true) IS NOT NULL,
			pg_snapshot_xmin(pg_current_snapshot())::text::bigint, pg_current_xact_id()::text::bigint,
			(SELECT coalesce(max(id), 0) FROM `+Table+`)`, r.lock).Scan(&got, new(bool), &xmin, &xid, &top); err != nil {
			return db.Classify(err)
		}
		if !got {
			// Another process's relay is active: pass the wake-up on to it (delivered when
			// this small transaction commits).
			_, err := tx.ExecContext(ctx, `SELECT pg_notify($1, '')`, r.ob.channel)
			return db.Classify(err)
		}
		settled = r.settle(xmin, floorNote{id: top, xid: xid})
		var err error
		more, through, err = r.publishPending(ctx, tx)
		if err == nil {
			var tails bool
			tails, err = r.publishTails(ctx, tx)
			more = more || tails
		}
		if errors.Is(err, errNotAcked) {
			// The marks and positions of what the broker did acknowledge commit with the
			// transaction.
			sendErr, err = err, nil
		}
		return err
	})
	if err == nil && sendErr == nil && got {
		// Every pending row at or below settled was visible to this round's reads, which
		// published (and committed the marks of) every one at or below through.
		if f := min(settled, through); f > r.floor.Load() {
			r.floor.Store(f)
		}
	}
	if err == nil {
		err = sendErr
	}
	return more, err
}

// settle returns the highest noted id that every transaction that could have written a row
// at or below it has ended by (a note whose xid is below xmin, the oldest xid still running
// when this round's snapshot was taken), dropping those notes, and notes n.
//
// Why a note settles so: n.id is the highest id visible to a snapshot, so its row had
// committed before the snapshot was taken, and every lower id was drawn before it. Outbox.Add
// draws a row's id only after its transaction has an xid (insertStmt), so every row at or
// below n.id belongs to a transaction whose xid was assigned before that snapshot, and so is
// below n.xid, drawn after it. Once xmin has passed n.xid they have all committed or rolled
// back, and the reads that follow see every one: a floor at n.id skips no row that commits
// later. Rows committed in another order than their ids were drawn in are why the floor is
// not simply the highest id published. (The snapshot's own xmax is no such bound: it is one
// past the latest completed xid, and a transaction that took a later xid may still be
// running with a lower id; TestRelayFloorXidOrder.)
func (r *Relay) settle(xmin int64, n floorNote) int64 {
	settled := r.floor.Load()
	i := 0
	for ; i < len(r.notes) && r.notes[i].xid < xmin; i++ {
		settled = max(settled, r.notes[i].id)
	}
	r.notes = r.notes[i:]
	switch last := len(r.notes) - 1; {
	case n.id <= settled || (last >= 0 && n.id <= r.notes[last].id):
	case len(r.notes) == maxFloorNotes:
		r.notes[last] = n // a later note settles no sooner: keep the newest id
	default:
		r.notes = append(r.notes, n)
	}
	return settled
}

// Queryer is what a round reads and writes through: a *sqlx.DB (SQLite) or the round's *sqlx.Tx.
type Queryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// errNotAcked wraps a round's error when the broker did not acknowledge every message.
var errNotAcked = errors.New("not acknowledged")

// sent is what one batch's publication came to: the ids to mark (the rows before the first
// one the broker did not acknowledge) and the error, if any.
type sent struct {
	ids []int64
	n   int // messages acknowledged among them (an unreadable row is marked, not sent)
	err error
}

// publishPending publishes pending rows above the floor in batches of Batch, pipelined:
// while the broker takes one batch, q reads the next and a marker marks the one before, so a
// drain costs the slowest of the three rather than their sum. Batches are sent one after the
// other, and a batch only when every message before it was acknowledged, so a key's events
// reach the broker in order. through is the highest id at or below which every row its reads
// saw pending was published (math.MaxInt64 when they found no more).
func (r *Relay) publishPending(ctx context.Context, q Queryer) (more bool, through int64, err error) {
	rows, err := r.fetch(ctx, q, r.floor.Load())
	if err != nil {
		return false, 0, err
	}
	if len(rows) == 0 {
		return false, math.MaxInt64, nil
	}
	if err := r.ensureProducer(); err != nil {
		return false, 0, err
	}
	mk := r.startMarker(ctx, q, len(rows) == r.o.Batch)
	results := make(chan sent, 1)
	for batch := 0; len(rows) > 0; batch++ {
		more = len(rows) == r.o.Batch
		go func(rows []pendingRow) { results <- r.send(rows) }(rows)
		var next []pendingRow
		var fetchErr error
		if more && batch+1 < maxBatchesPerRound {
			next, fetchErr = r.fetch(ctx, q, rows[len(rows)-1].ID) // while the broker works
		}
		res := <-results
		r.published.Add(int64(res.n))
		r.m.published.Add(float64(res.n))
		r.m.batch.Observe(float64(len(rows)))
		mk.mark(res.ids)
		if res.err != nil {
			r.closeProducer()
			if err := mk.close(); err != nil {
				return more, 0, err
			}
			return more, 0, fmt.Errorf("outbox: %w: %w", errNotAcked, res.err)
		}
		if fetchErr != nil {
			return more, 0, errors.Join(fetchErr, mk.close())
		}
		through = rows[len(rows)-1].ID
		rows = next
	}
	if !more {
		through = math.MaxInt64
	}
	return more, through, mk.close()
}

// marker marks published rows. While the relay drains a backlog on PostgreSQL it works
// beside the round, in its own transaction on its own connection (marking is the costliest
// part of a drain: each row is rewritten), committed without waiting for the WAL flush, as
// the round's is. The round closes it, waiting for that commit, before its own transaction
// ends, so the next round never reads a row this one published. Otherwise (a round of one
// batch, SQLite, whose one connection the round holds, or a pool too small to lend it a
// connection) it marks in place, in the round's transaction.
type marker struct {
	r     *Relay
	ctx   context.Context
	q     Queryer // SQLite: mark through the round's own Queryer
	ids   chan []int64
	done  chan error
	err   error
	async bool
}

// startMarker starts the marker of a round; drain says the round found a full batch, so
// more batches are likely to follow.
func (r *Relay) startMarker(ctx context.Context, q Queryer, drain bool) *marker {
	m := &marker{r: r, ctx: ctx, q: q}
	// A round of one batch marks in its own transaction: a second one would only add round
	// trips. The LISTEN, the round and the marker each hold a connection: a smaller pool
	// marks in place rather than wait for a connection the round holds.
	if limit := r.d.Stats().MaxOpenConnections; !drain || r.d.Dialect != db.Postgres || (limit > 0 && limit < 4) {
		return m
	}
	m.async = true
	m.ids = make(chan []int64, 2) // two batches behind at most: then the round waits
	m.done = make(chan error, 1)
	go func() {
		var (
			tx  *sqlx.Tx
			err error
		)
		for ids := range m.ids {
			if err != nil {
				continue // drain: the round learns of the failure from close
			}
			if tx == nil {
				if tx, err = r.d.BeginTxx(ctx, nil); err != nil {
					err = db.Classify(err)
					continue
				}
				if _, err = tx.ExecContext(ctx, `SELECT set_config('synchronous_commit', 'off', true)`); err != nil {
					err = db.Classify(err)
					continue
				}
			}
			err = r.markSent(ctx, tx, ids)
		}
		if tx != nil {
			if err == nil {
				err = db.Classify(tx.Commit())
			} else {
				_ = tx.Rollback()
			}
		}
		m.done <- err
	}()
	return m
}

// mark marks ids (at once on SQLite; queued on PostgreSQL).
func (m *marker) mark(ids []int64) {
	if len(ids) == 0 {
		return
	}
	if !m.async {
		if m.err == nil {
			m.err = m.r.markSent(m.ctx, m.q, ids)
		}
		return
	}
	m.ids <- ids
}

// close waits for every mark to be committed and returns the first failure.
func (m *marker) close() error {
	if !m.async {
		return m.err
	}
	close(m.ids)
	return <-m.done
}

// fetch reads up to Batch pending rows with ids above after, in id order. It scans by hand:
// the relay reads every event the service writes.
func (r *Relay) fetch(ctx context.Context, q Queryer, after int64) ([]pendingRow, error) {
	res, err := q.QueryContext(ctx, r.d.Rebind(`SELECT id, topic, msg_key, value, headers FROM `+Table+
		` WHERE published_at IS NULL AND id > ? ORDER BY id LIMIT ?`), after, r.o.Batch)
	if err != nil {
		return nil, db.Classify(err)
	}
	defer res.Close()
	// A round usually finds a few rows (it is woken by each commit): a slice of Batch rows,
	// 160 KB at the default, allocated and zeroed for each was 4 KB of garbage per audited
	// read. append grows it when a drain finds full batches.
	rows := make([]pendingRow, 0, min(r.o.Batch, 64))
	for res.Next() {
		var row pendingRow
		if err := res.Scan(&row.ID, &row.Topic, &row.Key, &row.Value, &row.Headers); err != nil {
			return nil, db.Classify(err)
		}
		rows = append(rows, row)
	}
	return rows, db.Classify(res.Err())
}

// send publishes rows and returns the ids of the rows before the first message the broker
// did not acknowledge (all of them when it acknowledged every one). A row after a failed
// one is not marked even if the broker took it: it is sent again after the failed one, so
// that the last copy of each of a key's events on the topic comes in order.
func (r *Relay) send(rows []pendingRow) sent {
	msgs := make([]*sarama.ProducerMessage, 0, len(rows))
	for i, row := range rows {
		h, err := recordHeaders(row.Headers)
		if err != nil {
			// A row we wrote ourselves cannot be unreadable; if it is, publishing it later
			// will not help, and holding up every row behind it would stop the service's
			// events. It is marked with the others; say so loudly.
			_ = level.Error(r.logger).Log("msg", "outbox row has unreadable headers; skipped", "id", row.ID, "err", err)
			continue
		}
		msgs = append(msgs, producerMessage(row.Topic, row.Key, row.Value, h, i))
	}
	err := r.producer.SendMessages(msgs)
	firstFailed := len(rows)
	if i := firstUnacked(msgs, err); i < len(msgs) {
		firstFailed = msgs[i].Metadata.(int)
	}
	if err != nil {
		if !errors.As(err, new(sarama.ProducerErrors)) {
			firstFailed = 0 // not even a row skipped before the first message is marked
		}
		err = firstError(err)
	}
	ids := make([]int64, firstFailed)
	acked := 0
	for i := range firstFailed {
		ids[i] = rows[i].ID
	}
	for _, m := range msgs {
		if m.Metadata.(int) < firstFailed {
			acked++
		}
	}
	return sent{ids: ids, n: acked, err: err}
}

// producerMessage is one event as the relay sends it: without a key when it has none (the
// producer then spreads such events over the partitions), with metadata to find it among
// the producer's errors.
func producerMessage(topic, key string, value []byte, headers []sarama.RecordHeader, metadata any) *sarama.ProducerMessage {
	m := &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(value), Headers: headers, Metadata: metadata}
	if key != "" {
		m.Key = sarama.StringEncoder(key)
	}
	return m
}

// firstUnacked returns the index of the first of msgs that SendMessages' err says the
// broker did not acknowledge: len(msgs) when err is nil, 0 when err names no message.
func firstUnacked(msgs []*sarama.ProducerMessage, err error) int {
	if err == nil {
		return len(msgs)
	}
	var pe sarama.ProducerErrors
	if !errors.As(err, &pe) {
		return 0
	}
	first := len(msgs)
	for _, e := range pe {
		for i, m := range msgs[:first] {
			if m == e.Msg {
				first = i
				break
			}
		}
	}
	return first
}

func firstError(err error) error {
	var pe sarama.ProducerErrors
	if errors.As(err, &pe) && len(pe) > 0 {
		return pe[0].Err
	}
	return err
}

// markSent sets published_at on ids: on PostgreSQL in one statement whose ids travel as one
// binary bigint[] (not a thousand bind parameters for the server to parse and plan), on
// SQLite in chunks under its bind-parameter limit.
func (r *Relay) markSent(ctx context.Context, q Queryer, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	now := r.d.Time(time.Now())
	if r.d.Dialect == db.Postgres {
		_, err := q.ExecContext(ctx, `UPDATE `+Table+` SET published_at = $1 WHERE id = ANY($2)`, now, db.GenericPlanArray(ids))
		return db.Classify(err)
	}
	for rest := ids; len(rest) > 0; {
		n := min(len(rest), maxRowsPerInsert)
		args := make([]any, 0, n+1)
		args = append(args, now)
		for _, id := range rest[:n] {
			args = append(args, id)
		}
		stmt := `UPDATE ` + Table + ` SET published_at = ? WHERE id IN (?` + strings.Repeat(", ?", n-1) + `)`
		if _, err := q.ExecContext(ctx, r.d.Rebind(stmt), args...); err != nil {
			return db.Classify(err)
		}
		rest = rest[n:]
	}
	return nil
}

// housekeeping refreshes the backlog gauge (at most once a second) and deletes rows published
// longer ago than Retention (at most once a minute).
func (r *Relay) housekeeping(ok bool) {
	now := time.Now()
	if now.Sub(r.lastCount) >= time.Second || !ok {
		r.lastCount = now
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if n, err := r.Backlog(ctx); err == nil {
			r.m.backlog.Set(float64(n))
		}
		// The age of the oldest waiting event is what an operator alerts on: a backlog that
		// is large but moving is load, one whose head is old is a relay that is stuck.
		var oldest []db.Timestamp
		if err := r.d.SelectContext(ctx, &oldest, r.d.Rebind(`SELECT created_at FROM `+Table+` WHERE published_at IS NULL AND id > ? ORDER BY id LIMIT 1`), r.floor.Load()); err == nil {
			age := 0.0
			if len(oldest) == 1 {
				age = max(now.Sub(oldest[0].Time).Seconds(), 0)
			}
			for _, t := range r.o.Tails {
				if at, err := t.Oldest(ctx, r.d.DB); err == nil && !at.IsZero() {
					age = max(age, now.Sub(at).Seconds())
				}
			}
			r.m.backlogAge.Set(age)
		}
		cancel()
	}
	if ok && now.Sub(r.lastPrune) >= time.Minute {
		r.lastPrune = now
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := r.prune(ctx, now); err != nil {
			_ = level.Warn(r.logger).Log("msg", "pruning published outbox rows failed", "err", err)
		}
		cancel()
	}
}

// prune deletes the rows published longer ago than Retention, and notes the outbox's highest
// id for a later pass. It reads only rows written before the newest noted id that is older
// than Retention (a range of the primary key, not an index on published_at, which every mark
// would have to update), so a published row is deleted a minute or two after Retention has
// passed since it was written (since the relay started, for a row written before).
func (r *Relay) prune(ctx context.Context, now time.Time) (int64, error) {
	var top int64
	if err := r.d.GetContext(ctx, &top, `SELECT coalesce(max(id), 0) FROM `+Table); err != nil {
		return 0, db.Classify(err)
	}
	r.ids = append(r.ids, idMark{at: now, id: top})
	cutoff := now.Add(-r.o.Retention)
	upTo := -1
	for i, m := range r.ids {
		if !m.at.After(cutoff) {
			upTo = i
		}
	}
	if upTo < 0 {
		return 0, nil
	}
	bound := r.ids[upTo].id
	r.ids = r.ids[upTo:] // kept: rows it covers may still be pending, and are deleted by the next pass
	return db.Affected(r.d.ExecContext(ctx, r.d.Rebind(`DELETE FROM `+Table+` WHERE id <= ? AND published_at < ?`), bound, r.d.Time(cutoff)))
}

// Backlog returns the number of events not yet published: outbox rows (those above the
// floor: none below it is pending) and the tails' rows after their positions.
func (r *Relay) Backlog(ctx context.Context) (int64, error) {
	var n int64
	if err := r.d.GetContext(ctx, &n, r.d.Rebind(`SELECT count(*) FROM `+Table+` WHERE published_at IS NULL AND id > ?`), r.floor.Load()); err != nil {
		return 0, db.Classify(err)
	}
	for _, t := range r.o.Tails {
		m, err := t.Backlog(ctx, r.d.DB)
		if err != nil {
			return 0, err
		}
		n += m
	}
	return n, nil
}

func (r *Relay) closeProducer() {
	if r.producer != nil {
		if err := r.producer.Close(); err != nil {
			_ = level.Debug(r.logger).Log("msg", "closing producer", "err", err)
		}
		r.producer = nil
	}
}

// listen holds a PostgreSQL connection LISTENing on the outbox's channel and wakes the
// relay on every notification, reconnecting with backoff until ctx ends.
func (r *Relay) listen(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := r.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		_ = level.Warn(r.logger).Log("msg", "outbox LISTEN connection lost; polling until it is back", "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (r *Relay) listenOnce(ctx context.Context) error {
	conn, err := r.d.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("outbox: LISTEN needs a pgx connection, got %T", dc)
		}
		pc := sc.Conn()
		if _, err := pc.Exec(ctx, `LISTEN `+r.ob.channel); err != nil {
			return errors.Join(err, driver.ErrBadConn)
		}
		r.ob.Wake() // catch up on anything committed while not listening
		for {
			if _, err := pc.WaitForNotification(ctx); err != nil {
				// The connection holds a LISTEN (or was interrupted mid-read): never give it
				// back to the pool.
				return errors.Join(err, driver.ErrBadConn)
			}
			r.ob.Wake()
		}
	})
}

type relayMetrics struct {
	published prometheus.Counter
	failures  prometheus.Counter
	backlog   prometheus.Gauge
	// backlogAge is the age of the oldest unpublished row (0 when none waits).
	backlogAge prometheus.Gauge
	batch      prometheus.Histogram
}

func newRelayMetrics(reg prometheus.Registerer, service string) *relayMetrics {
	m := &relayMetrics{
		published: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "pms", Subsystem: service, Name: "outbox_published_total",
			Help: "Outbox events published to Kafka and acknowledged."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "pms", Subsystem: service, Name: "outbox_failures_total",
			Help: "Relay rounds that failed (broker or database unavailable) and were retried."}),
		backlog: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "pms", Subsystem: service, Name: "outbox_backlog",
			Help: "Outbox events written but not yet published."}),
		backlogAge: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "pms", Subsystem: service, Name: "outbox_oldest_age_seconds",
			Help: "Age of the oldest outbox event not yet published (0 when none waits)."}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "pms", Subsystem: service, Name: "outbox_batch_size",
			Help: "Events per relay round.", Buckets: prometheus.ExponentialBuckets(1, 4, 7)}),
	}
	if reg != nil {
		reg.MustRegister(m.published, m.failures, m.backlog, m.backlogAge, m.batch)
	}
	return m
}
