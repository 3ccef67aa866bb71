package kafkatransport_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/pms/pms/pkg/platform/broker/brokertest"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
	kafkatransport "github.com/pms/pms/transport/kafka"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// startConsumer runs sub in group on topics until the test ends.
func startConsumer(t *testing.T, addr, group string, sub *kafkatransport.Subscriber, topics ...string) *kafkatransport.Consumer {
	t.Helper()
	c := kafkatransport.NewConsumer([]string{addr}, group, topics, kafkatransport.NewConfig("test"), sub, nil)
	done := make(chan error, 1)
	go func() { done <- c.Run() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Errorf("consumer stop: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("consumer run: %v", err)
		}
	})
	return c
}

func newProducer(t *testing.T, addr string) sarama.SyncProducer {
	t.Helper()
	p, err := sarama.NewSyncProducer([]string{addr}, kafkatransport.NewConfig("test-producer"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func send(t *testing.T, p sarama.SyncProducer, topic, key, value string, headers ...string) {
	t.Helper()
	m := &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(key), Value: sarama.StringEncoder(value)}
	for i := 0; i+1 < len(headers); i += 2 {
		m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(headers[i]), Value: []byte(headers[i+1])})
	}
	if _, _, err := p.SendMessage(m); err != nil {
		t.Fatal(err)
	}
}

// recorder is an endpoint that remembers what it handled and fails as told.
type recorder struct {
	mu       sync.Mutex
	handled  []string
	attempts map[string]int
	ch       chan string
	fail     func(value string, attempt int) error
}

func newRecorder(fail func(string, int) error) *recorder {
	return &recorder{attempts: map[string]int{}, ch: make(chan string, 1000), fail: fail}
}

func (r *recorder) endpoint(_ context.Context, req any) (any, error) {
	v := req.(string)
	r.mu.Lock()
	r.attempts[v]++
	n := r.attempts[v]
	r.mu.Unlock()
	if r.fail != nil {
		if err := r.fail(v, n); err != nil {
			return nil, err
		}
	}
	r.mu.Lock()
	r.handled = append(r.handled, v)
	r.mu.Unlock()
	r.ch <- v
	return v, nil
}

func decodeString(_ context.Context, m *sarama.ConsumerMessage) (any, error) {
	if string(m.Value) == "poison" {
		return nil, errs.New(errs.InvalidArgument, "the message is poison")
	}
	return string(m.Value), nil
}

// waitFor reads n values from ch within timeout.
func waitFor(t *testing.T, ch chan string, n int, timeout time.Duration) []string {
	t.Helper()
	var out []string
	deadline := time.After(timeout)
	for len(out) < n {
		select {
		case v := <-ch:
			out = append(out, v)
		case <-deadline:
			t.Fatalf("got %v, want %d values", out, n)
		}
	}
	return out
}

// TestPoisonMessageDeadLettered: a message that cannot be decoded goes to <topic>.dlq with
// its reason and origin in headers and its own headers kept, the error encoder hears of it
// once, and the partition keeps moving.
func TestPoisonMessageDeadLettered(t *testing.T) {
	b := brokertest.Start(t)
	brokertest.CreateTopics(t, b.Addr(), 1, "work", "work.dlq")
	p := newProducer(t, b.Addr())
	reg := prometheus.NewRegistry()
	m := kafkatransport.NewMetrics(reg, "test")
	rec := newRecorder(nil)
	var encoded atomic.Int32
	var requestIDs sync.Map
	sub := kafkatransport.NewSubscriber(rec.endpoint, decodeString, nil,
		kafkatransport.SubscriberBefore(kafkatransport.RequestIDToContext),
		kafkatransport.SubscriberErrorEncoder(func(ctx context.Context, err error, msg *sarama.ConsumerMessage) {
			encoded.Add(1)
			requestIDs.Store(observe.RequestID(ctx), true)
		}),
		kafkatransport.SubscriberDeadLetter(p), kafkatransport.SubscriberMetrics(m, "g1"))
	startConsumer(t, b.Addr(), "g1", sub, "work")

	send(t, p, "work", "k", "a")
	send(t, p, "work", "k", "poison", "x-request-id", "req-poison", "custom", "kept")
	send(t, p, "work", "k", "b")
	if got := waitFor(t, rec.ch, 2, 30*time.Second); got[0] != "a" || got[1] != "b" {
		t.Fatalf("handled %v", got)
	}
	dl := brokertest.NewReader(t, b.Addr(), "work.dlq").Read(1, 10*time.Second)[0]
	for h, want := range map[string]string{"dlq-reason": "the message is poison", "dlq-error": "decode", "dlq-topic": "work",
		"dlq-partition": "0", "dlq-offset": "1", "dlq-group": "g1", "custom": "kept", "x-request-id": "req-poison"} {
		if got := brokertest.Header(dl, h); got != want {
			t.Fatalf("dead letter header %s = %q, want %q", h, got, want)
		}
	}
	if string(dl.Value) != "poison" || string(dl.Key) != "k" {
		t.Fatalf("dead letter %q/%q", dl.Key, dl.Value)
	}
	if _, ok := requestIDs.Load("req-poison"); !ok || encoded.Load() != 1 {
		t.Fatalf("error encoder: %d calls, request id seen %v", encoded.Load(), ok)
	}
	if v := testutil.ToFloat64(metric(t, reg, "pms_test_kafka_dead_letters_total")); v != 1 {
		t.Fatalf("dead letters metric %v", v)
	}
	if v := testutil.ToFloat64(metric(t, reg, "pms_test_kafka_consumer_lag")); v != 0 {
		t.Fatalf("lag %v after the last message", v)
	}
}

