package patient

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/prometheus/client_golang/prometheus"
)

// getBatcher coalesces concurrent reads by id into one statement (issue 20 item 2). A read by
// id on its own paid a round trip, an executor start-up in PostgreSQL and a scan of its own:
// about 90 µs of CPU between pms and PostgreSQL, a third of an audited read. One statement
// runs at a time; the reads that arrive meanwhile wait in a queue, and when it finishes the
// next statement fetches the whole queue with one `id = ANY($1)` (SQLite: json_each), so a
// burst of N reads costs one statement rather than N. With nothing running a read goes at
// once, as before. One runner beat two and four on `pms all` (ops/bench/wrk-patient.sh,
// 2 cores): more runners made smaller batches, more CPU per read and a higher p99; a
// statement of 256 ids takes about a millisecond, far from a replica's limit.
//
// A read still sees every change committed before it arrived: it is queued first, and the
// statement that serves it starts after it was taken off the queue (READ COMMITTED takes the
// statement's snapshot when it starts; SQLite reads the last commit).
type getBatcher struct {
	d      *db.DB
	oneSQL string // by one id: what a lone read runs, planned once (pgx's statement cache)
	anySQL string // by a list of ids
	// runners bounds the statements running at once (1; tests change it); a queue forms
	// only behind them.
	runners int

	mu      sync.Mutex
	queue   []*getCall
	running int
	// reads and statements count the reads asked for and the statements that served them
	// (RegisterReadMetrics; the tests that prove a queue took one statement).
	reads, statements atomic.Int64
}

// getCall is one read waiting for its row. done is closed once row and err are set (err
// sql.ErrNoRows when there is none, as a lone statement's Scan says, for rowResult).
type getCall struct {
	id   string
	row  patientRow
	err  error
	done chan struct{}
}

const (
	// getBatchMax caps the ids of one statement: enough to drain a queue of every client a
	// replica serves, small enough that one statement stays short.
	getBatchMax = 256
	// getTimeout bounds one batch statement. It is not any caller's deadline: a caller that
	// gives up leaves its read to finish for the others in the batch.
	getTimeout = 10 * time.Second
)

func newGetBatcher(d *db.DB) *getBatcher {
	b := &getBatcher{d: d, oneSQL: d.Rebind(`SELECT ` + patientColumns + ` FROM patients WHERE id = ?`), runners: 1}
	switch d.Dialect {
	case db.Postgres:
		b.anySQL = `SELECT ` + patientColumns + ` FROM patients WHERE id = ANY($1)`
	default:
		b.anySQL = `SELECT ` + patientColumns + ` FROM patients WHERE id IN (SELECT value FROM json_each(?))`
	}
	return b
}

// get returns the row of id, sql.ErrNoRows when there is none. An id that is not a canonical
// UUID (ParseID's form) is read on its own, so it can neither fail a batch nor miss its row.
func (b *getBatcher) get(ctx context.Context, id string) (patientRow, error) {
	b.reads.Add(1)
	if u, err := uuid.Parse(id); err != nil || u.String() != id {
		b.statements.Add(1)
		return b.getOne(ctx, id)
	}
	b.mu.Lock()
	if b.running < b.runners && len(b.queue) == 0 {
		// Nothing running or waiting: read at once on the caller's goroutine and under its
		// context, as before batching (a hand-off to a runner cost a lone read a quarter
		// more, BenchmarkStoreGet/serial); whatever queued meanwhile goes to a runner.
		b.running++
		b.mu.Unlock()
		defer b.release() // deferred: a turn never taken back would leave every later read queued
		b.statements.Add(1)
		return b.getOne(ctx, id)
	}
	c := &getCall{id: id, done: make(chan struct{})}
	b.queue = append(b.queue, c)
	start := b.running < b.runners
	if start {
		b.running++
	}
	b.mu.Unlock()
	if start {
		go b.run()
	}
	select {
	case <-c.done:
		return c.row, c.err
	case <-ctx.Done():
		return patientRow{}, db.Classify(ctx.Err())
	}
}

