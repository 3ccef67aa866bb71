package broker

import (
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

func config() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V3_6_0_0
	c.Producer.Idempotent = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Net.MaxOpenRequests = 1
	c.Producer.Return.Successes = true
	c.Producer.Retry.Backoff = 50 * time.Millisecond
	c.Metadata.Retry.Backoff = 50 * time.Millisecond
	c.Net.DialTimeout = 2 * time.Second
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	return c
}

// produce sends n records with an idempotent producer and closes it.
func produce(t *testing.T, addr, topic string, from, n int) {
	t.Helper()
	p, err := sarama.NewSyncProducer([]string{addr}, config())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	msgs := make([]*sarama.ProducerMessage, n)
	for i := range msgs {
		msgs[i] = &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder("k"), Value: sarama.StringEncoder(fmt.Sprint(from + i))}
	}
	if err := p.SendMessages(msgs); err != nil {
		t.Fatal(err)
	}
}

// readAll reads partition 0 of topic from the start until it has want records or the
// deadline passes.
func readAll(t *testing.T, addr, topic string, want int) []string {
	t.Helper()
	c, err := sarama.NewConsumer([]string{addr}, config())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pc, err := c.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var got []string
	deadline := time.After(20 * time.Second)
	for len(got) < want {
		select {
		case m := <-pc.Messages():
			got = append(got, string(m.Value))
		case <-deadline:
			t.Fatalf("read %d of %d records", len(got), want)
		}
	}
	return got
}

func createTopic(t *testing.T, addr, topic string) {
	t.Helper()
	a, err := sarama.NewClusterAdmin([]string{addr}, config())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
}

// TestDataDirSurvivesRestart: the data folder is made the owner's alone (0700); with it, records and topics written before a stop
// are there after a start on the same folder and port, and an idempotent producer can go on
// writing. This is what lets `pms all` keep its events across restarts.
func TestDataDirSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := Start(Options{Addr: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	// Its files are written 0644 by the broker library: the folder is the owner's alone.
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data folder mode %v %v, want 0700", fi.Mode().Perm(), err)
	}
	addr := b.Addr()
	createTopic(t, addr, "kept")
	produce(t, addr, "kept", 0, 100)
	b.Close()
	b.Close() // twice is harmless

	b, err = Start(Options{Addr: addr, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !b.Persisted() || b.Addr() != addr {
		t.Fatalf("restarted broker: addr %s persisted %v", b.Addr(), b.Persisted())
	}
	produce(t, addr, "kept", 100, 50)
	got := readAll(t, addr, "kept", 150)
	for i, v := range got {
		if v != fmt.Sprint(i) {
			t.Fatalf("record %d = %q", i, v)
		}
	}
}

// TestInMemoryStartsEmpty: without a data folder a restart forgets everything, which is why
// the log says so.
func TestInMemoryStartsEmpty(t *testing.T) {
	b, err := Start(Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addr()
	createTopic(t, addr, "gone")
	b.Close()
	b, err = Start(Options{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a, err := sarama.NewClusterAdmin([]string{addr}, config())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	topics, err := a.ListTopics()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := topics["gone"]; ok {
		t.Fatal("in-memory broker kept a topic across a restart")
	}
}

// TestAddrInUse: a second broker on a taken port fails cleanly instead of hanging.
func TestAddrInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := Start(Options{Addr: l.Addr().String()}); err == nil {
		t.Fatal("started on a taken port")
	}
}
