package kafkatransport_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/broker/brokertest"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
	kafkatransport "github.com/pms/pms/transport/kafka"
)

// TestPublisher: the client side is an endpoint that produces; the request id and the
// caller's token travel as headers, and failures come back as contract errors.
func TestPublisher(t *testing.T) {
	b := brokertest.Start(t)
	brokertest.CreateTopics(t, b.Addr(), 1, "out")
	p := newProducer(t, b.Addr())
	enc := func(_ context.Context, m *sarama.ProducerMessage, req any) error {
		s, ok := req.(string)
		if !ok {
			return errors.New("not a string")
		}
		m.Key, m.Value = sarama.StringEncoder("k"), sarama.StringEncoder(s)
		return nil
	}
	e := kafkatransport.NewPublisher(p, "out", enc,
		kafkatransport.PublisherBefore(kafkatransport.RequestIDToHeaders, kafkatransport.TokenToHeaders)).Endpoint()
	ctx := authz.WithToken(observe.WithRequestID(context.Background(), "req-pub"), "tok")
	resp, err := e(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if pub := resp.(kafkatransport.Published); pub.Topic != "out" || pub.Offset != 0 {
		t.Fatalf("published %+v", pub)
	}
	m := brokertest.NewReader(t, b.Addr(), "out").Read(1, 10*time.Second)[0]
	if string(m.Value) != "hello" || brokertest.Header(m, "x-request-id") != "req-pub" || brokertest.Header(m, "authorization") != "Bearer tok" {
		t.Fatalf("message %q headers %v", m.Value, m.Headers)
	}
	if _, err := e(ctx, 42); errs.KindOf(err) != errs.InvalidArgument {
		t.Fatalf("encode failure: %v", err)
	}
	b.Close()
	if _, err := e(ctx, "lost"); errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("broker down: %v (%s)", err, errs.KindOf(err))
	}
}
