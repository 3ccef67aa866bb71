package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/platform/broker/brokertest"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/outbox"
)

// failingProducer is a real producer that, on its failOn-th SendMessages call, keeps back the
// message at index fail and reports it failed, sending the others: what sarama reports when
// one produce request ran out of retries while later ones went through. It is a wrapper
// because no broker can be made to refuse one chosen record on demand.
type failingProducer struct {
	sarama.SyncProducer
	calls  *atomic.Int32
	failOn int32
	fail   int
}

func (p failingProducer) SendMessages(msgs []*sarama.ProducerMessage) error {
	if p.calls.Add(1) != p.failOn || len(msgs) <= p.fail {
		return p.SyncProducer.SendMessages(msgs)
	}
	kept := msgs[p.fail]
	rest := append(slices.Clone(msgs[:p.fail]), msgs[p.fail+1:]...)
	if err := p.SyncProducer.SendMessages(rest); err != nil {
		return err
	}
	return sarama.ProducerErrors{{Msg: kept, Err: errors.New("injected: retries ran out")}}
}

// TestRelayPartialFailureKeepsOrder: a backlog larger than one round, relayed in small
// pipelined batches, with one message of the third batch refused while the messages after
// it went through. The refused message and every later one are sent again, so on the topic
// the last copy of each of a key's events comes in the order of the changes (a consumer that
// keeps the newest version ends with the newest change), and every event is there. Marking
// the acknowledged messages after the refused one (the relay before issue 20) left the
// refused event last.
func TestRelayPartialFailureKeepsOrder(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		b := brokertest.Start(t)
		brokertest.CreateTopics(t, b.Addr(), 1, "ev")
		ob := outbox.New(d, outbox.Options{})
		const keys, per, batch = 3, 60, 7 // 180 rows: 26 batches, more than one round
		var msgs []outbox.Message
		for n := range per {
			for k := range keys {
				msgs = append(msgs, outbox.Message{Topic: "ev", Key: fmt.Sprintf("k%d", k), Value: []byte(fmt.Sprintf("k%d:%02d", k, n))})
			}
		}
		add(t, d, ob, msgs...)
		calls := new(atomic.Int32)
		real := producerFor(b.Addr())
		relay := startRelay(t, ob, outbox.RelayOptions{Batch: batch, MaxBackoff: 50 * time.Millisecond,
			NewProducer: func() (sarama.SyncProducer, error) {
				p, err := real()
				return failingProducer{SyncProducer: p, calls: calls, failOn: 3, fail: 2}, err
			}})
		waitBacklog(t, relay, 20*time.Second)

		got := brokertest.ReadAll(t, b.Addr(), "ev")
		brokertest.ByPartitionOffset(got)
		if len(got) <= keys*per {
			t.Fatalf("topic holds %d records: the refused message was not sent again (want more than %d)", len(got), keys*per)
		}
		// The last copy of each event, per key, in topic order.
		last := map[string][]string{}
		seen := map[string]bool{}
		for i := len(got) - 1; i >= 0; i-- {
			v := string(got[i].Value)
			if !seen[v] {
				seen[v] = true
				last[string(got[i].Key)] = append(last[string(got[i].Key)], v)
			}
		}
		for k := range keys {
			key := fmt.Sprintf("k%d", k)
			vs := last[key]
			slices.Reverse(vs)
			if len(vs) != per {
				t.Fatalf("key %s: %d distinct events on the topic, want %d", key, len(vs), per)
			}
			for n, v := range vs {
				if want := fmt.Sprintf("%s:%02d", key, n); v != want {
					t.Fatalf("key %s: last copies out of order at %d: %q, want %q (all: %v)", key, n, v, want, vs)
				}
			}
		}
	})
}

