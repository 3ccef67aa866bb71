package audit

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/prometheus/client_golang/prometheus"
)

// drain fetches from tail everything after pos, limit messages at a time, as the relay does,
// and returns the messages and the position reached.
func drain(t *testing.T, d *db.DB, tail *Tail, pos int64, limit int) ([]*sarama.ProducerMessage, int64) {
	t.Helper()
	var all []*sarama.ProducerMessage
	for {
		msgs, err := tail.Fetch(context.Background(), d.DB, pos, limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			return all, pos
		}
		for _, m := range msgs {
			if seq := m.Metadata.(int64); seq != pos+1 {
				t.Fatalf("message of seq %d after position %d", seq, pos)
			}
			pos++
		}
		all = append(all, msgs...)
	}
}

// sameMessages fails unless got and want are the same messages: topic, key, value, headers
// and position.
func sameMessages(t *testing.T, got, want []*sarama.ProducerMessage) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		gk, _ := g.Key.Encode()
		wk, _ := w.Key.Encode()
		gv, _ := g.Value.Encode()
		wv, _ := w.Value.Encode()
		if g.Topic != w.Topic || string(gk) != string(wk) || string(gv) != string(wv) ||
			!reflect.DeepEqual(g.Headers, w.Headers) || g.Metadata != w.Metadata {
			t.Fatalf("message %d differs from the table's:\n%+v\n%+v", i, g, w)
		}
	}
}

// TestTailFromMemoryMatchesTable: the batches a writer hands its tail (Options.Committed) are
// published from memory, in several fetches, as exactly the messages the table gives a tail
// that remembers nothing; a run another writer chained into the middle of is read from the
// table where this writer's memory has a gap; a remembered run that is not hashed onto the
// entry the relay reached is never served.
func TestTailFromMemoryMatchesTable(t *testing.T) {
	dbtest.Each(t, db.Sets{Migrations}, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		tail := NewTail(d, "", "patient")
		reg := prometheus.NewRegistry()
		tail.RegisterMetrics(reg)
		w := newWriter(t, d, Options{Committed: tail.Remember})
		other := newWriter(t, d, Options{}) // another replica's writer: nothing remembered here
		if err := w.Append(ctx, sample(0)); err != nil {
			t.Fatal(err)
		}
		// The first fetch knows no link yet: it reads the table.
		first, pos := drain(t, d, tail, 0, 5)
		if mem, table := tail.Stats(); len(first) != 1 || mem != 0 || table != 2 {
			t.Fatalf("%d messages; fetches from memory %d, table %d; want 1 from the table", len(first), mem, table)
		}

		// Batches of one and of many (concurrent appends share a batch).
		for i := 1; i <= 5; i++ {
			if err := w.Append(ctx, sample(i)); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		for i := 6; i < 30; i++ {
			wg.Go(func() {
				if err := w.Append(ctx, sample(i)); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		mem0, table0 := tail.Stats()
		got, end := drain(t, d, tail, pos, 7)
		mem, table := tail.Stats()
		if end != 30 || mem-mem0 < 5 || table-table0 != 1 {
			// 29 entries in fetches of at most 7: at least 5 from memory; the last, empty
			// fetch asks the table.
			t.Fatalf("reached %d; fetches from memory %d, table %d; want 30, all but the last from memory", end, mem-mem0, table-table0)
		}
		want, _ := drain(t, d, NewTail(d, "", "patient"), pos, 7)
		sameMessages(t, got, want)
		pos = end

		// Another writer chains between two of this writer's batches (31, 32 theirs, 33): 33
		// does not continue 31, so it replaces it in memory, and a relay at 30 finds no run
		// continuing 30 there; the table serves 31 to 33, once each, in order.
		for _, wr := range []*Writer{w, other, w} {
			if err := wr.Append(ctx, sample(int(pos))); err != nil {
				t.Fatal(err)
			}
		}
		got, end = drain(t, d, tail, pos, 10)
		want, _ = drain(t, d, NewTail(d, "", "patient"), pos, 10)
		if end != pos+3 {
			t.Fatalf("reached %d, want %d", end, pos+3)
		}
		sameMessages(t, got, want)
		pos = end

		// A run that claims the next seq but is not hashed onto the entry the relay reached
		// (memory left over from another history: a restore under a running process) is
		// not served: the table answers, here with nothing.
		forged := sample(99)
		forged.Seq, forged.PrevHash, forged.Hash, forged.ID, forged.At = pos+1, genesisHash, "forged", "forged-id", time.Now().UTC()
		tail.Remember([]Entry{forged})
		if msgs, err := tail.Fetch(ctx, d.DB, pos, 10); err != nil || len(msgs) != 0 {
			t.Fatalf("fetch after a forged run: %d messages (%v), want none", len(msgs), err)
		}
		// The next real batch replaces it and is served from memory.
		if err := w.Append(ctx, sample(100)); err != nil {
			t.Fatal(err)
		}
		mem0, _ = tail.Stats()
		got, end = drain(t, d, tail, pos, 10)
		want, _ = drain(t, d, NewTail(d, "", "patient"), pos, 10)
		if mem, _ := tail.Stats(); end != pos+1 || mem != mem0+1 {
			t.Fatalf("reached %d with %d fetches from memory; want %d with one", end, mem-mem0, pos+1)
		}
		sameMessages(t, got, want)
		mustVerify(t, d, "", end)

		// The counts are exported as pms_patient_audit_tail_fetches_total{source}.
		mfs, err := reg.Gather()
		if err != nil || len(mfs) != 1 || mfs[0].GetName() != "pms_patient_audit_tail_fetches_total" {
			t.Fatalf("gathered %v (%v)", mfs, err)
		}
		mem, table = tail.Stats()
		for _, m := range mfs[0].GetMetric() {
			want := map[string]int64{"memory": mem, "table": table}[m.GetLabel()[0].GetValue()]
			if int64(m.GetCounter().GetValue()) != want {
				t.Fatalf("exported %v, want %d", m, want)
			}
		}
	})
}
