package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/ids"
	"github.com/prometheus/client_golang/prometheus"
)

// Bind-parameter limits per statement: SQLite's SQLITE_MAX_VARIABLE_NUMBER (32766 since
// 3.32) and PostgreSQL's wire protocol (a 16-bit count). A batch larger than this is split
// into several INSERTs inside the same transaction.
const (
	sqliteMaxParams   = 32766
	postgresMaxParams = 65535
)

// Options configure a Writer. The zero value works: table audit_log, batches of up to 256,
// no hook, no logging, no metrics.
type Options struct {
	// Service names the service in metric names (pms_<service>_audit_...).
	Service string
	// Table is the audit table; default "audit_log".
	Table string
	// MaxBatch caps the entries committed in one transaction; default 256. Larger batches
	// amortise the commit further but make every request in them wait for a bigger write.
	MaxBatch int
	// Timeout bounds one batch transaction; default 10s. Callers wait at most this long for
	// a stuck database, however long their own deadline.
	Timeout time.Duration
	// AfterBatch, when set, runs inside the batch transaction after the rows are inserted,
	// with the entries as stored (seq and hashes filled). The outbox uses it to write one
	// audit event per entry in the same transaction; an error rolls the whole batch back.
	// On PostgreSQL its statements may be queued and sent with the batch's (db.Pipeline):
	// it must not depend on what they return.
	AfterBatch func(ctx context.Context, tx db.Execer, entries []Entry) error
	// ExtraColumns names columns of the service's own that its migrations add to Table
	// (nullable): each row inserted also gets its entry's Extra values there. The patient
	// service keeps a read's disclosure in its entry this way instead of a row of another
	// table. The writer of DefaultTable reads them from audit_pending too (WithPendingExtra),
	// so the migrations add them to both tables. NewWriter panics on a name that is not a
	// plain identifier.
	ExtraColumns []string
	// AfterCommit, when set, runs after each batch has committed (the outbox's Wake, so its
	// relay publishes the batch's events at once).
	AfterCommit func()
	// Committed, when set, runs after each batch has committed and before AfterCommit, with
	// the batch's appended entries as stored (seq and hashes filled, in seq order; entries
	// moved from audit_pending with them are not among them). Tail.Remember takes them, so
	// the relay publishes the batch without reading it back. It must not keep the slice.
	Committed func(entries []Entry)
	// Logger receives batch failures (ids and counts only, never entry contents).
	Logger log.Logger
	// Registerer, when set, receives the writer's metrics.
	Registerer prometheus.Registerer
	// MoveInterval is how often the writer of DefaultTable looks for entries left pending by
	// changes (InTx) whose recorder could not have them chained at once, and how often it
	// checks whether a checkpoint is due; default 1s.
	MoveInterval time.Duration
	// Checkpoint, when set, runs inside a batch transaction whenever CheckpointEvery entries
	// have been chained since the last checkpoint, or CheckpointInterval has passed and the
	// chain has grown: it gets the chain's head (seq and hash) to sign and publish
	// (CheckpointHook). An error rolls the batch back. Like AfterBatch's, its statements may
	// be queued.
	Checkpoint func(ctx context.Context, tx db.Execer, seq int64, hash string) error
	// CheckpointEvery and CheckpointInterval pace checkpoints; defaults 1000 entries, 10s.
	CheckpointEvery    int64
	CheckpointInterval time.Duration
}

// Stats counts what a Writer has done since it was made. Batches below Entries is group
// commit at work: several requests shared one transaction.
type Stats struct {
	Batches   int64 // transactions committed
	Entries   int64 // entries written
	Failures  int64 // batch transactions that failed and were rolled back
	Pipelined int64 // batches committed in two round trips (commitPipelined)
}

