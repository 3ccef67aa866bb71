package kafkatransport

import (
	"context"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/pms/pms/pkg/analytics"
	"github.com/pms/pms/pkg/platform/errs"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestDecodeAnalyticsEventFallbacks(t *testing.T) {
	stamp := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	v, _ := proto.Marshal(&eventsv1.PatientEvent{EventType: analytics.PatientCreated})
	msg := &sarama.ConsumerMessage{Topic: analytics.TopicPatient, Partition: 2, Offset: 7, Value: v, Timestamp: stamp}
	got, err := DecodeAnalyticsEvent(context.Background(), msg)
	ev, _ := got.(analytics.Event)
	if err != nil || ev.ID != "kafka:patient/2/7" || !ev.OccurredAt.Equal(stamp) || ev.Type != analytics.PatientCreated {
		t.Fatalf("no id, no occurred_at: %+v %v", ev, err)
	}
	msg.Headers = []*sarama.RecordHeader{{Key: []byte("Event-ID"), Value: []byte("h-1")}}
	got, _ = DecodeAnalyticsEvent(context.Background(), msg)
	if got.(analytics.Event).ID != "h-1" {
		t.Fatalf("event-id header ignored: %+v", got)
	}
	v, _ = proto.Marshal(&eventsv1.AuditEvent{EventId: "a-1", Action: "read", Outcome: "success", At: timestamppb.New(stamp)})
	got, err = DecodeAnalyticsEvent(context.Background(), &sarama.ConsumerMessage{Topic: analytics.TopicAudit, Value: v})
	if ev := got.(analytics.Event); err != nil || ev.ID != "a-1" || ev.Action != "read" || !ev.OccurredAt.Equal(stamp) {
		t.Fatalf("audit: %+v %v", ev, err)
	}
	if _, err := DecodeAnalyticsEvent(context.Background(), &sarama.ConsumerMessage{Topic: "other", Value: v}); errs.KindOf(err) != errs.InvalidArgument {
		t.Fatalf("other topic: %v", err)
	}
}

func FuzzDecodeAnalyticsEvent(f *testing.F) {
	p, _ := proto.Marshal(&eventsv1.PatientEvent{EventId: "e", EventType: analytics.PatientCreated, OccurredAt: timestamppb.Now()})
	b, _ := proto.Marshal(&eventsv1.BillingEvent{EventId: "e", EventType: analytics.InvoiceIssued, Subtotal: 1 << 62, Currency: "USD"})
	a, _ := proto.Marshal(&eventsv1.AuditEvent{EventId: "e", Action: "read", At: &timestamppb.Timestamp{Seconds: -1 << 62}})
	for i, v := range [][]byte{p, b, a, nil, {0xff}, {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}} {
		f.Add(uint8(i), v)
	}
	f.Fuzz(func(t *testing.T, topic uint8, value []byte) {
		msg := &sarama.ConsumerMessage{Topic: analytics.Topics[int(topic)%len(analytics.Topics)], Value: value}
		got, err := DecodeAnalyticsEvent(context.Background(), msg)
		if err != nil {
			if errs.KindOf(err) != errs.InvalidArgument {
				t.Fatalf("error kind %q: %v", errs.KindOf(err), err)
			}
			return
		}
		if ev := got.(analytics.Event); ev.ID == "" || ev.Topic != msg.Topic {
			t.Fatalf("decoded %+v", ev)
		}
	})
}
