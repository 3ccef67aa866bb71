package kafkatransport_test

import (
	"context"
	"fmt"
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
			now := timestamppb.Now()
			var batch []*sarama.ProducerMessage
			for i := range b.N {
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
				batch = append(batch, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprint(i % 97)), Value: sarama.ByteEncoder(v)})
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