// TestRetriesAreBounded: a transient error is retried with backoff until it passes; an
// internal error that never passes is dead-lettered after the allowed attempts; an outage
// (unavailable) outlasting those attempts is waited out, not dead-lettered (the fault suite
// found analytics dropping good events into the DLQ while PostgreSQL was unreachable); a
// refusal is neither retried nor dead-lettered.
func TestRetriesAreBounded(t *testing.T) {
	b := brokertest.Start(t)
	brokertest.CreateTopics(t, b.Addr(), 1, "jobs", "jobs.dlq")
	p := newProducer(t, b.Addr())
	reg := prometheus.NewRegistry()
	rec := newRecorder(func(v string, attempt int) error {
		switch {
		case v == "flaky" && attempt < 3:
			return errs.New(errs.Unavailable, "database down")
		case v == "outage" && attempt < 7:
			return errs.New(errs.Unavailable, "database down")
		case v == "down":
			return errs.New(errs.Internal, "a bug")
		case v == "dup":
			return errs.New(errs.Conflict, "already there")
		}
		return nil
	})
	var refusals atomic.Int32
	sub := kafkatransport.NewSubscriber(rec.endpoint, decodeString, nil,
		kafkatransport.SubscriberRetry(4, time.Millisecond, 10*time.Millisecond),
		kafkatransport.SubscriberErrorEncoder(func(_ context.Context, err error, _ *sarama.ConsumerMessage) {
			if errs.KindOf(err) == errs.Conflict {
				refusals.Add(1)
			}
		}),
		kafkatransport.SubscriberDeadLetter(p), kafkatransport.SubscriberMetrics(kafkatransport.NewMetrics(reg, "test"), "g2"))
	startConsumer(t, b.Addr(), "g2", sub, "jobs")
	for _, v := range []string{"flaky", "down", "outage", "dup", "last"} {
		send(t, p, "jobs", "k", v)
	}
	if got := waitFor(t, rec.ch, 3, 30*time.Second); got[0] != "flaky" || got[1] != "outage" || got[2] != "last" {
		t.Fatalf("handled %v", got)
	}
	dl := brokertest.NewReader(t, b.Addr(), "jobs.dlq").Read(1, 10*time.Second)[0]
	if string(dl.Value) != "down" || brokertest.Header(dl, "dlq-attempts") != "4" || brokertest.Header(dl, "dlq-error") != "internal" {
		t.Fatalf("dead letter %q attempts %q", dl.Value, brokertest.Header(dl, "dlq-attempts"))
	}
	rec.mu.Lock()
	attempts := fmt.Sprint(rec.attempts)
	rec.mu.Unlock()
	if attempts != "map[down:4 dup:1 flaky:3 last:1 outage:7]" || refusals.Load() != 1 {
		t.Fatalf("attempts %s, refusals %d", attempts, refusals.Load())
	}
	if v := testutil.ToFloat64(metric(t, reg, "pms_test_kafka_retries_total")); v != 11 {
		t.Fatalf("retries metric %v, want 11 (2 for flaky, 3 for down, 6 for outage)", v)
	}
	if got := brokertest.Count(t, b.Addr(), "jobs.dlq"); got != 1 {
		t.Fatalf("dead letters %d", got)
	}
}