// Writer is a service's one audit writer. Requests hand it entries with Append and wait; one
// goroutine collects whatever has arrived into a batch, chains it onto the table's tail and
// commits it in one transaction, so a burst of N audited reads costs about one commit rather
// than N, and the chain is computed in one place where order is unambiguous.
type Writer struct {
	d           *db.DB
	table       string
	maxBatch    int
	timeout     time.Duration
	afterBatch  func(ctx context.Context, tx db.Execer, entries []Entry) error
	afterCommit func()
	committed   func([]Entry)
	logger      log.Logger
	metrics     *metrics
	lockKey     int64
	// rowsPerStmt is how many rows one INSERT carries; tests lower it to exercise chunking.
	rowsPerStmt int
	tailSQL     string
	insertSQL   map[int]string // by row count; touched only by the writer goroutine
	// extra is Options.ExtraColumns: what an INSERT adds to columns, and each row's Extra.
	extra []string

	mu     sync.RWMutex // guards closed and sends on reqs against close(reqs)
	closed bool
	reqs   chan *request

	base      context.Context // parent of every batch; cancelled when Close gives up waiting
	cancel    context.CancelFunc
	closeOnce sync.Once
	done      chan struct{} // closed when the goroutine has exited

	batches, entries, failures, pipelined atomic.Int64

	// Pending entries (InTx) and checkpoints; the state is the writer goroutine's own.
	pendingOn        bool // the table is DefaultTable, whose migration set has audit_pending
	moveEvery        time.Duration
	checkpoint       func(ctx context.Context, tx db.Execer, seq int64, hash string) error
	cpEvery          int64
	cpInterval       time.Duration
	cpSeq, headSeq   int64     // the last checkpointed seq, the last head this writer chained
	cpAt             time.Time // when the last checkpoint was committed
	selectPendingSQL string
	deletePendingSQL string
	anyPendingSQL    string
}

// moveCap is how many pending entries one batch moves into the chain; more wait for the next.
const moveCap = 1000

type request struct {
	ctx    context.Context
	e      Entry
	settle bool        // a Settle: chain the pending entries, append nothing
	res    chan result // buffered: the writer never blocks on a caller that has gone
}

type result struct {
	e   Entry
	err error
}

// NewWriter starts the writer goroutine for d. It panics on an invalid table name, which is a
// wiring mistake to catch at start-up. Call Close to flush and stop it.
func NewWriter(d *db.DB, o Options) *Writer {
	table, err := checkTable(o.Table)
	if err != nil {
		panic(err)
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	mustBeColumns(o.ExtraColumns)
	maxParams := postgresMaxParams
	if d.Dialect == db.SQLite {
		maxParams = sqliteMaxParams
	}
	w := &Writer{
		d:           d,
		table:       table,
		maxBatch:    o.MaxBatch,
		timeout:     o.Timeout,
		afterBatch:  o.AfterBatch,
		afterCommit: o.AfterCommit,
		committed:   o.Committed,
		logger:      log.With(o.Logger, "component", "audit", "table", table),
		metrics:     newMetrics(o.Registerer, o.Service),
		lockKey:     lockKey(d.Schema, table),
		rowsPerStmt: maxParams / (numColumns + len(o.ExtraColumns)),
		extra:       o.ExtraColumns,
		tailSQL:     `SELECT seq, hash FROM ` + table + ` ORDER BY seq DESC LIMIT 1`,
		insertSQL:   map[int]string{},
		reqs:        make(chan *request, o.MaxBatch),
		done:        make(chan struct{}),
	}
	if o.MoveInterval <= 0 {
		o.MoveInterval = time.Second
	}
	if o.CheckpointEvery <= 0 {
		o.CheckpointEvery = 1000
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = 10 * time.Second
	}
	w.pendingOn = table == DefaultTable
	w.moveEvery, w.checkpoint, w.cpEvery, w.cpInterval = o.MoveInterval, o.Checkpoint, o.CheckpointEvery, o.CheckpointInterval
	w.selectPendingSQL = d.Rebind(`SELECT ` + strings.Join(append([]string{"pseq", pendingColumns}, w.extra...), ", ") +
		` FROM ` + PendingTable + ` ORDER BY pseq LIMIT ?`)
	w.deletePendingSQL = `DELETE FROM ` + PendingTable + ` WHERE pseq IN (?)`
	w.anyPendingSQL = `SELECT pseq FROM ` + PendingTable + ` LIMIT 1`
	w.base, w.cancel = context.WithCancel(context.Background())
	go w.run()
	return w
}

// Append writes e to the audit log and returns once the transaction holding it has committed,
// so a request that audits before answering never answers unaudited. It fills ID (a
// time-ordered UUID, ids.Ordered) and At (now, UTC, microseconds) when empty; Seq and the
// hashes are always the writer's.
//
// Errors: InvalidArgument for text the database cannot store; Unavailable when the batch
// failed (nothing of it was written, the chain is intact, a retry is safe) or the writer is
// closed; the kind of ctx's error when ctx ends first — the entry may then still be written.
func (w *Writer) Append(ctx context.Context, e Entry) error {
	_, err := w.Write(ctx, e)
	return err
}

// Write is Append returning the entry as stored (id, time, seq, hashes), for callers that
// reference the row or publish it.
func (w *Writer) Write(ctx context.Context, e Entry) (Entry, error) {
	if e.ID == "" {
		e.ID = ids.Ordered()
	}
	if e.At.IsZero() {
		e.At = time.Now()
	}
	e.At = e.At.UTC().Truncate(time.Microsecond)
	e.Seq, e.PrevHash, e.Hash = 0, "", ""
	if err := validate(&e); err != nil {
		return Entry{}, err
	}
	if err := ctx.Err(); err != nil {
		return Entry{}, db.Classify(err)
	}
	r := &request{ctx: ctx, e: e, res: make(chan result, 1)}

	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return Entry{}, errClosed
	}
	select {
	case w.reqs <- r:
		w.mu.RUnlock()
	case <-ctx.Done():
		w.mu.RUnlock()
		return Entry{}, db.Classify(ctx.Err())
	}

	select {
	case res := <-r.res:
		return res.e, res.err
	case <-ctx.Done():
		return Entry{}, db.Classify(ctx.Err())
	}
}

