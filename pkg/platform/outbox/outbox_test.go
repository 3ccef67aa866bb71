package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/broker"
	"github.com/pms/pms/pkg/platform/broker/brokertest"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/idempotency"
	"github.com/pms/pms/pkg/platform/outbox"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
	kafkatransport "github.com/pms/pms/transport/kafka"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

func producerFor(addr string) func() (sarama.SyncProducer, error) {
	return func() (sarama.SyncProducer, error) {
		return sarama.NewSyncProducer([]string{addr}, kafkatransport.NewConfig("outbox-test"))
	}
}

// startRelay runs a relay until the test ends, stopping it gracefully.
func startRelay(t *testing.T, ob *outbox.Outbox, o outbox.RelayOptions) *outbox.Relay {
	t.Helper()
	r := outbox.NewRelay(ob, o)
	done := make(chan error, 1)
	go func() { done <- r.Run() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := r.Stop(ctx); err != nil {
			t.Errorf("relay stop: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("relay run: %v", err)
		}
	})
	return r
}

// waitBacklog polls until the outbox has no pending row.
func waitBacklog(t *testing.T, r *outbox.Relay, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n, err := r.Backlog(context.Background())
		if err == nil && n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox backlog still %d (%v) after %s", n, err, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func add(t *testing.T, d *db.DB, ob *outbox.Outbox, msgs ...outbox.Message) {
	t.Helper()
	if err := db.InTx(context.Background(), d, func(tx *sqlx.Tx) error { return ob.Add(context.Background(), tx, msgs...) }); err != nil {
		t.Fatal(err)
	}
	ob.Wake()
}

// TestRelayCommitOnlyInOrder: a rolled-back transaction publishes nothing; every committed
// message is published exactly once, with its headers, in order per key, over several
// partitions and several relay rounds.
func TestRelayCommitOnlyInOrder(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		b := brokertest.Start(t)
		brokertest.CreateTopics(t, b.Addr(), 3, "ev")
		ob := outbox.New(d, outbox.Options{})
		reg := prometheus.NewRegistry()
		relay := startRelay(t, ob, outbox.RelayOptions{NewProducer: producerFor(b.Addr()), Batch: 7, Registerer: reg, Service: "test"})

		boom := errors.New("boom")
		err := db.InTx(context.Background(), d, func(tx *sqlx.Tx) error {
			if err := ob.Add(context.Background(), tx, outbox.Message{Topic: "ev", Key: "k0", Value: []byte("rolled-back")}); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		const keys, per = 5, 20
		for n := range per {
			for k := range keys {
				add(t, d, ob, outbox.Message{Topic: "ev", Key: fmt.Sprintf("k%d", k), Value: []byte(fmt.Sprintf("k%d:%02d", k, n)),
					Headers: map[string]string{"event-id": fmt.Sprintf("e-%d-%d", k, n)}})
			}
		}
		waitBacklog(t, relay, 20*time.Second)
		if got := brokertest.Count(t, b.Addr(), "ev"); got != keys*per {
			t.Fatalf("topic holds %d records, want exactly %d", got, keys*per)
		}
		msgs := brokertest.NewReader(t, b.Addr(), "ev").Read(keys*per, 10*time.Second)
		brokertest.ByPartitionOffset(msgs)
		next := map[string]int{}
		for _, m := range msgs {
			k := string(m.Key)
			want := fmt.Sprintf("%s:%02d", k, next[k])
			if string(m.Value) != want {
				t.Fatalf("key %s: got %q, want %q (order per key broken or rollback published)", k, m.Value, want)
			}
			if brokertest.Header(m, "event-id") != fmt.Sprintf("e-%s-%d", strings.TrimPrefix(k, "k"), next[k]) {
				t.Fatalf("headers lost: %v", m.Headers)
			}
			next[k]++
		}
		if relay.Published() != keys*per {
			t.Fatalf("relay says %d published", relay.Published())
		}
		if v := testutil.ToFloat64(gauge(t, reg, "pms_test_outbox_published_total")); v != keys*per {
			t.Fatalf("published counter %v", v)
		}
	})
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	return collectorFunc(func() float64 {
		m := metricNamed(t, reg, name)
		if m.GetCounter() != nil {
			return m.GetCounter().GetValue()
		}
		return m.GetGauge().GetValue()
	})
}