// TestStopFinishesTheMessageInHand: Stop lets the message being handled finish and marks it,
// commits, leaves the group and leaks no goroutine; the next member of the group starts
// after it.
func TestStopFinishesTheMessageInHand(t *testing.T) {
	b := brokertest.Start(t)
	brokertest.CreateTopics(t, b.Addr(), 1, "slow")
	p := newProducer(t, b.Addr())

	entered, release := make(chan struct{}), make(chan struct{})
	var ctxErr atomic.Value
	slow := func(ctx context.Context, req any) (any, error) {
		close(entered)
		<-release
		ctxErr.Store(fmt.Sprint(ctx.Err()))
		return req, nil
	}
	sub := kafkatransport.NewSubscriber(slow, decodeString, nil)
	c := kafkatransport.NewConsumer([]string{b.Addr()}, "g3", []string{"slow"}, kafkatransport.NewConfig("test"), sub, nil)
	runDone := make(chan error, 1)
	go func() { runDone <- c.Run() }()
	send(t, p, "slow", "k", "first")
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("message never handled")
	}
	stopDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		stopDone <- c.Stop(ctx)
	}()
	close(release)
	if err := <-stopDone; err != nil {
		t.Fatal(err)
	}
	if err := <-runDone; err != nil {
		t.Fatal(err)
	}
	if got := ctxErr.Load(); got != "<nil>" {
		t.Fatalf("the message in hand saw its context end: %v", got)
	}
	// No goroutine of the stopped consumer is left: none runs consumer code (the producer
	// and the broker of the test are still up, so counting goroutines would not tell).
	deadline := time.Now().Add(10 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		leaked := ""
		for _, sig := range []string{"sarama.(*consumerGroup", "sarama.(*partitionConsumer", "sarama.(*brokerConsumer",
			"sarama.(*offsetManager", "transport/kafka.(*Consumer)", "transport/kafka.(*Subscriber)"} {
			if strings.Contains(stacks, sig) {
				leaked = sig
			}
		}
		if leaked == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutine left running %s after Stop:\n%s", leaked, stacks)
		}
		time.Sleep(10 * time.Millisecond)
	}

	rec := newRecorder(nil)
	startConsumer(t, b.Addr(), "g3", kafkatransport.NewSubscriber(rec.endpoint, decodeString, nil), "slow")
	send(t, p, "slow", "k", "second")
	if got := waitFor(t, rec.ch, 1, 30*time.Second); got[0] != "second" {
		t.Fatalf("the stopped consumer's message came back: %v", got)
	}

}

// TestConsumerStartsBeforeBroker: a consumer whose brokers are unreachable keeps trying and
// stops promptly when told.
func TestConsumerStartsBeforeBroker(t *testing.T) {
	c := kafkatransport.NewConsumer([]string{"127.0.0.1:1"}, "g", []string{"x"}, kafkatransport.NewConfig("test"),
		kafkatransport.NewSubscriber(func(context.Context, any) (any, error) { return nil, nil }, decodeString, nil), nil)
	done := make(chan error, 1)
	go func() { done <- c.Run() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := kafkatransport.Ping(ctx, []string{"127.0.0.1:1"}); err == nil {
		t.Fatal("ping of a closed port succeeded")
	}
}

// metric reads a gathered metric (the sum over its series).
func metric(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	found := false
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		found = true
		for _, m := range mf.GetMetric() {
			if m.GetCounter() != nil {
				sum += m.GetCounter().GetValue()
			} else if m.GetGauge() != nil {
				sum += m.GetGauge().GetValue()
			}
		}
	}
	if !found {
		t.Fatalf("no metric %s", name)
	}
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x", Help: "x"}, func() float64 { return sum })
}

// TestCanceledIsNeverDeadLettered: a handler cut short by cancellation (the consumer is
// stopping) waits like an outage and, once abandoned, leaves the message unmarked to come
// back: it is never dead-lettered or counted as a failure (issue 13). A deadline waits too.
func TestCanceledIsNeverDeadLettered(t *testing.T) {
	for _, c := range []struct {
		err  error
		want kafkatransport.Disposition
	}{
		{errs.FromContext(context.Canceled, ""), kafkatransport.Wait},
		{context.Canceled, kafkatransport.Wait},
		{errs.FromContext(context.DeadlineExceeded, "slow"), kafkatransport.Wait},
		{errs.New(errs.Unavailable, "down"), kafkatransport.Wait},
		{errs.New(errs.InvalidArgument, "bad"), kafkatransport.DeadLetter},
	} {
		if got := kafkatransport.DefaultClassifier(c.err); got != c.want {
			t.Errorf("DefaultClassifier(%v) = %v; want %v", c.err, got, c.want)
		}
	}
	var calls atomic.Int32
	sub := kafkatransport.NewSubscriber(func(ctx context.Context, _ any) (any, error) {
		calls.Add(1)
		return nil, errs.FromContext(context.Canceled, "")
	}, decodeString, nil, kafkatransport.SubscriberRetry(2, time.Millisecond, time.Millisecond))
	abandon := make(chan struct{})
	close(abandon)
	done := sub.Handle(context.Background(), &sarama.ConsumerMessage{Topic: "jobs", Value: []byte("v")}, abandon)
	if done || calls.Load() != 1 {
		t.Fatalf("cancelled handling: done=%v after %d calls; want the message left unmarked after 1", done, calls.Load())
	}
}
