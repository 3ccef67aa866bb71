package kafkatransport_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/analytics"
	"github.com/pms/pms/pkg/platform/broker/brokertest"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
	kafkatransport "github.com/pms/pms/transport/kafka"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// analyticsMsg is one event to produce: its topic, key and protobuf value.
type analyticsMsg struct {
	topic, key string
	value      proto.Message
	id         string
}

func at(d string, h int) *timestamppb.Timestamp {
	t, _ := time.Parse("2006-01-02", d)
	return timestamppb.New(t.Add(time.Duration(h) * time.Hour))
}

// analyticsStream is every kind of event, with an earlier day later in the stream and
// repeated event ids.
func analyticsStream() []analyticsMsg {
	pat := func(id, typ, patientID string, ts *timestamppb.Timestamp) analyticsMsg {
		return analyticsMsg{analytics.TopicPatient, patientID, &eventsv1.PatientEvent{PatientId: patientID, EventType: typ, EventId: id, OccurredAt: ts}, id}
	}
	bill := func(id, typ, patientID, inv, cur string, sub, amt int64, ts *timestamppb.Timestamp) analyticsMsg {
		return analyticsMsg{analytics.TopicBilling, patientID, &eventsv1.BillingEvent{EventId: id, EventType: typ, PatientId: patientID,
			InvoiceId: inv, Currency: cur, Subtotal: sub, Amount: amt, OccurredAt: ts}, id}
	}
	aud := func(id, action, outcome, subject string, ts *timestamppb.Timestamp) analyticsMsg {
		return analyticsMsg{analytics.TopicAudit, subject, &eventsv1.AuditEvent{EventId: id, Service: "patient", Action: action, Outcome: outcome, SubjectId: subject, At: ts}, id}
	}
	return []analyticsMsg{
		pat("e-p1", analytics.PatientCreated, "pa", at("2026-11-25", 10)),
		pat("e-p2", analytics.PatientCreated, "pb", at("2026-11-23", 9)),
		pat("e-p3", analytics.PatientCreated, "pc", at("2026-11-25", 23)),
		pat("e-p4", analytics.PatientUpdated, "pa", at("2026-11-24", 1)),
		pat("e-p5", analytics.PatientDeleted, "pc", at("2026-11-25", 12)),
		pat("e-p1", analytics.PatientCreated, "pa", at("2026-11-25", 10)),
		bill("e-b1", analytics.AccountCreated, "pa", "", "", 0, 0, at("2026-11-25", 10)),
		bill("e-b2", analytics.InvoiceIssued, "pa", "i1", "USD", 10000, 0, at("2026-11-25", 11)),
		bill("e-b3", analytics.InvoiceIssued, "pb", "i2", "EUR", 500, 0, at("2026-11-24", 11)),
		bill("e-b4", analytics.PaymentRecorded, "pa", "i1", "USD", 10000, 4000, at("2026-11-25", 12)),
		bill("e-b5", analytics.PaymentRecorded, "pa", "i1", "USD", 10000, 6000, at("2026-11-25", 13)),
		bill("e-b6", analytics.InvoicePaid, "pa", "i1", "USD", 10000, 6000, at("2026-11-25", 13)),
		bill("e-b7", analytics.InvoiceVoided, "pb", "i2", "EUR", 500, 0, at("2026-11-26", 1)),
		bill("e-b7", analytics.InvoiceVoided, "pb", "i2", "EUR", 500, 0, at("2026-11-26", 1)),
		bill("e-b8", analytics.InvoiceVoided, "pb", "i3", "EUR", 700, 0, at("2026-11-26", 2)),
		bill("e-b9", analytics.InvoiceIssued, "pb", "i4", "USD", 250, 0, at("2026-11-26", 3)),
		aud("e-a1", "read", "success", "pa", at("2026-11-25", 14)),
		aud("e-a2", "search", "success", "", at("2026-11-25", 14)),
		aud("e-a3", "read_invoice", "success", "i1", at("2026-11-25", 14)),
		aud("e-a4", "create", "success", "pa", at("2026-11-25", 14)),
		aud("e-a5", "void_invoice", "success", "i2", at("2026-11-25", 14)),
		aud("e-a6", "read", "denied", "pb", at("2026-11-25", 14)),
		aud("e-a7", "login", "success", "u1", at("2026-11-25", 14)),
		aud("e-a8", "login", "denied", "u1", at("2026-11-27", 5)),
		aud("e-a8", "login", "denied", "u1", at("2026-11-27", 5)),
	}
}