// metricNamed gathers reg and returns the first series of the metric called name, failing
// the test when there is none: what gauge and histogramCount read.
func metricNamed(t *testing.T, reg *prometheus.Registry, name string) *dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0]
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}

// collectorFunc is a one-value gauge collector, so testutil.ToFloat64 can read a gathered value.
type collectorFunc func() float64

func (f collectorFunc) Describe(ch chan<- *prometheus.Desc) { ch <- desc }
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, f())
}

var desc = prometheus.NewDesc("x", "x", nil, nil)

// TestRelaySurvivesBrokerOutage: with the broker stopped the relay keeps trying and the
// backlog gauge shows what waits; once the broker is back on the same port everything is
// published.
func TestRelaySurvivesBrokerOutage(t *testing.T) {
	d := dbtest.Open(t, db.SQLite, migrations.Patient())
	dir := t.TempDir()
	b := brokertest.Start(t, broker.Options{DataDir: dir})
	addr := b.Addr()
	brokertest.CreateTopics(t, addr, 2, "ev")
	ob := outbox.New(d, outbox.Options{})
	reg := prometheus.NewRegistry()
	relay := startRelay(t, ob, outbox.RelayOptions{NewProducer: producerFor(addr), Registerer: reg, Service: "test", MaxBackoff: 200 * time.Millisecond})
	add(t, d, ob, outbox.Message{Topic: "ev", Key: "a", Value: []byte("before")})
	waitBacklog(t, relay, 10*time.Second)

	b.Close()
	for i := range 50 {
		add(t, d, ob, outbox.Message{Topic: "ev", Key: fmt.Sprint(i % 4), Value: []byte(fmt.Sprint(i))})
	}
	deadline := time.Now().Add(20 * time.Second)
	for testutil.ToFloat64(gauge(t, reg, "pms_test_outbox_backlog")) != 50 || testutil.ToFloat64(gauge(t, reg, "pms_test_outbox_failures_total")) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("backlog gauge never showed the 50 waiting events")
		}
		time.Sleep(20 * time.Millisecond)
	}
	b2, err := broker.Start(broker.Options{Addr: addr, DataDir: dir})
	if err != nil {
		t.Fatalf("restart on %s: %v", addr, err)
	}
	t.Cleanup(b2.Close)
	waitBacklog(t, relay, 30*time.Second)
	if got := brokertest.Count(t, addr, "ev"); got < 51 {
		t.Fatalf("topic holds %d records, want at least 51", got)
	}
}

// TestMarkProcessed: the first record of an event id wins; a rolled-back one does not count.
func TestMarkProcessed(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		mark := func(id string, rollback bool) bool {
			return markInTx(t, d, rollback, func(tx *sqlx.Tx) (bool, error) { return outbox.MarkProcessed(ctx, tx, d, "c1", id) })
		}
		if !mark("e1", true) || !mark("e1", false) || mark("e1", false) {
			t.Fatal("MarkProcessed: want first (rolled back), first, then repeat")
		}
	})
}

// markInTx runs mark in a transaction, rolled back when rollback is set, and returns what it
// returned.
func markInTx[T any](t *testing.T, d *db.DB, rollback bool, mark func(tx *sqlx.Tx) (T, error)) T {
	t.Helper()
	var first T
	err := db.InTx(context.Background(), d, func(tx *sqlx.Tx) error {
		var err error
		first, err = mark(tx)
		if err == nil && rollback {
			return errors.New("rollback")
		}
		return err
	})
	if err != nil && !rollback {
		t.Fatal(err)
	}
	return first
}

