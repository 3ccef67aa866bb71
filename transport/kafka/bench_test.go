package kafkatransport_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/broker/brokertest"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/outbox"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
	kafkatransport "github.com/pms/pms/transport/kafka"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// BenchmarkOutbox measures the outbox on PostgreSQL against the embedded broker, in one run
// (use -benchtime=1x; every part is a fixed workload and prints its figures):
//
//   - drain: a backlog of 100,000 patient events is relayed to Kafka (issue 20 item 10:
//     target ≥ 100,000 events/s), beside raw sarama throughput with the relay's producer
//     settings and batch size, for scale;
//   - after-marks: 200,000 more rows written and marked, then 1,000 events one at a time:
//     commit-to-acknowledged p50/p99 and the cost of the relay's backlog count (issue 20
//     item 7: the outbox after a long run, with no autovacuum);
//   - keep-pace: 64 callers create patients as fast as the service can for 10 s (each create
//     writes a patient event and, through the audit writer, an audit event), sampling the
//     backlog: it must not grow;
//   - latency500: creates paced at 250/s (500 events/s with their audit events) for 10 s;
//     create-to-consume latency p50/p99 (target p99 < 250 ms), measured from the event's
//     occurred_at (taken just before the create's transaction begins, so the figure
//     includes the create) to its arrival in a consumer group member;
//   - latency5000: 5,000 events/s for 10 s written straight into the outbox, one event per
//     transaction and then five (the service's creates cannot reach that rate on this
//     machine); commit-to-consume p50/p99 from the moment each commit returned to the
//     event's arrival in a consumer group member (target p99 < 20 ms, issue 20 item 10).
func BenchmarkOutbox(b *testing.B) {
	d := dbtest.Open(b, db.Postgres, migrations.Patient())
	br := brokertest.Start(b)
	addr := br.Addr()
	if err := kafkatransport.EnsureTopics(context.Background(), []string{addr}, kafkatransport.NewConfig("bench"),
		append(kafkatransport.PatientTopics(3, 1), kafkatransport.Topic{Name: "bench-raw", Partitions: 3}, kafkatransport.Topic{Name: latencyTopic, Partitions: 3})); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()

	b.Run("drain100k", func(b *testing.B) {
		const n = 100_000
		ob := outbox.New(d, outbox.Options{})
		value := sampleEvent(b)
		for start := 0; start < n; start += 1000 {
			msgs := make([]outbox.Message, 1000)
			for i := range msgs {
				key := fmt.Sprintf("p-%d", (start+i)%5000)
				msgs[i] = outbox.Message{Topic: patient.TopicEvents, Key: key, Value: value,
					Headers: outbox.EventHeaders(patient.EventUpdated, fmt.Sprint(start+i), "bench")}
			}
			if err := db.InTx(ctx, d, func(tx *sqlx.Tx) error { return ob.Add(ctx, tx, msgs...) }); err != nil {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		start := time.Now()
		relay := runRelay(b, ob, addr)
		for relay.Published() < n {
			time.Sleep(5 * time.Millisecond)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		stopRelay(b, relay)
		rate := float64(n) / elapsed.Seconds()
		b.ReportMetric(rate, "events/s")

		raw := rawSarama(b, addr, n, value)
		b.ReportMetric(raw, "raw-sarama-msgs/s")
		fmt.Printf("outbox drain: %d events in %s = %.0f events/s (target ≥ 100000, issue 20 item 10); raw sarama SendMessages, same settings and batch of 1000: %.0f msgs/s\n",
			n, elapsed.Round(time.Millisecond), rate, raw)
	})

	b.Run("after-marks", func(b *testing.B) { afterMarks(b, d, addr) })

	stack := newBenchStack(b, d, addr)
	b.Run("keep-pace", func(b *testing.B) {
		const callers = 64
		duration := 10 * time.Second
		var created atomic.Int64
		stopAt := time.Now().Add(duration)
		var wg sync.WaitGroup
		b.ResetTimer()
		before := stack.relay.Published()
		for c := range callers {
			wg.Go(func() {
				for i := 0; time.Now().Before(stopAt); i++ {
					_, err := stack.svc.Create(ctx, benchPerson(c*1_000_000+i, fmt.Sprintf("kp-%d-%d@example.org", c, i)))
					if err != nil {
						b.Error(err)
						return
					}
					created.Add(1)
				}
			})
		}
		var samples []int64
		for time.Now().Before(stopAt) {
			time.Sleep(500 * time.Millisecond)
			n, err := stack.relay.Backlog(ctx)
			if err == nil {
				samples = append(samples, n)
			}
		}
		wg.Wait()
		end, _ := stack.relay.Backlog(ctx)
		published := stack.relay.Published() - before
		b.StopTimer()
		drainStart := time.Now()
		for {
			if n, err := stack.relay.Backlog(ctx); err == nil && n == 0 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		rate := float64(created.Load()) / duration.Seconds()
		b.ReportMetric(rate, "creates/s")
		b.ReportMetric(float64(slices.Max(samples)), "max-backlog")
		fmt.Printf("keep pace: %d callers created %d patients in %s = %.0f creates/s (%.0f events/s with their audit events); relay published %d = %.0f events/s; backlog samples every 0.5 s: %v; at the end %d, drained %s later\n",
			callers, created.Load(), duration, rate, 2*rate, published, float64(published)/duration.Seconds(), samples, end, time.Since(drainStart).Round(time.Millisecond))
	})

	b.Run("latency500", func(b *testing.B) {
		var mu sync.Mutex
		var lat []time.Duration
		got := make(chan struct{}, 100_000)
		consume := func(_ context.Context, req any) (any, error) {
			ev := req.(*eventsv1.PatientEvent)
			l := time.Since(ev.OccurredAt.AsTime())
			mu.Lock()
			lat = append(lat, l)
			mu.Unlock()
			got <- struct{}{}
			return nil, nil
		}
		sub := kafkatransport.NewSubscriber(consume, kafkatransport.DecodeEvent(func() *eventsv1.PatientEvent { return new(eventsv1.PatientEvent) }), nil)
		c := kafkatransport.NewConsumer([]string{addr}, fmt.Sprintf("bench-%d", rand.Int()), []string{patient.TopicEvents}, kafkatransport.NewConfig("bench"), sub, nil)
		done := make(chan error, 1)
		go func() { done <- c.Run() }()
		defer func() { _ = c.Stop(context.Background()); <-done }()
		// The group reads the topic from the start: wait until it has caught up with every
		// event so far, then measure fresh ones only.
		backlog := brokertest.Count(b, addr, patient.TopicEvents)
		for i := int64(0); i < backlog; i++ {
			<-got
		}
		mu.Lock()
		lat = lat[:0]
		mu.Unlock()

		const rate, seconds = 250, 10 // creates/s: 500 events/s with their audit events
		b.ResetTimer()
		tick := time.NewTicker(time.Second / rate)
		sem := make(chan struct{}, 64)
		var wg sync.WaitGroup
		for i := range rate * seconds {
			<-tick.C
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				if _, err := stack.svc.Create(ctx, benchPerson(i, fmt.Sprintf("lat-%d@example.org", i))); err != nil {
					b.Error(err)
				}
			})
		}
		tick.Stop()
		wg.Wait()
		deadline := time.After(60 * time.Second)
		for i := 0; i < rate*seconds; i++ {
			select {
			case <-got:
			case <-deadline:
				b.Fatalf("consumed %d of %d", i, rate*seconds)
			}
		}
		b.StopTimer()
		mu.Lock()
		slices.Sort(lat)
		p50, p99, pmax := lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
		mu.Unlock()
		b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
		fmt.Printf("latency at %d creates/s for %d s: create-to-consume p50 %s, p99 %s (target < 250ms), max %s over %d events\n",
			rate, seconds, p50.Round(100*time.Microsecond), p99.Round(100*time.Microsecond), pmax.Round(100*time.Microsecond), len(lat))
	})

	for _, perTx := range []int{1, 5} {
		b.Run(fmt.Sprintf("latency5000/events-per-tx=%d", perTx), func(b *testing.B) { latency5000(b, d, stack.ob, addr, perTx) })
	}
}

// afterMarks is the relay after a long run (issue 20 item 7): 200,000 more rows written and
// marked published (beside the drain's 100,000; this machine's PostgreSQL runs no autovacuum,
// so their old versions' entries stay in the index of pending rows), then 1,000 events, one
// transaction each, one after the other, with a relay started afresh: add-to-published p50/p99,
// from the commit to the relay's count of acknowledged events.
func afterMarks(b *testing.B, d *db.DB, addr string) {
	const marked, n = 200_000, 1000
	ctx := context.Background()
	ob := outbox.New(d, outbox.Options{})
	value := sampleEvent(b)
	for start := 0; start < marked; start += 1000 {
		msgs := make([]outbox.Message, 1000)
		for i := range msgs {
			msgs[i] = outbox.Message{Topic: patient.TopicEvents, Key: fmt.Sprintf("p-%d", (start+i)%5000), Value: value}
		}
		if err := db.InTx(ctx, d, func(tx *sqlx.Tx) error {
			if err := ob.Add(ctx, tx, msgs...); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `UPDATE outbox SET published_at = now() WHERE published_at IS NULL`)
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
	relay := runRelay(b, ob, addr)
	defer stopRelay(b, relay)
	b.ResetTimer()
	lat := make([]time.Duration, n)
	for i := range n {
		before := relay.Published()
		if err := db.InTx(ctx, d, func(tx *sqlx.Tx) error {
			return ob.Add(ctx, tx, outbox.Message{Topic: patient.TopicEvents, Key: "after-marks", Value: value})
		}); err != nil {
			b.Fatal(err)
		}
		committed := time.Now()
		ob.Wake()
		for deadline := committed.Add(30 * time.Second); relay.Published() == before; {
			if time.Now().After(deadline) {
				b.Fatalf("event %d not published within 30 s", i)
			}
			time.Sleep(50 * time.Microsecond)
		}
		lat[i] = time.Since(committed)
	}
	b.StopTimer()
	// The backlog count the relay refreshes every second (its gauge).
	const counts = 20
	countStart := time.Now()
	for range counts {
		if _, err := relay.Backlog(ctx); err != nil {
			b.Fatal(err)
		}
	}
	perCount := time.Since(countStart) / counts
	slices.Sort(lat)
	p50, p99, pmax := lat[n/2], lat[n*99/100], lat[n-1]
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(perCount.Microseconds())/1000, "backlog-count-ms")
	fmt.Printf("after %d marked rows: %d events one at a time, commit-to-acknowledged p50 %s, p99 %s, max %s; the backlog count %s\n",
		marked+100_000, n, p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond), pmax.Round(10*time.Microsecond), perCount.Round(10*time.Microsecond))
}

// latency5000 offers 5,000 events/s for 10 s straight into the outbox, perTx events per
// transaction from 16 writers (about one service's pool of connections; 64 writers made
// PostgreSQL's commit queue, not the pipeline, the latency), and prints commit-to-consume p50/p99: from the moment each
// commit returned to the event's arrival in a consumer group member.
func latency5000(b *testing.B, d *db.DB, ob *outbox.Outbox, addr string, perTx int) {
	const rate, seconds, writers = 5000, 10, 16
	const n = rate * seconds
	ctx := context.Background()
	var committed, consumed [n]atomic.Int64 // unix nanoseconds, by event number
	var got atomic.Int64
	prefix := fmt.Sprintf("l5k-%d-", rand.Int())
	warmed, warmOnce := make(chan struct{}), sync.Once{}
	consume := func(_ context.Context, req any) (any, error) {
		ev := req.(*eventsv1.PatientEvent)
		if ev.EventId == prefix+"warm" {
			warmOnce.Do(func() { close(warmed) })
		} else if i, ok := strings.CutPrefix(ev.EventId, prefix); ok {
			if k, err := strconv.Atoi(i); err == nil && k < n && consumed[k].CompareAndSwap(0, time.Now().UnixNano()) {
				got.Add(1)
			}
		}
		return nil, nil
	}
	sub := kafkatransport.NewSubscriber(consume, kafkatransport.DecodeEvent(func() *eventsv1.PatientEvent { return new(eventsv1.PatientEvent) }), nil)
	c := kafkatransport.NewConsumer([]string{addr}, fmt.Sprintf("bench-%d", rand.Int()), []string{latencyTopic}, kafkatransport.NewConfig("bench"), sub, nil)
	done := make(chan error, 1)
	go func() { done <- c.Run() }()
	defer func() { _ = c.Stop(context.Background()); <-done }()
	// Wait until the group has its partitions: one warm-up event, consumed.
	if err := db.InTx(ctx, d, func(tx *sqlx.Tx) error {
		return ob.Add(ctx, tx, outbox.Message{Topic: latencyTopic, Key: "warm", Value: eventValue(b, prefix+"warm")})
	}); err != nil {
		b.Fatal(err)
	}
	ob.Wake()
	select {
	case <-warmed:
	case <-time.After(60 * time.Second):
		b.Fatal("the consumer group never received the warm-up event")
	}
	msgs := make([]outbox.Message, n)
	for i := range msgs {
		msgs[i] = outbox.Message{Topic: latencyTopic, Key: fmt.Sprintf("p-%d", i%5000), Value: eventValue(b, prefix+strconv.Itoa(i)),
			Headers: outbox.EventHeaders(patient.EventUpdated, prefix+strconv.Itoa(i), "bench")}
	}
	jobs := make(chan int, writers) // the first event of a transaction
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for first := range jobs {
				err := db.InTx(ctx, d, func(tx *sqlx.Tx) error { return ob.Add(ctx, tx, msgs[first:first+perTx]...) })
				if err != nil {
					b.Error(err)
					return
				}
				now := time.Now().UnixNano()
				for i := first; i < first+perTx; i++ {
					committed[i].Store(now)
				}
				ob.Wake()
			}
		})
	}
	b.ResetTimer()
	start := time.Now()
	for first := 0; first < n; first += perTx {
		if d := time.Until(start.Add(time.Duration(first) * time.Second / rate)); d > 0 {
			time.Sleep(d)
		}
		jobs <- first
	}
	close(jobs)
	wg.Wait()
	offered := time.Since(start)
	for deadline := time.Now().Add(60 * time.Second); got.Load() < n; {
		if time.Now().After(deadline) {
			b.Fatalf("consumed %d of %d", got.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.StopTimer()
	lat := make([]time.Duration, n)
	for i := range lat {
		lat[i] = time.Duration(consumed[i].Load() - committed[i].Load())
	}
	slices.Sort(lat)
	p50, p99, pmax := lat[n/2], lat[n*99/100], lat[n-1]
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(n)/offered.Seconds(), "events/s")
	fmt.Printf("latency at %d events/s offered for %d s, %d per transaction from %d writers (%.0f events/s written): commit-to-consume p50 %s, p99 %s (target < 20ms), max %s\n",
		rate, seconds, perTx, writers, float64(n)/offered.Seconds(), p50.Round(100*time.Microsecond), p99.Round(100*time.Microsecond), pmax.Round(100*time.Microsecond))
}

// benchPerson is the n-th registration of a bench: names and dates of birth varied as in a
// real population, so the duplicate check's blocks stay small. (One name and birth date for
// every create made each registration score a thousand candidates and wait for the others
// on the same blocking keys: 122 creates/s instead of about 1,000.)
func benchPerson(n int, email string) patient.CreateRequest {
	first := []string{"Ada", "Alan", "Amara", "Ben", "Chen", "Dara", "Elena", "Fatima", "Hana", "Ines", "Kofi", "Liam", "Maya", "Noah", "Omar", "Priya", "Rosa", "Sami", "Uma", "Wen"}
	last := []string{"Abbott", "Bauer", "Costa", "Dubois", "Fischer", "Garcia", "Haddad", "Jensen", "Mendes", "Nakamura", "Novak", "Okafor", "Petrov", "Rossi", "Santos", "Tanaka", "Vargas", "Weber", "Xu", "Zhang"}
	h := uint64(n)*0x9e3779b97f4a7c15 + 1
	dob := time.Date(1930, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, int(h>>20%(90*365)))
	return patient.CreateRequest{Name: first[h%20] + " " + last[h>>8%20], Email: email, Address: "1 Main St", DateOfBirth: dob.Format("2006-01-02")}
}

// latencyTopic is latency5000's own topic, so its consumer reads only its events.
const latencyTopic = "bench-latency"

// eventValue is a patient event whose event id is id.
func eventValue(b *testing.B, id string) []byte {
	v, err := proto.Marshal(&eventsv1.PatientEvent{PatientId: "00000000-0000-4000-8000-000000000000", EventType: patient.EventUpdated,
		EventId: id, OccurredAt: timestamppb.Now(), Version: 3})
	if err != nil {
		b.Fatal(err)
	}
	return v
}

type benchStack struct {
	svc   patient.Service
	ob    *outbox.Outbox
	relay *outbox.Relay
}

func newBenchStack(b *testing.B, d *db.DB, addr string) *benchStack {
	store := patient.NewStore(d)
	w := newAuditWriter(d, store.Outbox())
	b.Cleanup(func() { _ = w.Close(context.Background()) })
	svc := patient.NewService(store, w, patient.Options{})
	r := runRelay(b, store.Outbox(), addr)
	b.Cleanup(func() { stopRelay(b, r) })
	return &benchStack{svc: svc, ob: store.Outbox(), relay: r}
}

func runRelay(b *testing.B, ob *outbox.Outbox, addr string) *outbox.Relay {
	cfg := kafkatransport.NewConfig("bench-relay")
	r := outbox.NewRelay(ob, outbox.RelayOptions{NewProducer: func() (sarama.SyncProducer, error) { return sarama.NewSyncProducer([]string{addr}, cfg) }})
	go func() { _ = r.Run() }()
	return r
}

func stopRelay(b *testing.B, r *outbox.Relay) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Stop(ctx); err != nil {
		b.Error(err)
	}
}