// wantAnalytics is the summary of analyticsStream, lag 0.
var wantAnalytics = analytics.Summary{
	Patients: analytics.Patients{Registered: 3, Updated: 1, Deleted: 1, Live: 2},
	Days: []analytics.Day{
		{Day: "2026-11-23", Registered: 1},
		{Day: "2026-11-24", Updated: 1, InvoicesIssued: 1},
		{Day: "2026-11-25", Registered: 2, Deleted: 1, InvoicesIssued: 1},
		{Day: "2026-11-26", InvoicesIssued: 1},
	},
	Invoices: analytics.Invoices{Issued: 3, Paid: 1, Voided: 2},
	Amounts:  []analytics.Amount{{Currency: "EUR"}, {Currency: "USD", Invoiced: 10250, Paid: 10000}},
	Access:   analytics.AccessFigs{Reads: 3, Changes: 2, Denied: 2},
	Events:   analytics.EventFigs{Patient: 5, Billing: 9, Audit: 8},
}

func produceAnalytics(t *testing.T, p sarama.SyncProducer, msgs []analyticsMsg) {
	t.Helper()
	for _, m := range msgs {
		b, err := proto.Marshal(m.value)
		if err != nil {
			t.Fatal(err)
		}
		pm := &sarama.ProducerMessage{Topic: m.topic, Key: sarama.StringEncoder(m.key), Value: sarama.ByteEncoder(b)}
		kafkatransport.SetHeader(pm, kafkatransport.HeaderEventID, m.id)
		if _, _, err := p.SendMessage(pm); err != nil {
			t.Fatal(err)
		}
	}
}

// analyticsStack is the analytics service on a database, consuming from addr.
type analyticsStack struct {
	reg  *prometheus.Registry
	m    *kafkatransport.Metrics
	svc  *analytics.Analytics
	wm   *kafkatransport.Watermarks
	addr string
}

func newAnalyticsStack(t *testing.T, d *db.DB, addr string) *analyticsStack {
	wm := kafkatransport.NewWatermarks([]string{addr}, kafkatransport.NewConfig("analytics-lag"))
	t.Cleanup(func() { _ = wm.Close() })
	svc := analytics.NewService(analytics.NewStore(d), analytics.Options{Watermarks: wm.Get, LagTTL: -1})
	reg := prometheus.NewRegistry()
	return &analyticsStack{reg: reg, m: kafkatransport.NewMetrics(reg, "analytics"), svc: svc, wm: wm, addr: addr}
}