// Settle asks the writer to chain every pending entry (InTx) now and returns once the batch
// that moved them has committed. Recorder.Change calls it after a change committed with its
// entry, so the entry is in the chain when the client hears back; on an error the entry is
// still pending and the writer moves it on its next round (Options.MoveInterval).
func (w *Writer) Settle(ctx context.Context) error {
	if !w.pendingOn {
		return nil
	}
	r := &request{ctx: ctx, settle: true, res: make(chan result, 1)}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return errClosed
	}
	select {
	case w.reqs <- r:
		w.mu.RUnlock()
	case <-ctx.Done():
		w.mu.RUnlock()
		return db.Classify(ctx.Err())
	}
	select {
	case res := <-r.res:
		return res.err
	case <-ctx.Done():
		return db.Classify(ctx.Err())
	}
}

var errClosed = errs.New(errs.Unavailable, "the audit log is closed")

// Close stops accepting entries (Append then returns Unavailable), commits what is queued and
// waits for the writer goroutine to exit. If ctx ends first it aborts the batch in flight,
// fails the entries still queued, and still waits for the goroutine, so nothing leaks.
// Calling it again waits the same way and returns nil once the writer has stopped.
func (w *Writer) Close(ctx context.Context) error {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		close(w.reqs)
		w.mu.Unlock()
	})
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		w.cancel()
		<-w.done
		return db.Classify(ctx.Err())
	}
}

// Stats returns the writer's counters.
func (w *Writer) Stats() Stats {
	return Stats{Batches: w.batches.Load(), Entries: w.entries.Load(), Failures: w.failures.Load(),
		Pipelined: w.pipelined.Load()}
}