// TestPruneByID: the relay deletes published rows by id range, not through an index on
// published_at (which every mark would have to update): a pass deletes a row only once a
// pass older than the retention noted an id at or above it, and only if it was published
// before the retention's cutoff. Pending rows and rows written after that pass stay.
func TestPruneByID(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		ob := outbox.New(d, outbox.Options{})
		ids := func() []int64 {
			var out []int64
			if err := d.SelectContext(ctx, &out, `SELECT id FROM outbox ORDER BY id`); err != nil {
				t.Fatal(err)
			}
			return out
		}
		publish := func(at time.Time, rows ...int64) {
			for _, id := range rows {
				if _, err := d.ExecContext(ctx, d.Rebind(`UPDATE outbox SET published_at = ? WHERE id = ?`), d.Time(at), id); err != nil {
					t.Fatal(err)
				}
			}
		}
		t0 := time.Now().UTC()
		add(t, d, ob, outbox.Message{Topic: "ev", Value: []byte("a1")}, outbox.Message{Topic: "ev", Value: []byte("a2")},
			outbox.Message{Topic: "ev", Value: []byte("a3")})
		a := ids()
		publish(t0.Add(-2*time.Hour), a[0], a[1]) // a[2] stays pending
		r := outbox.NewRelay(ob, outbox.RelayOptions{Retention: time.Hour})
		if n, err := r.Prune(ctx, t0); err != nil || n != 0 {
			t.Fatalf("first pass deleted %d, %v: no pass is older than the retention yet", n, err)
		}
		add(t, d, ob, outbox.Message{Topic: "ev", Value: []byte("b1")})
		b := ids()[3:]
		publish(t0.Add(-2*time.Hour), b...) // published "long ago", but written after the first pass
		if n, err := r.Prune(ctx, t0.Add(61*time.Minute)); err != nil || n != 2 {
			t.Fatalf("second pass deleted %d, %v: want the 2 published rows the first pass covered", n, err)
		}
		if got := ids(); !slices.Equal(got, append([]int64{a[2]}, b...)) {
			t.Fatalf("rows left %v, want the pending one %d and the later one %v", got, a[2], b)
		}
		publish(t0.Add(90*time.Minute), a[2])
		if n, err := r.Prune(ctx, t0.Add(122*time.Minute)); err != nil || n != 1 {
			t.Fatalf("third pass deleted %d, %v: want only the later one (the other was published within the retention)", n, err)
		}
		if got := ids(); !slices.Equal(got, []int64{a[2]}) {
			t.Fatalf("rows left %v, want %d", got, a[2])
		}
		if n, err := r.Prune(ctx, t0.Add(151*time.Minute)); err != nil || n != 1 || len(ids()) != 0 {
			t.Fatalf("fourth pass deleted %d, %v, left %v", n, err, ids())
		}
	})
}

// TestRelayFloorWaitsForOpenTransactions: the relay reads above a floor of published ids, and
// the floor never passes a row whose transaction is still open, however many later rows
// commit and are published around it; once that transaction commits its row is published.
// The floor does rise (else the relay would still walk every marked row from the start).
func TestRelayFloorWaitsForOpenTransactions(t *testing.T) {
	d, ob, relay, addr := floorSetup(t)
	ctx := context.Background()
	published := func(ids ...int64) bool {
		var n int
		q, args, err := sqlx.In(`SELECT count(*) FROM outbox WHERE published_at IS NOT NULL AND id IN (?)`, ids)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.GetContext(ctx, &n, d.Rebind(q), args...); err != nil {
			t.Fatal(err)
		}
		return n == len(ids)
	}
	lastID := func() int64 {
		var id int64
		if err := d.GetContext(ctx, &id, `SELECT max(id) FROM outbox`); err != nil {
			t.Fatal(err)
		}
		return id
	}
	// until polls cond, waking the relay, so that it runs round after round.
	until := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 20 s (floor %d)", what, relay.Floor())
			}
			ob.Wake()
			time.Sleep(5 * time.Millisecond)
		}
	}

	add(t, d, ob, outbox.Message{Topic: "ev", Key: "a", Value: []byte("first")})
	first := lastID()
	until("the floor rises to a published row", func() bool { return relay.Floor() >= first })

	open, err := d.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = open.Rollback() }()
	if err := ob.Add(ctx, open, outbox.Message{Topic: "ev", Key: "b", Value: []byte("late")}); err != nil {
		t.Fatal(err)
	}
	var late int64
	if err := open.GetContext(ctx, &late, `SELECT max(id) FROM outbox`); err != nil {
		t.Fatal(err)
	}
	var after []int64
	for i := range 20 {
		add(t, d, ob, outbox.Message{Topic: "ev", Key: fmt.Sprint(i % 3), Value: []byte(fmt.Sprint(i))})
		after = append(after, lastID())
		until("a row committed after the open one is published", func() bool { return published(after[len(after)-1]) })
	}
	if f := relay.Floor(); f >= late {
		t.Fatalf("floor %d passed row %d, whose transaction is still open", f, late)
	}
	if err := open.Commit(); err != nil {
		t.Fatal(err)
	}
	ob.Wake()
	until("the row of the transaction that was open is published", func() bool { return published(late) })
	until("the floor rises past every row", func() bool { return relay.Floor() >= after[len(after)-1] })
	if got := brokertest.Count(t, addr, "ev"); got != 22 {
		t.Fatalf("topic holds %d records, want 22", got)
	}
}