// TestMarkProcessedBatch: in one batch an id is first only at its first place and not when
// an earlier batch (or MarkProcessed) recorded it, or another consumer's record does not
// count; a rolled-back batch records nothing.
func TestMarkProcessedBatch(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		mark := func(consumer string, rollback bool, ids ...string) []bool {
			return markInTx(t, d, rollback, func(tx *sqlx.Tx) ([]bool, error) {
				return outbox.MarkProcessedBatch(ctx, tx, d, consumer, ids)
			})
		}
		if err := db.InTx(ctx, d, func(tx *sqlx.Tx) error {
			_, err := outbox.MarkProcessed(ctx, tx, d, "c1", "e0")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if got := mark("c1", true, "e1", "e2"); fmt.Sprint(got) != "[true true]" {
			t.Fatalf("rolled-back batch: %v", got)
		}
		if got := mark("c1", false, "e1", "e0", "e2", "e1", "e3"); fmt.Sprint(got) != "[true false true false true]" {
			t.Fatalf("batch: %v, want [true false true false true]", got)
		}
		if got := mark("c1", false, "e3", "e4"); fmt.Sprint(got) != "[false true]" {
			t.Fatalf("second batch: %v", got)
		}
		if got := mark("c2", false, "e1"); fmt.Sprint(got) != "[true]" {
			t.Fatalf("another consumer: %v", got)
		}
		if got := mark("c1", false); len(got) != 0 {
			t.Fatalf("empty batch: %v", got)
		}
	})
}

// TestReplies: the first stored reply wins.
func TestReplies(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := idempotency.NewReplies(d)
		if _, ok, err := s.Get(ctx, "s", "k"); ok || err != nil {
			t.Fatalf("empty store: %v %v", ok, err)
		}
		if err := s.Put(ctx, "s", "k", idempotency.Reply{RequestHash: "h1", Status: 201, Body: []byte(`{"a":1}`)}); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, "s", "k", idempotency.Reply{RequestHash: "h2", Status: 500, Body: []byte(`x`)}); err != nil {
			t.Fatal(err)
		}
		r, ok, err := s.Get(ctx, "s", "k")
		if err != nil || !ok || r.RequestHash != "h1" || r.Status != 201 || string(r.Body) != `{"a":1}` {
			t.Fatalf("got %+v %v %v", r, ok, err)
		}
	})
}

// TestAuditHook: every committed audit entry becomes one AuditEvent row in the same
// transaction; a failing hook rolls the batch back (no entry, no event).
func TestAuditHook(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		ob := outbox.New(d, outbox.Options{})
		w := audit.NewWriter(d, audit.Options{AfterBatch: audit.OutboxHook(ob, "patient")})
		defer w.Close(ctx)
		e, err := w.Write(ctx, audit.Entry{Actor: "u1", Action: "read", SubjectID: "p1", Outcome: "success", RequestID: "r1"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(ctx, audit.Entry{Actor: "u2", Action: "search", Outcome: "success"}); err != nil {
			t.Fatal(err)
		}
		var rows []struct {
			Key   string `db:"msg_key"`
			Value []byte `db:"value"`
			Topic string `db:"topic"`
		}
		if err := d.SelectContext(ctx, &rows, `SELECT msg_key, value, topic FROM outbox ORDER BY id`); err != nil {
			t.Fatal(err)
		}
		if len(rows) != 2 || rows[0].Key != "p1" || rows[1].Key != "u2" || rows[0].Topic != "audit" {
			t.Fatalf("outbox rows %+v", rows)
		}
		var ev eventsv1.AuditEvent
		if err := proto.Unmarshal(rows[0].Value, &ev); err != nil || ev.EventId != e.ID || ev.Seq != e.Seq || ev.Hash != e.Hash || ev.Service != "patient" {
			t.Fatalf("event %+v %v", &ev, err)
		}

		bad := audit.NewWriter(d, audit.Options{AfterBatch: func(context.Context, db.Execer, []audit.Entry) error { return errors.New("no") }})
		defer bad.Close(ctx)
		if err := bad.Append(ctx, audit.Entry{Actor: "u3", Action: "read"}); err == nil {
			t.Fatal("failing hook did not fail the batch")
		}
		var n int
		if err := d.GetContext(ctx, &n, `SELECT count(*) FROM audit_log`); err != nil || n != 2 {
			t.Fatalf("audit rows %d %v", n, err)
		}
	})
}

