// Package brokertest gives each test its own embedded broker on a free loopback port, and
// the small client helpers tests need around it (create topics, read what a topic holds).
// Everything goes through sarama over TCP, as the services do.
package brokertest

import (
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/pms/pms/pkg/platform/broker"
)

// Start starts a broker on 127.0.0.1:0 (in memory unless o.DataDir is set) that stops when
// the test ends.
func Start(t testing.TB, o ...broker.Options) *broker.Broker {
	t.Helper()
	var opts broker.Options
	if len(o) > 0 {
		opts = o[0]
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	b, err := broker.Start(opts)
	if err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// logins are the principals Authenticate registered, by broker address.
var logins sync.Map // addr → [2]string{user, password}

// Authenticate makes this package's helpers (and ConfigFor) connect to the broker at addr as
// user over SASL/SCRAM-SHA-512: for a broker that enforces ACLs, such as the one `pms all`
// starts. Addresses are free ports, so tests running at once do not meet here.
func Authenticate(addr, user, password string) { logins.Store(addr, [2]string{user, password}) }

// ConfigFor is Config, authenticated as Authenticate registered for addr (if it did).
func ConfigFor(addr string) *sarama.Config {
	c := Config()
	if v, ok := logins.Load(addr); ok {
		login := v.([2]string)
		broker.Login(c, login[0], login[1])
	}
	return c
}

// Config is a client configuration for tests: protocol 3.6, short timeouts.
func Config() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V3_6_0_0
	c.ClientID = "brokertest"
	c.Net.DialTimeout = 2 * time.Second
	c.Metadata.Retry.Backoff = 50 * time.Millisecond
	c.Producer.Return.Successes = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.MaxWaitTime = 100 * time.Millisecond
	return c
}

// CreateTopics creates topics with the given partition count (existing ones are kept).
func CreateTopics(t testing.TB, addr string, partitions int32, topics ...string) {
	t.Helper()
	a, err := sarama.NewClusterAdmin([]string{addr}, ConfigFor(addr))
	if err != nil {
		t.Fatalf("brokertest: admin: %v", err)
	}
	defer a.Close()
	for _, topic := range topics {
		err := a.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false)
		if err != nil && err != sarama.ErrTopicAlreadyExists {
			if te, ok := err.(*sarama.TopicError); !ok || te.Err != sarama.ErrTopicAlreadyExists {
				t.Fatalf("brokertest: create %s: %v", topic, err)
			}
		}
	}
}

// Reader reads every partition of a topic from the oldest offset.
type Reader struct {
	t        testing.TB
	consumer sarama.Consumer
	pcs      []sarama.PartitionConsumer
	ch       chan *sarama.ConsumerMessage
}

// NewReader starts reading topic (which must exist); it stops when the test ends.
func NewReader(t testing.TB, addr, topic string) *Reader {
	t.Helper()
	c, err := sarama.NewConsumer([]string{addr}, ConfigFor(addr))
	if err != nil {
		t.Fatalf("brokertest: consumer: %v", err)
	}
	parts, err := c.Partitions(topic)
	if err != nil {
		_ = c.Close()
		t.Fatalf("brokertest: partitions of %s: %v", topic, err)
	}
	r := &Reader{t: t, consumer: c, ch: make(chan *sarama.ConsumerMessage, 1024)}
	for _, p := range parts {
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			_ = c.Close()
			t.Fatalf("brokertest: consume %s/%d: %v", topic, p, err)
		}
		r.pcs = append(r.pcs, pc)
		go func() {
			for m := range pc.Messages() {
				r.ch <- m
			}
		}()
	}
	t.Cleanup(func() {
		for _, pc := range r.pcs {
			pc.AsyncClose()
		}
		_ = c.Close()
	})
	return r
}

// Read returns the next n messages, failing the test if they do not all arrive within
// timeout.
func (r *Reader) Read(n int, timeout time.Duration) []*sarama.ConsumerMessage {
	r.t.Helper()
	out := make([]*sarama.ConsumerMessage, 0, n)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for len(out) < n {
		select {
		case m := <-r.ch:
			out = append(out, m)
		case <-deadline.C:
			r.t.Fatalf("brokertest: read %d of %d messages within %s", len(out), n, timeout)
		}
	}
	return out
}

// Count returns how many records topic holds over all its partitions (the sum of their
// high-water marks): after a producer has been acknowledged, an exact count without waiting.
func Count(t testing.TB, addr, topic string) int64 {
	t.Helper()
	// A connection the broker dropped (EOF, seen once in CI right after a process it served
	// stopped) is tried again until a deadline: the count is what is tested, not the dial.
	var c sarama.Client
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err = sarama.NewClient([]string{addr}, ConfigFor(addr)); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("brokertest: client: %v", err)
	}
	defer c.Close()
	parts, err := c.Partitions(topic)
	if err != nil {
		t.Fatalf("brokertest: partitions of %s: %v", topic, err)
	}
	var n int64
	for _, p := range parts {
		off, err := c.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatalf("brokertest: offset of %s/%d: %v", topic, p, err)
		}
		n += off
	}
	return n
}

// Header returns the value of header name of m.
func Header(m *sarama.ConsumerMessage, name string) string {
	for _, h := range m.Headers {
		if string(h.Key) == name {
			return string(h.Value)
		}
	}
	return ""
}

// ByPartitionOffset sorts messages by partition, then offset.
func ByPartitionOffset(ms []*sarama.ConsumerMessage) {
	sort.Slice(ms, func(i, j int) bool {
		if ms[i].Partition != ms[j].Partition {
			return ms[i].Partition < ms[j].Partition
		}
		return ms[i].Offset < ms[j].Offset
	})
}

// ReadAll returns every record topic holds now, over all its partitions: each partition is
// read from its oldest offset up to the high-water mark taken first. Erasure tests decode
// every event with it.
func ReadAll(t testing.TB, addr, topic string) []*sarama.ConsumerMessage {
	t.Helper()
	c, err := sarama.NewClient([]string{addr}, ConfigFor(addr))
	if err != nil {
		t.Fatalf("brokertest: client: %v", err)
	}
	defer c.Close()
	cons, err := sarama.NewConsumerFromClient(c)
	if err != nil {
		t.Fatalf("brokertest: consumer: %v", err)
	}
	defer cons.Close()
	parts, err := c.Partitions(topic)
	if err != nil {
		t.Fatalf("brokertest: partitions of %s: %v", topic, err)
	}
	var out []*sarama.ConsumerMessage
	for _, p := range parts {
		hw, err := c.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatalf("brokertest: offset of %s/%d: %v", topic, p, err)
		}
		oldest, err := c.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatalf("brokertest: offset of %s/%d: %v", topic, p, err)
		}
		if hw <= oldest {
			continue
		}
		pc, err := cons.ConsumePartition(topic, p, oldest)
		if err != nil {
			t.Fatalf("brokertest: consume %s/%d: %v", topic, p, err)
		}
		timeout := time.After(30 * time.Second)
		for next := oldest; next < hw; {
			select {
			case m := <-pc.Messages():
				out = append(out, m)
				next = m.Offset + 1
			case <-timeout:
				_ = pc.Close()
				t.Fatalf("brokertest: %s/%d: read to %d of %d within 30s", topic, p, next, hw)
			}
		}
		_ = pc.Close()
	}
	return out
}