// TestRelayFloorDuringDrain: a round that stops at its batch limit with rows still pending
// raises the floor only to the last row it published, not to the highest settled id, so a
// drain many rounds long publishes every row (counted in the table, not through the relay's
// Backlog, which reads above the floor).
func TestRelayFloorDuringDrain(t *testing.T) {
	d := dbtest.Open(t, db.Postgres, migrations.Patient())
	b := brokertest.Start(t)
	brokertest.CreateTopics(t, b.Addr(), 2, "ev")
	ob := outbox.New(d, outbox.Options{})
	const n = 300
	msgs := make([]outbox.Message, n)
	for i := range msgs {
		msgs[i] = outbox.Message{Topic: "ev", Key: fmt.Sprint(i % 5), Value: []byte(fmt.Sprint(i))}
	}
	add(t, d, ob, msgs...)
	relay := startRelay(t, ob, outbox.RelayOptions{NewProducer: producerFor(b.Addr()), Batch: 3, Poll: 20 * time.Millisecond})
	waitNonePending(t, d, ob, relay)
	if got := brokertest.Count(t, b.Addr(), "ev"); got != n {
		t.Fatalf("topic holds %d records, want %d", got, n)
	}
}

// TestRelayFloorXidOrder: a transaction that got its xid after another's but drew its row's
// id first, and is still open when the other commits, is not skipped by the floor. (A floor
// settled on the snapshot's xmax, one past the latest completed xid, skipped it: the bench
// lost 4 events in 50,000 so.)
func TestRelayFloorXidOrder(t *testing.T) {
	d, ob, relay, _ := floorSetup(t)
	ctx := context.Background()
	begin := func() *sqlx.Tx {
		tx, err := d.BeginTxx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tx.Rollback() })
		return tx
	}
	idOf := func(tx *sqlx.Tx) int64 {
		var id int64
		if err := tx.GetContext(ctx, &id, `SELECT max(id) FROM outbox`); err != nil {
			t.Fatal(err)
		}
		return id
	}
	early := begin() // takes its xid first
	if _, err := early.ExecContext(ctx, `SELECT pg_current_xact_id()`); err != nil {
		t.Fatal(err)
	}
	late := begin() // a later xid, but the lower id
	if err := ob.Add(ctx, late, outbox.Message{Topic: "ev", Key: "late", Value: []byte("late")}); err != nil {
		t.Fatal(err)
	}
	lateID := idOf(late)
	if err := ob.Add(ctx, early, outbox.Message{Topic: "ev", Key: "early", Value: []byte("early")}); err != nil {
		t.Fatal(err)
	}
	earlyID := idOf(early)
	if err := early.Commit(); err != nil {
		t.Fatal(err)
	}
	// Rounds publish the early row and go on noting and settling while late stays open.
	for i := range 20 {
		before := relay.Published()
		add(t, d, ob, outbox.Message{Topic: "ev", Key: "more", Value: []byte(fmt.Sprint(i))})
		for deadline := time.Now().Add(20 * time.Second); relay.Published() == before; {
			if time.Now().After(deadline) {
				t.Fatal("a committed row was not published within 20 s")
			}
			ob.Wake()
			time.Sleep(5 * time.Millisecond)
		}
	}
	if f := relay.Floor(); f >= lateID {
		t.Fatalf("floor %d passed row %d of a transaction still open (the committed one was %d)", f, lateID, earlyID)
	}
	if err := late.Commit(); err != nil {
		t.Fatal(err)
	}
	waitNonePending(t, d, ob, relay)
}