// rawSarama sends n messages of value with the relay's producer settings and batch size and
// returns messages per second.
func rawSarama(b *testing.B, addr string, n int, value []byte) float64 {
	p, err := sarama.NewSyncProducer([]string{addr}, kafkatransport.NewConfig("bench-raw"))
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	start := time.Now()
	for sent := 0; sent < n; sent += 1000 {
		msgs := make([]*sarama.ProducerMessage, 1000)
		for i := range msgs {
			msgs[i] = &sarama.ProducerMessage{Topic: "bench-raw", Key: sarama.StringEncoder(fmt.Sprintf("p-%d", (sent+i)%5000)), Value: sarama.ByteEncoder(value),
				Headers: []sarama.RecordHeader{{Key: []byte("event-id"), Value: []byte(fmt.Sprint(sent + i))}}}
		}
		if err := p.SendMessages(msgs); err != nil {
			b.Fatal(err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

func sampleEvent(b *testing.B) []byte {
	ev := &eventsv1.PatientEvent{PatientId: "00000000-0000-4000-8000-000000000000", Name: "Ada Lovelace", Email: "ada@example.org",
		EventType: patient.EventUpdated, EventId: "00000000-0000-4000-8000-000000000001", OccurredAt: timestamppb.Now(), Version: 3,
		RequestId: "bench", Patient: &eventsv1.PatientRecord{Id: "00000000-0000-4000-8000-000000000000", Mrn: "MRN-0000001-7",
			Name: "Ada Lovelace", Email: "ada@example.org", Address: "1 Main St", DateOfBirth: "1990-12-10", RegisteredDate: "2026-11-25",
			Version: 3, CreatedAt: timestamppb.Now(), UpdatedAt: timestamppb.Now()}}
	v, err := proto.Marshal(ev)
	if err != nil {
		b.Fatal(err)
	}
	return v
}

func newAuditWriter(d *db.DB, ob *outbox.Outbox) *audit.Writer {
	return audit.NewWriter(d, audit.Options{Table: patient.AuditTable, AfterBatch: audit.OutboxHook(ob, "patient"), AfterCommit: ob.Wake})
}
