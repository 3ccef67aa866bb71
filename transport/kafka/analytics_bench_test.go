package kafkatransport_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/analytics"
	"github.com/pms/pms/pkg/platform/broker/brokertest"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
	kafkatransport "github.com/pms/pms/transport/kafka"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// BenchmarkAnalyticsFold measures how fast the analytics consumer folds a backlog (a replay,
// as after a rebuild): b.N events (one third each patient, billing, audit) are produced to the
// embedded broker first, then one consumer folds them all; events/s is reported, per
// database. Use -benchtime=Nx.
func BenchmarkAnalyticsFold(b *testing.B) {
	for _, dialect := range dbtest.Dialects {
		b.Run(string(dialect), func(b *testing.B) {
			d := dbtest.Open(b, dialect, migrations.Analytics())
			br := brokertest.Start(b)
			brokertest.CreateTopics(b, br.Addr(), 3, analytics.Topics...)
			cfg := kafkatransport.NewConfig("bench")
			p, err := sarama.NewSyncProducer([]string{br.Addr()}, cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			var batch []*sarama.ProducerMessage
			for i := range b.N {
				batch = append(batch, benchEvent(i))
				if len(batch) == 500 || i == b.N-1 {
					if err := p.SendMessages(batch); err != nil {
						b.Fatal(err)
					}
					batch = batch[:0]
				}
			}
			svc := analytics.NewService(analytics.NewStore(d), analytics.Options{})
			gen, _, _ := svc.Generation(context.Background())
			b.ResetTimer()
			start := time.Now()
			sub := kafkatransport.NewAnalyticsSubscriber(svc, kafkatransport.AnalyticsOptions{Group: gen})
			c := kafkatransport.NewConsumer([]string{br.Addr()}, "analytics-"+gen, analytics.Topics, kafkatransport.NewConfig("bench"), sub, nil)
			go func() { _ = c.Run() }()
			defer func() { _ = c.Stop(context.Background()) }()
			deadline := time.Now().Add(10 * time.Minute)
			for {
				s, err := svc.GetSummary(context.Background(), analytics.SummaryQuery{})
				if err == nil && s.Events.Patient+s.Events.Billing+s.Events.Audit == int64(b.N) {
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("folded %+v of %d", s.Events, b.N)
				}
				time.Sleep(10 * time.Millisecond)
			}
			el := time.Since(start)
			b.ReportMetric(float64(b.N)/el.Seconds(), "events/s")
			b.Logf("%s: %d events folded in %v (%.0f events/s, group join included)", dialect, b.N, el.Round(time.Millisecond), float64(b.N)/el.Seconds())
		})
	}
}

// benchEvent is the i-th event of a benchmark stream: one third each patient, billing, audit.
func benchEvent(i int) *sarama.ProducerMessage {
	now := timestamppb.Now()
	var m proto.Message
	topic := analytics.Topics[i%3]
	id := fmt.Sprintf("bench-%d", i)
	switch topic {
	case analytics.TopicPatient:
		m = &eventsv1.PatientEvent{EventId: id, EventType: analytics.PatientCreated, OccurredAt: now}
	case analytics.TopicBilling:
		m = &eventsv1.BillingEvent{EventId: id, EventType: analytics.InvoiceIssued, InvoiceId: id, Currency: "USD", Subtotal: 100, OccurredAt: now}
	default:
		m = &eventsv1.AuditEvent{EventId: id, Action: "read", Outcome: "success", At: now}
	}
	v, _ := proto.Marshal(m)
	return &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprint(i % 97)), Value: sarama.ByteEncoder(v)}
}

// BenchmarkAnalyticsKeepPace measures whether analytics keeps pace with live traffic: events
// are produced at 5,000/s for 5 s (a third each topic, 3 partitions each) while one consumer
// folds them; the largest lag seen (produced minus folded, sampled every 50 ms) is reported
// in events and in seconds of traffic (the target is below 1 s), and the time the last event
// took to be folded after production ended. Use -benchtime=1x.
func BenchmarkAnalyticsKeepPace(b *testing.B) {
	const rate, seconds = 5000, 5
	for _, dialect := range dbtest.Dialects {
		b.Run(string(dialect), func(b *testing.B) {
			ctx := context.Background()
			d := dbtest.Open(b, dialect, migrations.Analytics())
			br := brokertest.Start(b)
			brokertest.CreateTopics(b, br.Addr(), 3, analytics.Topics...)
			p, err := sarama.NewSyncProducer([]string{br.Addr()}, kafkatransport.NewConfig("bench"))
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			svc := analytics.NewService(analytics.NewStore(d), analytics.Options{})
			gen, _, _ := svc.Generation(ctx)
			sub := kafkatransport.NewAnalyticsSubscriber(svc, kafkatransport.AnalyticsOptions{Group: gen})
			c := kafkatransport.NewConsumer([]string{br.Addr()}, "analytics-"+gen, analytics.Topics, kafkatransport.NewConfig("bench"), sub, nil)
			go func() { _ = c.Run() }()
			defer func() { _ = c.Stop(context.Background()) }()
			folded := func() int {
				s, err := svc.GetSummary(ctx, analytics.SummaryQuery{})
				if err != nil {
					b.Fatal(err)
				}
				return int(s.Events.Patient + s.Events.Billing + s.Events.Audit)
			}
			waitFolded := func(n int) {
				deadline := time.Now().Add(2 * time.Minute)
				for folded() < n {
					if time.Now().After(deadline) {
						b.Fatalf("folded %d of %d", folded(), n)
					}
					time.Sleep(10 * time.Millisecond) // polling interval
				}
			}
			// Warm up: one event on each topic, so every partition is claimed before timing.
			if err := p.SendMessages([]*sarama.ProducerMessage{benchEvent(0), benchEvent(1), benchEvent(2)}); err != nil {
				b.Fatal(err)
			}
			waitFolded(3)
			var produced atomic.Int64
			produced.Store(3)
			total := 3 + rate*seconds
			done := make(chan struct{})
			var sendErr error
			b.ResetTimer()
			go func() {
				defer close(done)
				start := time.Now()
				next := 3
				for next < total {
					target := min(3+int(time.Since(start).Seconds()*rate), total)
					var batch []*sarama.ProducerMessage
					for ; next < target; next++ {
						batch = append(batch, benchEvent(next))
					}
					if len(batch) > 0 {
						if sendErr = p.SendMessages(batch); sendErr != nil {
							return
						}
						produced.Store(int64(next))
					}
					time.Sleep(5 * time.Millisecond) // pacing the producer
				}
			}()
			maxLag := 0
			sample := time.NewTicker(50 * time.Millisecond)
			defer sample.Stop()
		sampling:
			for {
				select {
				case <-done:
					break sampling
				case <-sample.C:
					// produced is read before folded: the lag is never overstated.
					maxLag = max(maxLag, int(produced.Load())-folded())
				}
			}
			end := time.Now()
			if sendErr != nil {
				b.Fatal(sendErr)
			}
			waitFolded(total)
			drain := time.Since(end)
			b.ReportMetric(float64(maxLag), "max-lag-events")
			b.ReportMetric(float64(maxLag)/rate, "max-lag-s")
			b.Logf("%s: %d events at %d/s: largest lag %d events (%.2f s of traffic); the last folded %v after production ended",
				dialect, rate*seconds, rate, maxLag, float64(maxLag)/rate, drain.Round(time.Millisecond))
		})
	}
}