// run is the writer goroutine: it takes one entry (blocking), then whatever else is already
// queued up to MaxBatch, and commits them together. Entries that arrive during the commit
// wait in the channel and form the next batch: that is the group commit.
func (w *Writer) run() {
	defer close(w.done)
	defer w.cancel()
	batch := make([]*request, 0, w.maxBatch)
	var tick <-chan time.Time
	if w.pendingOn || w.checkpoint != nil {
		t := time.NewTicker(w.moveEvery)
		defer t.Stop()
		tick = t.C
		w.tick() // entries left pending by a previous process
	}
	for {
		var r *request
		select {
		case <-tick:
			w.tick()
			continue
		case next, ok := <-w.reqs:
			if !ok {
				return
			}
			r = next
		}
		batch = append(batch[:0], r)
	fill:
		for len(batch) < w.maxBatch {
			select {
			case r, ok := <-w.reqs:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		w.flush(batch, false)
		clear(batch)
	}
}

// tick is the writer's periodic round: it chains entries left pending (a recorder that timed
// out, a process that stopped between a change's commit and its Settle, an outage) and
// publishes a checkpoint that is due by time.
func (w *Writer) tick() {
	due := w.checkpoint != nil && w.headSeq > w.cpSeq && time.Since(w.cpAt) >= w.cpInterval
	if w.pendingOn && !due {
		ctx, cancel := context.WithTimeout(w.base, w.timeout)
		var pseq int64
		err := w.d.QueryRowxContext(ctx, w.anyPendingSQL).Scan(&pseq)
		cancel()
		if err != nil {
			if !errors.Is(err, sql.ErrNoRows) {
				_ = level.Warn(w.logger).Log("msg", "audit pending entries could not be read", "err", err)
			}
			return
		}
		due = true
	}
	if due {
		w.flush(nil, true)
	}
}

// flush commits one batch and answers every request in it. With move, or when the batch
// holds a Settle, the batch also moves the pending entries into the chain (all of them: more
// than moveCap take more transactions before anyone is answered).
func (w *Writer) flush(batch []*request, move bool) {
	live := batch[:0:0]
	for _, r := range batch {
		// A caller that has already given up got an error; writing its entry now would
		// record an action its client was told failed. (One that gives up later is written.)
		if err := r.ctx.Err(); err != nil {
			r.res <- result{err: db.Classify(err)}
			continue
		}
		live = append(live, r)
	}
	entries := make([]Entry, 0, len(live))
	for _, r := range live {
		if r.settle {
			move = true
		} else {
			entries = append(entries, r.e)
		}
	}
	if len(entries) == 0 && !move {
		return
	}
	start := time.Now()
	out, err := w.commitRetrying(entries, move && w.pendingOn)
	for err == nil && out.moved == moveCap {
		var more batchResult
		more, err = w.commitRetrying(nil, true)
		out.total += more.total
		out.moved, out.head, out.checkpointed = more.moved, max(out.head, more.head), max(out.checkpointed, more.checkpointed)
	}
	w.metrics.duration.Observe(time.Since(start).Seconds())
	if err != nil {
		w.failures.Add(1)
		w.metrics.failures.Inc()
		_ = level.Error(w.logger).Log("msg", "audit batch failed; nothing of it was written",
			"entries", len(entries), "err", err)
		err = asUnavailable(err)
		for _, r := range live {
			r.res <- result{err: err}
		}
		return
	}
	if w.committed != nil && len(entries) > 0 {
		w.committed(entries)
	}
	if w.afterCommit != nil {
		w.afterCommit()
	}
	w.headSeq = max(w.headSeq, out.head)
	if out.checkpointed > 0 {
		w.cpSeq, w.cpAt = out.checkpointed, time.Now()
	}
	if n := len(entries) + out.total; n > 0 {
		w.batches.Add(1)
		w.entries.Add(int64(n))
		w.metrics.batchSize.Observe(float64(n))
		w.metrics.written.Add(float64(n))
	}
	i := 0
	for _, r := range live {
		if r.settle {
			r.res <- result{}
			continue
		}
		r.res <- result{e: entries[i]}
		i++
	}
}

// batchResult is what one committed batch did beyond its appended entries.
type batchResult struct {
	moved        int   // pending entries moved in the last transaction (moveCap: maybe more left)
	total        int   // pending entries moved in all
	head         int64 // the chain's last seq after the batch (0: unknown)
	checkpointed int64 // the seq a checkpoint was published for (0: none)
}

// Retry of a batch whose connection failed: the fault suite (ops/faults) found changes
// acknowledged without their audit entries when PostgreSQL connections were terminated, though
// a fresh connection would have worked a moment later. The window stays well inside the
// gateway's 10 s upstream deadline, so a longer outage is answered 503 by the service rather
// than 504 by the gateway (found by the 30 s outage of make faults).
const (
	retryWindow     = 5 * time.Second
	retryMinBackoff = 50 * time.Millisecond
	retryMaxBackoff = time.Second
)

// commitRetrying commits a batch, retrying while the database is unavailable (a killed
// connection, a failover) for up to retryWindow. A commit whose answer was lost may have
// succeeded, so before each retry the entries are looked up by id: found, they are taken as
// written (with the seq and hashes they got); the batch is one transaction, so it is all or
// nothing.
func (w *Writer) commitRetrying(entries []Entry, move bool) (batchResult, error) {
	out, err := w.commit(entries, move)
	deadline := time.Now().Add(retryWindow)
	for backoff := retryMinBackoff; err != nil && errs.KindOf(err) == errs.Unavailable && time.Now().Before(deadline); backoff = min(2*backoff, retryMaxBackoff) {
		t := time.NewTimer(backoff)
		select {
		case <-w.base.Done():
			t.Stop()
			return out, err
		case <-t.C:
		}
		_ = level.Warn(w.logger).Log("msg", "audit batch failed; retrying", "entries", len(entries), "err", err)
		found := false
		if len(entries) > 0 {
			found, err = w.written(entries)
		}
		if err == nil && !found {
			// A move whose commit answer was lost moved its entries (they are no longer
			// pending) or did not (they are moved now): either way nothing is chained twice.
			out, err = w.commit(entries, move)
		}
	}
	return out, err
}

// written reports whether entries are already in the table (a lost commit answer) and, if
// so, fills in their seq and hashes from it.
func (w *Writer) written(entries []Entry) (bool, error) {
	ctx, cancel := context.WithTimeout(w.base, w.timeout)
	defer cancel()
	ids := make([]string, len(entries))
	for i := range entries {
		ids[i] = entries[i].ID
	}
	q, args, err := sqlx.In(`SELECT id, seq, prev_hash, hash FROM `+w.table+` WHERE id IN (?)`, ids)
	if err != nil {
		return false, err
	}
	var rows []struct {
		ID       string `db:"id"`
		Seq      int64  `db:"seq"`
		PrevHash string `db:"prev_hash"`
		Hash     string `db:"hash"`
	}
	if err := w.d.SelectContext(ctx, &rows, w.d.Rebind(q), args...); err != nil {
		return false, db.Classify(err)
	}
	if len(rows) == 0 {
		return false, nil
	}
	if len(rows) != len(entries) {
		return false, errs.New(errs.Internal, "audit: a batch is partly in the table")
	}
	for _, r := range rows {
		for i := range entries {
			if entries[i].ID == r.ID {
				entries[i].Seq, entries[i].PrevHash, entries[i].Hash = r.Seq, r.PrevHash, r.Hash
			}
		}
	}
	return true, nil
}

// asUnavailable is the one error a failed batch gives its callers: whatever the cause, the
// entry was not recorded and the chain is untouched, so the request must not proceed as
// audited but may be retried. The cause stays attached for logs.
func asUnavailable(err error) error {
	if errs.KindOf(err) == errs.Unavailable {
		return err
	}
	return errs.Wrap(errs.Unavailable, "the audit log could not be written", err)
}

// commit writes entries in one transaction: lock the chain, read its tail, hash the batch
// onto it, insert, run the hooks, commit. It fills Seq, PrevHash and Hash in entries. On error
// the transaction is rolled back and nothing about the writer changes: the next batch reads
// the tail afresh, so a failure can never fork or gap the chain.
//
// On PostgreSQL a batch that moves no pending entries is pipelined (commitPipelined): the same
// transaction in two round trips instead of five.
func (w *Writer) commit(entries []Entry, move bool) (out batchResult, err error) {
	ctx, cancel := context.WithTimeout(w.base, w.timeout)
	defer cancel()
	defer func() {
		// A panicking hook must fail its batch, not kill the goroutine every request waits on.
		if p := recover(); p != nil {
			err = fmt.Errorf("audit: panic in batch: %v", p)
		}
	}()
	if !move && len(entries) > 0 && w.d.Dialect == db.Postgres {
		out, err = w.commitPipelined(ctx, entries)
		if err == nil {
			w.pipelined.Add(1)
		}
		return out, err
	}
	err = db.InTx(ctx, w.d, func(tx *sqlx.Tx) error {
		out = batchResult{}
		if w.d.Dialect == db.Postgres {
			// Serialises writers of this table across processes until commit. SQLite needs
			// nothing: its write transaction (BEGIN IMMEDIATE) is already exclusive.
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, w.lockKey); err != nil {
				return db.Classify(err)
			}
		}
		seq, prev := int64(0), genesisHash
		switch err := tx.QueryRowxContext(ctx, w.tailSQL).Scan(&seq, &prev); {
		case errors.Is(err, sql.ErrNoRows):
			seq, prev = 0, genesisHash
		case err != nil:
			return db.Classify(err)
		}
		var moved []pendingRow
		if move {
			var err error
			if moved, err = selectPending(ctx, tx, w.selectPendingSQL, len(w.extra), moveCap); err != nil {
				return err
			}
		}
		all := entries
		if len(moved) > 0 {
			all = make([]Entry, 0, len(moved)+len(entries))
			for i := range moved {
				all = append(all, moved[i].Entry)
			}
			all = append(all, entries...)
		}
		w.chain(all, seq, prev)
		if len(moved) > 0 {
			copy(entries, all[len(moved):])
			pseqs := make([]int64, len(moved))
			for i := range moved {
				pseqs[i] = moved[i].PSeq
			}
			q, args, err := sqlx.In(w.deletePendingSQL, pseqs)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, tx.Rebind(q), args...); err != nil {
				return db.Classify(err)
			}
		}
		var err error
		if out, err = w.write(ctx, tx, all, seq, prev); err != nil {
			return err
		}
		out.moved, out.total = len(moved), len(moved)
		return nil
	})
	return out, err
}