// TestRelaysAcrossProcesses (PostgreSQL): two relays on one schema, as two replicas of a
// service would run, neither polling. Rows written through either process's outbox are
// published promptly, once each: one relay at a time holds the outbox, and a writer whose
// own relay does not hold it passes the wake-up on with NOTIFY.
func TestRelaysAcrossProcesses(t *testing.T) {
	d1 := dbtest.Open(t, db.Postgres, migrations.Patient())
	d2, err := db.Open(context.Background(), dbtest.PostgresURL(), d1.Schema)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	b := brokertest.Start(t)
	brokertest.CreateTopics(t, b.Addr(), 2, "ev")
	ob1, ob2 := outbox.New(d1, outbox.Options{}), outbox.New(d2, outbox.Options{})
	r1 := startRelay(t, ob1, outbox.RelayOptions{NewProducer: producerFor(b.Addr()), Poll: time.Hour})
	r2 := startRelay(t, ob2, outbox.RelayOptions{NewProducer: producerFor(b.Addr()), Poll: time.Hour})
	const n = 40
	for i := range n {
		d, ob := d1, ob1
		if i%2 == 1 {
			d, ob = d2, ob2
		}
		add(t, d, ob, outbox.Message{Topic: "ev", Key: fmt.Sprint(i % 3), Value: []byte(fmt.Sprint(i))})
	}
	waitBacklog(t, r1, 20*time.Second)
	if got := brokertest.Count(t, b.Addr(), "ev"); got != n {
		t.Fatalf("topic holds %d records, want exactly %d", got, n)
	}
	if r1.Published()+r2.Published() != n {
		t.Fatalf("relays published %d + %d", r1.Published(), r2.Published())
	}
}

// TestAddRefusesOversizedMessage: a message the broker would refuse never becomes a row that
// blocks its key; the transaction fails instead.
func TestAddRefusesOversizedMessage(t *testing.T) {
	d := dbtest.Open(t, db.SQLite, migrations.Patient())
	ob := outbox.New(d, outbox.Options{})
	err := db.InTx(context.Background(), d, func(tx *sqlx.Tx) error {
		return ob.Add(context.Background(), tx, outbox.Message{Topic: "ev", Value: make([]byte, outbox.MaxMessageBytes+1)})
	})
	if err == nil {
		t.Fatal("oversized message accepted")
	}
	var n int
	if err := d.GetContext(context.Background(), &n, `SELECT count(*) FROM outbox`); err != nil || n != 0 {
		t.Fatalf("outbox rows %d %v", n, err)
	}
}