// consume starts a consumer in the current generation's group; stop ends it.
func (s *analyticsStack) consume(t *testing.T) (stop func()) {
	t.Helper()
	gen, _, err := s.svc.Generation(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s.consumeAs(t, "analytics-"+gen)
}

// consumeAs starts a consumer in group.
func (s *analyticsStack) consumeAs(t *testing.T, group string) (stop func()) {
	t.Helper()
	sub := kafkatransport.NewAnalyticsSubscriber(s.svc, kafkatransport.AnalyticsOptions{Group: group, Metrics: s.m})
	c := kafkatransport.NewConsumer([]string{s.addr}, group, analytics.Topics, kafkatransport.NewConfig("test"), sub, nil)
	done := make(chan error, 1)
	go func() { done <- c.Run() }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Errorf("consumer stop: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("consumer run: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// consumed is how many messages group has marked (pms_analytics_kafka_consumed_total).
func (s *analyticsStack) consumed(t *testing.T, group string) int {
	t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "pms_analytics_kafka_consumed_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "group" && l.GetValue() == group {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return int(n)
}

// waitFor polls the summary until cond holds, failing after a deadline.
func (s *analyticsStack) waitFor(t *testing.T, what string, cond func(analytics.Summary) bool) analytics.Summary {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, err := s.svc.GetSummary(context.Background(), analytics.SummaryQuery{})
		if err == nil && cond(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: gave up; last summary %+v (err %v)", what, got, err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

func exact(t *testing.T, got analytics.Summary) {
	t.Helper()
	got.LastEventAt = nil
	want := wantAnalytics
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Fatalf("summary:\n got %+v\nwant %+v", got, want)
	}
}

func settled(s analytics.Summary) bool {
	return s.Events == wantAnalytics.Events && s.Lag == 0
}

// TestAnalyticsFromTopics produces events through the real topics of an embedded broker over
// TCP and checks the figures: exact, unchanged by repeats, the same after a restart in the
// middle of the stream, after a replay of everything into the same database, and after a
// rebuild from scratch.
func TestAnalyticsFromTopics(t *testing.T) {
	dbtest.Each(t, migrations.Analytics(), func(t *testing.T, d *db.DB) {
		b := brokertest.Start(t)
		brokertest.CreateTopics(t, b.Addr(), 3, analytics.Topics...)
		p := newProducer(t, b.Addr())
		s := newAnalyticsStack(t, d, b.Addr())
		stream := analyticsStream()
		half := len(stream) / 2

		// First half, then the consumer stops mid-stream and a new one takes over.
		produceAnalytics(t, p, stream[:half])
		stop := s.consume(t)
		// Stopped as soon as anything was folded: usually in the middle of the first half.
		s.waitFor(t, "first fold", func(sum analytics.Summary) bool { return sum.Events.Patient+sum.Events.Billing+sum.Events.Audit > 0 })
		stop()
		produceAnalytics(t, p, stream[half:])
		stop = s.consume(t)
		got := s.waitFor(t, "whole stream", settled)
		exact(t, got)
		if got.LastEventAt == nil || !got.LastEventAt.Equal(at("2026-11-27", 5).AsTime()) {
			t.Fatalf("lastEventAt = %v", got.LastEventAt)
		}

		// A consumer that died before committing anything: its successor reads every message
		// again (a group with no offsets, on the same database). Nothing changes.
		stop()
		stopCrash := s.consumeAs(t, "crashed-before-commit")
		deadline := time.Now().Add(60 * time.Second)
		for s.consumed(t, "crashed-before-commit") < len(stream) {
			if time.Now().After(deadline) {
				t.Fatalf("the successor consumed %d of %d messages", s.consumed(t, "crashed-before-commit"), len(stream))
			}
			time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
		}
		exact(t, s.waitFor(t, "after redelivery", settled))
		stopCrash()
		s.consume(t)

		// The whole stream again, as new messages: every one a repeat, nothing changes.
		produceAnalytics(t, p, stream)
		s.waitFor(t, "repeats consumed", func(sum analytics.Summary) bool { return sum.Lag == 0 })
		exact(t, s.waitFor(t, "after repeats", settled))

		// Rebuild: empty the figures, a new generation replays every topic from the start.
		if _, err := s.svc.Reset(context.Background()); err != nil {
			t.Fatal(err)
		}
		s.consume(t)
		exact(t, s.waitFor(t, "rebuilt", settled))
	})
}

// TestAnalyticsPoisonMessage: a value that is not an event is dead-lettered and the stream
// goes on.
func TestAnalyticsPoisonMessage(t *testing.T) {
	dbtest.Each(t, migrations.Analytics(), func(t *testing.T, d *db.DB) {
		b := brokertest.Start(t)
		brokertest.CreateTopics(t, b.Addr(), 1, analytics.TopicPatient, analytics.TopicPatient+kafkatransport.DLQSuffix)
		p := newProducer(t, b.Addr())
		send(t, p, analytics.TopicPatient, "k", "\xff\xff not protobuf")
		produceAnalytics(t, p, analyticsStream()[:1])
		s := newAnalyticsStack(t, d, b.Addr())
		gen, _, _ := s.svc.Generation(context.Background())
		sub := kafkatransport.NewAnalyticsSubscriber(s.svc, kafkatransport.AnalyticsOptions{Group: "a-" + gen, Producer: p})
		startConsumer(t, b.Addr(), "a-"+gen, sub, analytics.TopicPatient)
		s.waitFor(t, "event after poison", func(sum analytics.Summary) bool { return sum.Patients.Registered == 1 })
		dl := brokertest.NewReader(t, b.Addr(), analytics.TopicPatient+kafkatransport.DLQSuffix).Read(1, 30*time.Second)
		if brokertest.Header(dl[0], kafkatransport.HeaderDLQKind) != "decode" {
			t.Fatalf("dead letter headers: %v", dl[0].Headers)
		}
	})
}

// batchRecorder is the analytics service with every batch's size recorded; with failFirst,
// its first batch fails as a transaction that folded nothing does (the database went away
// mid-batch and rolled it back).
type batchRecorder struct {
	*analytics.Analytics
	failFirst bool
	mu        sync.Mutex
	sizes     []int
}

func (r *batchRecorder) FoldBatch(ctx context.Context, evs []analytics.Event) error {
	r.mu.Lock()
	r.sizes = append(r.sizes, len(evs))
	fail := r.failFirst && len(r.sizes) == 1
	r.mu.Unlock()
	if fail {
		return errs.New(errs.Unavailable, "the database went away mid-batch")
	}
	return r.Analytics.FoldBatch(ctx, evs)
}

func (r *batchRecorder) largest() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Max(append([]int{0}, r.sizes...))
}

// TestAnalyticsBatchWithRepeatAndPoison: one partition's backlog — good events, an event id
// again, two messages that are not events — is folded in batches; each good event counts
// once, each poison message is dead-lettered, and the stored offset passes them all. When
// the first batch fails (rolled back), its events are folded one by one, still once each.
func TestAnalyticsBatchWithRepeatAndPoison(t *testing.T) {
	for _, failFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("failFirst=%v", failFirst), func(t *testing.T) {
			dbtest.Each(t, migrations.Analytics(), func(t *testing.T, d *db.DB) {
				b := brokertest.Start(t)
				brokertest.CreateTopics(t, b.Addr(), 1, analytics.TopicPatient, analytics.TopicPatient+kafkatransport.DLQSuffix)
				p := newProducer(t, b.Addr())
				ev := func(id string) []analyticsMsg {
					return []analyticsMsg{{analytics.TopicPatient, id, &eventsv1.PatientEvent{EventId: id, EventType: analytics.PatientCreated, OccurredAt: at("2026-11-25", 1)}, id}}
				}
				produceAnalytics(t, p, append(ev("e1"), ev("e2")...))
				send(t, p, analytics.TopicPatient, "k", "\xff\xff not protobuf")
				produceAnalytics(t, p, append(ev("e1"), ev("e3")...))
				send(t, p, analytics.TopicPatient, "k", "\x0a\xff not protobuf either")
				produceAnalytics(t, p, ev("e4"))
				const total = 7

				s := newAnalyticsStack(t, d, b.Addr())
				rec := &batchRecorder{Analytics: s.svc, failFirst: failFirst}
				gen, _, _ := s.svc.Generation(context.Background())
				group := "a-" + gen
				sub := kafkatransport.NewAnalyticsSubscriber(rec, kafkatransport.AnalyticsOptions{Group: group, Producer: p, Metrics: s.m})
				startConsumer(t, b.Addr(), group, sub, analytics.TopicPatient)
				deadline := time.Now().Add(60 * time.Second)
				for s.consumed(t, group) < total {
					if time.Now().After(deadline) {
						t.Fatalf("consumed %d of %d messages", s.consumed(t, group), total)
					}
					time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
				}
				got := s.waitFor(t, "folded", func(sum analytics.Summary) bool { return sum.Events.Patient >= 4 })
				if got.Patients.Registered != 4 || got.Events.Patient != 4 {
					t.Fatalf("figures %+v, want 4 patients registered, 4 events", got)
				}
				dl := brokertest.NewReader(t, b.Addr(), analytics.TopicPatient+kafkatransport.DLQSuffix).Read(2, 30*time.Second)
				for _, m := range dl {
					if brokertest.Header(m, kafkatransport.HeaderDLQKind) != "decode" {
						t.Fatalf("dead letter headers: %v", m.Headers)
					}
				}
				next, err := analytics.NewStore(d).NextOffsets(context.Background())
				if err != nil || next[analytics.Partition{Topic: analytics.TopicPatient}] != total {
					t.Fatalf("stored next offset %v (%v), want %d", next, err, total)
				}
				if n := rec.largest(); n < 2 {
					t.Fatalf("no batch held more than %d event(s)", n)
				}
			})
		})
	}
}
