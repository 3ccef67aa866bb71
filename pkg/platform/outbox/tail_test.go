package outbox_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/broker/brokertest"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/outbox"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
	"google.golang.org/protobuf/proto"
)

// waitCount polls until topic holds want records and fails if it holds more.
func waitCount(t *testing.T, addr, topic string, want int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := brokertest.Count(t, addr, topic)
		if got > want {
			t.Fatalf("topic %s holds %d records, want %d", topic, got, want)
		}
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s holds %d records after 20s, want %d", topic, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// tailSetup is a writer whose entries reach the audit topic only through the relay's tail,
// wired as pms wires it: no outbox hook, each committed batch handed to the tail and waking
// the relay, which never polls.
func tailSetup(t *testing.T, d *db.DB, addr string, newProducer func() (sarama.SyncProducer, error), batch int) (*audit.Writer, *outbox.Relay, *audit.Tail) {
	t.Helper()
	ob := outbox.New(d, outbox.Options{})
	tail := audit.NewTail(d, "", "patient")
	w := audit.NewWriter(d, audit.Options{AfterCommit: ob.Wake, Committed: tail.Remember})
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	r := startRelay(t, ob, outbox.RelayOptions{NewProducer: newProducer, Poll: time.Hour, Batch: batch, MaxBackoff: 50 * time.Millisecond,
		Tails: []outbox.Tail{tail}})
	return w, r, tail
}

// TestAuditTail: entries appended concurrently reach the audit topic once each, as the
// AuditEvents the outbox hook wrote (key, event type, seq, hash), with no outbox row
// written; the topic verifies against the table; a new relay (a restart) resumes from the
// stored position rather than publishing the log again.
func TestAuditTail(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		b := brokertest.Start(t)
		brokertest.CreateTopics(t, b.Addr(), 3, audit.Topic)
		w, r, tail := tailSetup(t, d, b.Addr(), producerFor(b.Addr()), 16)
		if n, err := r.Backlog(ctx); err != nil || n != 0 {
			t.Fatalf("backlog %d (%v) before any entry", n, err)
		}
		const writers, per = 8, 25
		var wg sync.WaitGroup
		for g := range writers {
			wg.Go(func() {
				for i := range per {
					e := audit.Entry{Actor: fmt.Sprintf("u%d", g), Role: "clinician", Action: "read", SubjectID: fmt.Sprintf("p%d", i%5), Outcome: "success"}
					if g == 0 && i == 0 {
						e.Action, e.SubjectID = audit.ActionBreakGlass, "p-restricted"
					}
					if g == 1 && i == 0 {
						e.Action, e.SubjectID = "search", "" // keyed by its actor
					}
					if err := w.Append(ctx, e); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		const n = writers * per
		waitCount(t, b.Addr(), audit.Topic, n)
		waitBacklog(t, r, 20*time.Second) // the position is committed

		seqs := map[int64]bool{}
		for _, m := range brokertest.ReadAll(t, b.Addr(), audit.Topic) {
			var ev eventsv1.AuditEvent
			if err := proto.Unmarshal(m.Value, &ev); err != nil {
				t.Fatal(err)
			}
			seqs[ev.Seq] = true
			wantKey, wantType := ev.SubjectId, audit.EventType
			if ev.SubjectId == "" {
				wantKey = ev.Actor
			}
			if ev.Action == audit.ActionBreakGlass {
				wantType = audit.BreakGlassEventType
			}
			if string(m.Key) != wantKey || brokertest.Header(m, "event-type") != wantType || brokertest.Header(m, "event-id") != ev.EventId ||
				ev.Service != "patient" || ev.At.AsTime().IsZero() {
				t.Fatalf("record key %q type %q for event %+v", m.Key, brokertest.Header(m, "event-type"), &ev)
			}
		}
		if len(seqs) != n {
			t.Fatalf("%d distinct seqs on the topic, want %d", len(seqs), n)
		}
		// The batches went out from the tail's memory, not read back from the table (the
		// table still answers the fetches that find nothing new).
		if mem, _ := tail.Stats(); mem == 0 {
			t.Fatal("no fetch was answered from the committed batches")
		}
		var rows int
		if err := d.GetContext(ctx, &rows, `SELECT count(*) FROM outbox`); err != nil || rows != 0 {
			t.Fatalf("outbox rows %d (%v): the tail writes none", rows, err)
		}
		client, err := sarama.NewClient([]string{b.Addr()}, brokertest.Config())
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		pub, err := audit.ReadTopic(ctx, client, []string{"patient"})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := audit.VerifyAgainst(ctx, d, "", "patient", *pub["patient"], nil)
		if err != nil || !rep.OK || rep.TopicEntries != n {
			t.Fatalf("verify against the topic: %+v %v", rep, err)
		}

		// A second relay on the same database resumes after the position: one more entry
		// makes one more record, not the log again.
		w2, _, _ := tailSetup(t, d, b.Addr(), producerFor(b.Addr()), 16)
		if err := w2.Append(ctx, audit.Entry{Actor: "u9", Action: "read", SubjectID: "p1", Outcome: "success"}); err != nil {
			t.Fatal(err)
		}
		waitCount(t, b.Addr(), audit.Topic, n+1)
		// The round commits its position after the broker acknowledged.
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			var pos int64
			err := d.GetContext(ctx, &pos, `SELECT seq FROM audit_published WHERE tbl = 'audit_log'`)
			if err == nil && pos == n+1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("position %d (%v), want %d", pos, err, n+1)
			}
		}
	})
}

// TestAuditTailPartialFailure: the broker refuses one message of a batch and takes the
// rest. The position stops before the refused entry, so it and every later one are sent
// again: every entry is on the topic, and the last copies come in seq order per key.
func TestAuditTailPartialFailure(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		b := brokertest.Start(t)
		brokertest.CreateTopics(t, b.Addr(), 1, audit.Topic)
		calls := new(atomic.Int32)
		real := producerFor(b.Addr())
		// The writer's first commit wakes the relay: hold its entries back until all are in
		// by appending them before the relay exists.
		ob := outbox.New(d, outbox.Options{})
		w := audit.NewWriter(d, audit.Options{})
		const n = 30
		for i := range n {
			if err := w.Append(ctx, audit.Entry{Actor: "u", Action: "read", SubjectID: "p", Outcome: "success", RequestID: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(ctx); err != nil {
			t.Fatal(err)
		}
		tail := audit.NewTail(d, "", "patient")
		tails := []outbox.Tail{tail}
		if got, err := outbox.NewRelay(ob, outbox.RelayOptions{Tails: tails}).Backlog(ctx); err != nil || got != n {
			t.Fatalf("backlog %d (%v), want the %d entries", got, err, n)
		}
		first, err := audit.List(ctx, d, "", audit.Query{Limit: n})
		if err != nil || len(first) != n {
			t.Fatalf("entries %d %v", len(first), err)
		}
		if at, err := tail.Oldest(ctx, d.DB); err != nil || !at.Equal(first[n-1].At) {
			t.Fatalf("oldest waiting entry at %v (%v), want the first entry's %v", at, err, first[n-1].At)
		}
		relay := startRelay(t, ob, outbox.RelayOptions{Batch: 7, MaxBackoff: 50 * time.Millisecond, Poll: time.Hour,
			Tails: tails,
			NewProducer: func() (sarama.SyncProducer, error) {
				p, err := real()
				return failingProducer{SyncProducer: p, calls: calls, failOn: 2, fail: 3}, err
			}})
		ob.Wake()
		deadline := time.Now().Add(20 * time.Second)
		var last []int64
		for {
			got := brokertest.ReadAll(t, b.Addr(), audit.Topic)
			brokertest.ByPartitionOffset(got)
			seen := map[int64]bool{}
			last = last[:0]
			for i := len(got) - 1; i >= 0; i-- {
				var ev eventsv1.AuditEvent
				if err := proto.Unmarshal(got[i].Value, &ev); err != nil {
					t.Fatal(err)
				}
				if !seen[ev.Seq] {
					seen[ev.Seq] = true
					last = append([]int64{ev.Seq}, last...)
				}
			}
			if len(last) == n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d distinct entries on the topic after 20s, want %d", len(last), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
		for i, seq := range last {
			if seq != int64(i+1) {
				t.Fatalf("last copies out of seq order: %v", last)
			}
		}
		waitBacklog(t, relay, 20*time.Second)
		if at, err := tail.Oldest(ctx, d.DB); err != nil || !at.IsZero() {
			t.Fatalf("oldest waiting entry at %v (%v) with none waiting", at, err)
		}
		if calls.Load() < 2 {
			t.Fatalf("the failure was never injected (%d sends)", calls.Load())
		}
	})
}