// commitPipelined commits entries in two round trips (db.Pipelined): the lock and the read of
// the tail, then the inserts, the hooks' statements and the commit. The chain is hashed between
// the two, onto the tail read under the lock, as commit's plain transaction does.
func (w *Writer) commitPipelined(ctx context.Context, entries []Entry) (out batchResult, err error) {
	seq, prev := int64(0), genesisHash
	err = w.d.Pipelined(ctx, func(p *db.Pipeline) error {
		if _, err := p.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, w.lockKey); err != nil {
			return err
		}
		p.QueryRow(w.tailSQL, func(row interface{ Scan(dest ...any) error }) error {
			if err := row.Scan(&seq, &prev); errors.Is(err, sql.ErrNoRows) {
				seq, prev = 0, genesisHash
			} else if err != nil {
				return err
			}
			return nil
		})
		return nil
	}, func(p *db.Pipeline) error {
		w.chain(entries, seq, prev)
		var err error
		out, err = w.write(ctx, p, entries, seq, prev)
		return err
	})
	return out, err
}

// chain numbers all after seq and hashes each onto the one before, the first onto prev.
func (w *Writer) chain(all []Entry, seq int64, prev string) {
	for i := range all {
		seq++
		all[i].Seq = seq
		all[i].PrevHash = prev
		all[i].Hash = chainHash(prev, &all[i])
		prev = all[i].Hash
	}
}