// TestConsumerOffsetsAndFences: MarkApplied records, in the applying transaction, the next
// offset of the message in the context (never moving it back, nothing when the transaction
// rolls back); fences are kept and hold exactly their interval of their topic. On both
// dialects (billing's database has the fence set).
func TestConsumerOffsetsAndFences(t *testing.T) {
	dbtest.Each(t, migrations.Billing(), func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		apply := func(offset int64, id string, fail bool) {
			c := outbox.WithPosition(ctx, outbox.Position{Topic: "patient", Partition: 2, Offset: offset})
			err := db.InTx(c, d, func(tx *sqlx.Tx) error {
				if _, err := outbox.MarkApplied(c, tx, d, "c", id); err != nil {
					return err
				}
				if fail {
					return errors.New("the effect failed")
				}
				return nil
			})
			if (err != nil) != fail {
				t.Fatal(err)
			}
		}
		apply(7, "e7", false)
		apply(9, "e9", true)  // rolled back: not applied, so not recorded
		apply(5, "e5", false) // an older message replayed: the offset does not go back
		got, err := outbox.ConsumerOffsets(ctx, d, "c")
		if err != nil || got["patient"][2] != 8 || len(got) != 1 {
			t.Fatalf("offsets %v %v, want patient/2 at 8", got, err)
		}
		if other, _ := outbox.ConsumerOffsets(ctx, d, "other"); len(other) != 0 {
			t.Fatalf("another consumer's offsets: %v", other)
		}
		// A fenced message moves the offsets past it without applying it: its event id stays
		// unprocessed, so the same event published again after the fence still applies.
		if err := outbox.SkipOffset(ctx, d, "c", outbox.Position{Topic: "patient", Partition: 2, Offset: 11}); err != nil {
			t.Fatal(err)
		}
		if got, err := outbox.ConsumerOffsets(ctx, d, "c"); err != nil || got["patient"][2] != 12 {
			t.Fatalf("offsets after a skip %v %v, want patient/2 at 12", got, err)
		}
		if err := db.InTx(ctx, d, func(tx *sqlx.Tx) error {
			first, err := outbox.MarkApplied(outbox.WithPosition(ctx, outbox.Position{Topic: "patient", Partition: 2, Offset: 30}), tx, d, "c", "e11")
			if err == nil && !first {
				t.Error("an event whose fenced copy was skipped counts as processed")
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		after := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
		if err := outbox.AddFence(ctx, d, outbox.Fence{Topic: "patient", After: after, Until: after.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		fences, err := outbox.Fences(ctx, d)
		if err != nil || len(fences) != 1 {
			t.Fatalf("fences %v %v", fences, err)
		}
		f := fences[0]
		for _, c := range []struct {
			topic string
			at    time.Time
			want  bool
		}{
			{"patient", after, false}, {"patient", after.Add(time.Millisecond), true}, {"patient", after.Add(time.Hour), true},
			{"patient", after.Add(time.Hour + time.Millisecond), false}, {"billing", after.Add(time.Minute), false},
		} {
			if got := f.Holds(c.topic, c.at); got != c.want {
				t.Errorf("Holds(%s, %v) = %v", c.topic, c.at, got)
			}
		}
		// A recovery fences from the recovered server's last replayed commit to its start;
		// a server that replayed nothing (SQLite always; the test server as a rule) fences
		// nothing. ops/restore TestPointInTimeRestore proves it on a recovered cluster.
		want, recovered, err := db.LastRecovery(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		r, fenced, err := outbox.FenceRecovery(ctx, d, []string{"patient", "audit"})
		if err != nil || fenced != recovered || r != want {
			t.Fatalf("FenceRecovery: %+v %v %v; the server's recovery %+v %v", r, fenced, err, want, recovered)
		}
		if fences, _ = outbox.Fences(ctx, d); recovered && len(fences) != 3 || !recovered && len(fences) != 1 {
			t.Fatalf("fences after FenceRecovery (recovered %v): %+v", recovered, fences)
		}
	})
}

// TestRelayLingers: the commits that land while the relay lingers after a wake-up go out in
// one round (issue 20 item 7: at a moderate load each commit made a round of its own).
// Five transactions of 50 ms each, one after the other, inside a 2 s linger: one round,
// or two if the relay's first round, which runs as it starts, was late enough to catch the
// first commit. Without the linger each row goes out alone, 50 ms before the next commits:
// five rounds.
func TestRelayLingers(t *testing.T) {
	d := dbtest.Open(t, db.Postgres, migrations.Patient())
	b := brokertest.Start(t)
	brokertest.CreateTopics(t, b.Addr(), 1, "ev")
	ob := outbox.New(d, outbox.Options{})
	reg := prometheus.NewRegistry()
	relay := startRelay(t, ob, outbox.RelayOptions{NewProducer: producerFor(b.Addr()), Registerer: reg, Service: "test",
		Linger: 2 * time.Second, Poll: time.Hour}) // no poll round in the middle
	const commits = 5
	for i := range commits {
		err := db.InTx(context.Background(), d, func(tx *sqlx.Tx) error {
			if _, err := tx.Exec(`SELECT pg_sleep(0.05)`); err != nil { // a transaction that takes a while
				return err
			}
			return ob.Add(context.Background(), tx, outbox.Message{Topic: "ev", Key: "k", Value: []byte(strconv.Itoa(i))})
		})
		if err != nil {
			t.Fatal(err)
		}
		ob.Wake()
	}
	waitBacklog(t, relay, 20*time.Second)
	if got := brokertest.Count(t, b.Addr(), "ev"); got != commits {
		t.Fatalf("topic holds %d records, want %d", got, commits)
	}
	if rounds := histogramCount(t, reg, "pms_test_outbox_batch_size"); rounds > 2 {
		t.Errorf("%d commits within the linger went out in %d rounds, want 1 (2 with the starting round)", commits, rounds)
	}
}

// histogramCount is how many observations the registry's histogram called name holds.
func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	return metricNamed(t, reg, name).GetHistogram().GetSampleCount()
}
