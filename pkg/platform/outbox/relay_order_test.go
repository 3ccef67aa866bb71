package outbox_test

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
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