// write inserts all (already chained onto the tail seq, prev) through x, then runs the hooks:
// AfterBatch, and Checkpoint when one is due. It returns what the batch did.
func (w *Writer) write(ctx context.Context, x db.Execer, all []Entry, seq int64, prev string) (out batchResult, err error) {
	head, hash := seq, prev
	if len(all) > 0 {
		head, hash = all[len(all)-1].Seq, all[len(all)-1].Hash
	}
	for rest := all; len(rest) > 0; {
		n := min(len(rest), w.rowsPerStmt)
		if _, err := x.ExecContext(ctx, w.insertStmt(n), w.insertArgs(rest[:n])...); err != nil {
			return out, db.Classify(err)
		}
		rest = rest[n:]
	}
	if w.afterBatch != nil && len(all) > 0 {
		if err := w.afterBatch(ctx, x, all); err != nil {
			return out, err
		}
	}
	out.head = head
	if w.checkpoint != nil && head > w.cpSeq && (head-w.cpSeq >= w.cpEvery || time.Since(w.cpAt) >= w.cpInterval) {
		if err := w.checkpoint(ctx, x, head, hash); err != nil {
			return out, err
		}
		out.checkpointed = head
	}
	return out, nil
}

// insertStmt returns the INSERT for n rows, built once per n.
func (w *Writer) insertStmt(n int) string {
	if q, ok := w.insertSQL[n]; ok {
		return q
	}
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", numColumns+len(w.extra)), ", ") + ")"
	cols := strings.Join(append([]string{columns}, w.extra...), ", ")
	var b strings.Builder
	b.Grow(len(w.table) + len(cols) + 20 + n*(len(row)+2))
	b.WriteString("INSERT INTO ")
	b.WriteString(w.table)
	b.WriteString(" (" + cols + ") VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	q := w.d.Rebind(b.String())
	w.insertSQL[n] = q
	return q
}

func (w *Writer) insertArgs(entries []Entry) []any {
	args := make([]any, 0, len(entries)*(numColumns+len(w.extra)))
	for i := range entries {
		e := &entries[i]
		args = append(args, e.Seq, e.ID, w.d.Time(e.At), e.Actor, e.Role, e.Action, e.SubjectID,
			e.Outcome, e.RequestID, e.ClientAddress, e.PrevHash, e.Hash)
		for j := range w.extra {
			var v any // NULL where the entry has no value
			if j < len(e.Extra) {
				v = e.Extra[j]
			}
			args = append(args, v)
		}
	}
	return args
}