func (b *getBatcher) getOne(ctx context.Context, id string) (patientRow, error) {
	var r patientRow
	err := b.d.QueryRowxContext(ctx, b.oneSQL, id).Scan(r.dest()...)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		err = db.Classify(err)
	}
	return r, err
}

// release ends a lone read's turn: a runner takes over the reads queued behind it.
func (b *getBatcher) release() {
	b.mu.Lock()
	more := len(b.queue) > 0
	if !more {
		b.running--
	}
	b.mu.Unlock()
	if more {
		go b.run()
	}
}

// run serves the queue until it is empty, a batch at a time.
func (b *getBatcher) run() {
	for {
		b.mu.Lock()
		n := min(len(b.queue), getBatchMax)
		if n == 0 {
			b.running--
			b.mu.Unlock()
			return
		}
		batch := b.queue[:n:n]
		if n == len(b.queue) {
			b.queue = nil
		} else {
			b.queue = append([]*getCall(nil), b.queue[n:]...)
		}
		b.mu.Unlock()
		b.fetch(batch)
	}
}

// fetch reads the rows of batch in one statement and hands each call its own.
func (b *getBatcher) fetch(batch []*getCall) {
	ctx, cancel := context.WithTimeout(context.Background(), getTimeout)
	defer cancel()
	b.statements.Add(1)
	defer func() {
		// A panic fails the batch rather than the process: the runner is not a request's
		// goroutine, which net/http would have recovered.
		if p := recover(); p != nil {
			for _, c := range batch {
				c.err = errs.Wrap(errs.Internal, "internal error", fmt.Errorf("patient: panic reading by id: %v", p))
			}
		}
		for _, c := range batch {
			close(c.done)
		}
	}()
	if len(batch) == 1 {
		c := batch[0]
		c.row, c.err = b.getOne(ctx, c.id)
		return
	}
	byID := make(map[string][]*getCall, len(batch))
	ids := make([]string, 0, len(batch))
	for _, c := range batch {
		if _, dup := byID[c.id]; !dup {
			ids = append(ids, c.id)
		}
		byID[c.id] = append(byID[c.id], c)
	}
	// Padded: otherwise a batch of under ten ids, most of them under load, was planned again
	// on every call (db.GenericPlanArray; TestGetBatchKeepsGenericPlan).
	var arg any = db.GenericPlanArray(ids)
	if b.d.Dialect != db.Postgres {
		list, _ := json.Marshal(ids) // strings always marshal
		arg = string(list)
	}
	for _, c := range batch {
		c.err = sql.ErrNoRows // until its row comes
	}
	fail := func(err error) {
		for _, c := range batch {
			c.err = err
		}
	}
	rows, err := b.d.QueryContext(ctx, b.anySQL, arg)
	if err != nil {
		fail(db.Classify(err))
		return
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		var r patientRow
		if err := rows.Scan(r.dest()...); err != nil {
			fail(errs.Wrap(errs.Internal, "internal error", err))
			return
		}
		for _, c := range byID[r.ID] {
			c.row, c.err = r, nil
		}
	}
	if err := rows.Err(); err != nil {
		fail(db.Classify(err))
	}
}

// RegisterReadMetrics exposes how reads by id are batched: their ratio is the reads one
// statement serves (1 when idle, more under load), which an operator reads against the
// database's load before suspecting the batching.
func (s *Store) RegisterReadMetrics(reg prometheus.Registerer) {
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "pms", Subsystem: "patient", Name: "reads_by_id_total",
			Help: "Reads of one patient record by id (GET /patients/{id}, the billing reads, a duplicate check's subject).",
		}, func() float64 { return float64(s.reads.reads.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "pms", Subsystem: "patient", Name: "read_statements_total",
			Help: "Statements that served the reads by id: concurrent reads share one (store_get.go).",
		}, func() float64 { return float64(s.reads.statements.Load()) }),
	)
}
