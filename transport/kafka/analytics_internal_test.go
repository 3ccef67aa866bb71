package kafkatransport

import (
	"context"
	"strings"
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

// TestDecodeAnalyticsEventRefusesUnstorableText: an event whose id, type or other text holds
// NUL or invalid UTF-8 (a protobuf string may hold NUL; a header anything) is refused as
// invalid, so it is dead-lettered at once; PostgreSQL would refuse it, and the consumer would
// retry it as an internal error before giving up.
func TestDecodeAnalyticsEventRefusesUnstorableText(t *testing.T) {
	nulID, _ := proto.Marshal(&eventsv1.PatientEvent{EventId: "a\x00b", EventType: analytics.PatientCreated})
	nulCurrency, _ := proto.Marshal(&eventsv1.BillingEvent{EventId: "b", EventType: analytics.InvoiceIssued, Currency: "U\x00D"})
	noID, _ := proto.Marshal(&eventsv1.PatientEvent{EventType: analytics.PatientCreated})
	for name, msg := range map[string]*sarama.ConsumerMessage{
		"NUL in event_id":       {Topic: analytics.TopicPatient, Value: nulID},
		"NUL in currency":       {Topic: analytics.TopicBilling, Value: nulCurrency},
		"bad UTF-8 in event-id": {Topic: analytics.TopicPatient, Value: noID, Headers: []*sarama.RecordHeader{{Key: []byte("event-id"), Value: []byte("\xff")}}},
		"NUL in event-type":     {Topic: analytics.TopicPatient, Headers: []*sarama.RecordHeader{{Key: []byte("event-type"), Value: []byte("x\x00")}}},
	} {
		if _, err := DecodeAnalyticsEvent(context.Background(), msg); errs.KindOf(err) != errs.InvalidArgument {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzDecodeAnalyticsEvent drives the analytics consumer's decoder with any value, headers
// and timestamp on each of its topics: a refusal is a client error (dead-lettered at once,
// never retried), and an event accepted has an id, the message's topic, an instant that is
// zero or within years 1 to 9999 in UTC, and only text the store can keep.
func FuzzDecodeAnalyticsEvent(f *testing.F) {
	p, _ := proto.Marshal(&eventsv1.PatientEvent{EventId: "e", EventType: analytics.PatientCreated, OccurredAt: timestamppb.Now()})
	b, _ := proto.Marshal(&eventsv1.BillingEvent{EventId: "e", EventType: analytics.InvoiceIssued, Subtotal: 1 << 62, Currency: "USD"})
	a, _ := proto.Marshal(&eventsv1.AuditEvent{EventId: "e", Action: "read", At: &timestamppb.Timestamp{Seconds: -1 << 62}})
	nul, _ := proto.Marshal(&eventsv1.BillingEvent{EventId: "e\x00", EventType: "x\x00", InvoiceId: "\x00", Currency: "U\x00D"})
	noID, _ := proto.Marshal(&eventsv1.PatientEvent{EventType: analytics.PatientCreated})
	stamp := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).UnixMilli()
	for i, v := range [][]byte{p, b, a, nil, {0xff}, {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}, nul, noID} {
		f.Add(uint8(i), v, "event-id:h-1\nevent-type:PATIENT_CREATED", stamp)
	}
	f.Add(uint8(0), noID, "Event-ID:\xff\x00", int64(-1))
	f.Add(uint8(0), noID, "event-id:"+strings.Repeat("i", 201), int64(253402300800000))
	f.Add(uint8(1), nul, "!\nevent-id\nevent-type:\x00", int64(1<<62))
	f.Fuzz(func(t *testing.T, topic uint8, value []byte, headers string, stampMillis int64) {
		msg := &sarama.ConsumerMessage{Topic: analytics.Topics[int(topic)%len(analytics.Topics)], Value: value,
			Headers: headersFrom(headers), Timestamp: time.UnixMilli(stampMillis), Offset: stampMillis}
		got, err := DecodeAnalyticsEvent(context.Background(), msg)
		if err != nil {
			if errs.KindOf(err) != errs.InvalidArgument {
				t.Fatalf("error kind %q: %v", errs.KindOf(err), err)
			}
			return
		}
		ev := got.(analytics.Event)
		if ev.ID == "" || len(ev.ID) > 200 || ev.Topic != msg.Topic {
			t.Fatalf("decoded %+v", ev)
		}
		if y := ev.OccurredAt.Year(); !ev.OccurredAt.IsZero() && (y < 1 || y > 9999 || ev.OccurredAt.Location() != time.UTC) {
			t.Fatalf("occurred at %v", ev.OccurredAt)
		}
		for _, s := range []string{ev.ID, ev.Type, ev.InvoiceID, ev.Currency, ev.Action, ev.Outcome} {
			if !storable(s) {
				t.Fatalf("decoded %+v: %q cannot be stored", ev, s)
			}
		}
	})
}

// TestDecodeAnalyticsEventCheckpoint: a signed audit checkpoint on the audit topic (event type
// AUDIT_CHECKPOINT, docs/audit.md) is not decoded as an access: it keeps its event type, which
// the analytics store folds into nothing.
func TestDecodeAnalyticsEventCheckpoint(t *testing.T) {
	v, _ := proto.Marshal(&eventsv1.AuditCheckpoint{EventId: "c-1", Service: "patient", Seq: 5, Hash: "h"})
	msg := &sarama.ConsumerMessage{Topic: analytics.TopicAudit, Value: v, Headers: []*sarama.RecordHeader{
		{Key: []byte("event-type"), Value: []byte(analytics.AuditCheckpoint)}, {Key: []byte("event-id"), Value: []byte("c-1")}}}
	got, err := DecodeAnalyticsEvent(context.Background(), msg)
	ev, _ := got.(analytics.Event)
	if err != nil || ev.Type != analytics.AuditCheckpoint || ev.ID != "c-1" || ev.Action != "" || ev.Outcome != "" {
		t.Fatalf("checkpoint: %+v %v", ev, err)
	}
}