// waitNonePending polls, waking the relay, until no outbox row is pending, counted in the
// table rather than through the relay's Backlog, which reads above its floor.
func waitNonePending(t *testing.T, d *db.DB, ob *outbox.Outbox, relay *outbox.Relay) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		var pending int
		if err := d.GetContext(context.Background(), &pending, `SELECT count(*) FROM outbox WHERE published_at IS NULL`); err != nil {
			t.Fatal(err)
		}
		if pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d rows still pending after 30 s (floor %d, published %d)", pending, relay.Floor(), relay.Published())
		}
		ob.Wake()
		time.Sleep(5 * time.Millisecond)
	}
}

// floorSetup is a PostgreSQL outbox with a relay that only runs when woken, over a broker
// with topic "ev"; it returns the broker's address.
func floorSetup(t *testing.T) (*db.DB, *outbox.Outbox, *outbox.Relay, string) {
	d := dbtest.Open(t, db.Postgres, migrations.Patient())
	b := brokertest.Start(t)
	brokertest.CreateTopics(t, b.Addr(), 2, "ev")
	ob := outbox.New(d, outbox.Options{})
	return d, ob, startRelay(t, ob, outbox.RelayOptions{NewProducer: producerFor(b.Addr()), Poll: time.Hour}), b.Addr()
}

// TestMarkSentKeepsGenericPlan: on PostgreSQL the relay's mark of one to nine published rows,
// what a steady trickle of changes makes, keeps one generic plan (db.GenericPlanArray) instead
// of being planned again on every call, and marks exactly the rows it names.
func TestMarkSentKeepsGenericPlan(t *testing.T) {
	ctx := context.Background()
	d := dbtest.Open(t, db.Postgres, migrations.Patient())
	ob := outbox.New(d, outbox.Options{})
	msgs := make([]outbox.Message, 3000) // enough rows that the planner prefers the primary key
	for i := range msgs {
		msgs[i] = outbox.Message{Topic: "ev", Value: []byte("x")}
	}
	add(t, d, ob, msgs...)
	var ids []int64
	if err := d.SelectContext(ctx, &ids, `SELECT id FROM outbox ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ExecContext(ctx, `ANALYZE outbox`); err != nil {
		t.Fatal(err)
	}
	d.SetMaxOpenConns(1) // one session, whose pg_prepared_statements sees the statement
	r := outbox.NewRelay(ob, outbox.RelayOptions{})
	rest, calls := ids[:45], 0
	for n := 1; len(rest) > 0; n = n%9 + 1 {
		k := min(n, len(rest))
		if err := r.MarkSent(ctx, d, rest[:k]); err != nil {
			t.Fatal(err)
		}
		rest, calls = rest[k:], calls+1
	}
	var marked int
	if err := d.GetContext(ctx, &marked, `SELECT count(*) FROM outbox WHERE published_at IS NOT NULL`); err != nil || marked != 45 {
		t.Fatalf("%d rows marked (%v), want 45", marked, err)
	}
	var plans struct {
		Generic int64 `db:"generic_plans"`
		Custom  int64 `db:"custom_plans"`
	}
	if err := d.GetContext(ctx, &plans, `SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE 'UPDATE outbox SET published_at%'`); err != nil {
		t.Fatal(err)
	}
	if plans.Generic == 0 || plans.Custom > 5 {
		t.Fatalf("the mark: %d generic and %d custom plans in %d calls, want a generic plan after at most 5 custom", plans.Generic, plans.Custom, calls)
	}
}
