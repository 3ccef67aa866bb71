package kafkatransport

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/go-kit/log"
	"github.com/pms/pms/pkg/analytics"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
	"github.com/pms/pms/pkg/platform/outbox"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// AnalyticsTopics are the topics the analytics service reads (created when missing, so it
// may start before the services that write them) and their dead-letter topics.
func AnalyticsTopics(partitions int32, replication int16) []Topic {
	names := append([]string{}, analytics.Topics...)
	for _, t := range analytics.Topics {
		names = append(names, t+DLQSuffix)
	}
	return topicsOf(partitions, replication, names...)
}

// AnalyticsGroupPrefix starts the name of every analytics consumer group: each rebuild is a
// new group "analytics-<generation>", so its ACL is a prefix one.
const AnalyticsGroupPrefix = "analytics-"

// AnalyticsOptions configure the analytics event subscriber.
type AnalyticsOptions struct {
	// Producer writes dead letters (an undecodable event); nil logs and skips them.
	Producer sarama.SyncProducer
	Metrics  *Metrics
	Group    string
	Logger   log.Logger
	// Resume, when set, gives the offsets the analytics database has folded up to: the
	// consumer starts there (SubscriberResume).
	Resume ResumeFunc
	// Fences, when set, gives the intervals a restore fenced (SubscriberFences).
	Fences func(ctx context.Context) ([]outbox.Fence, error)
	// Skipped, when set, records a fenced message's place (SubscriberSkipped).
	Skipped func(ctx context.Context, p outbox.Position) error
}

// AnalyticsBatch is the most events the analytics subscriber folds in one transaction.
const AnalyticsBatch = 500

// NewAnalyticsSubscriber serves f from the patient, billing and audit topics: each message is
// decoded into an analytics.Event and folded as the service itself (svc:analytics), in
// batches of what each partition has ready (up to AnalyticsBatch, one transaction each).
func NewAnalyticsSubscriber(f analytics.BatchFolder, o AnalyticsOptions) *Subscriber {
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	opts := []SubscriberOption{
		SubscriberBefore(RequestIDToContext, AsService("analytics")),
		SubscriberMetrics(o.Metrics, o.Group),
		SubscriberLogger(o.Logger),
	}
	if o.Producer != nil {
		opts = append(opts, SubscriberDeadLetter(o.Producer))
	}
	if o.Resume != nil {
		opts = append(opts, SubscriberResume(o.Resume))
	}
	if o.Fences != nil {
		opts = append(opts, SubscriberFences(o.Fences))
	}
	if o.Skipped != nil {
		opts = append(opts, SubscriberSkipped(o.Skipped))
	}
	// One endpoint for both paths: a batch ([]analytics.Event) or one event (Handle).
	one, many := analytics.FoldEndpoint(f), analytics.FoldBatchEndpoint(f)
	fold := func(ctx context.Context, req any) (any, error) {
		if _, ok := req.([]analytics.Event); ok {
			return many(ctx, req)
		}
		return one(ctx, req)
	}
	sub := NewSubscriber(fold, DecodeAnalyticsEvent, nil, opts...)
	b := &batchFolder{sub: sub, size: AnalyticsBatch}
	sub.claim = b.consumeClaim
	return sub
}

// batchFolder is the analytics subscriber's claim loop: it takes what a partition has ready
// (up to size messages, never waiting for more) and folds the run of good events in one
// call of fold, in offset order. A fenced or poison message first folds the run before it,
// then goes alone through the subscriber's Handle (dead-lettered, as one at a time would),
// so the folded offsets never pass a message not yet dealt with. A batch whose fold fails
// is folded again one event at a time through Handle, with its retries, waits and
// dead-lettering: the failed transaction folded nothing, and each event is still folded
// exactly once (processed_events). The subscriber's before functions (a request id is one
// message's, not a batch's), finalizers, after functions and response encoder (analytics
// has none of the last three) run only on that path; the fold endpoint names the service
// itself either way.
type batchFolder struct {
	sub  *Subscriber
	size int
}

func (b *batchFolder) consumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) {
	s := b.sub
	for {
		var batch []*sarama.ConsumerMessage
		select {
		case <-s.quit:
			return
		case <-sess.Context().Done():
			return
		case msg, ok := <-claim.Messages():
			if !ok {
				return
			}
			batch = append(batch, msg)
		}
		closed := false
	fill:
		for len(batch) < b.size {
			select {
			case msg, ok := <-claim.Messages():
				if !ok {
					closed = true
					break fill
				}
				batch = append(batch, msg)
			default:
				break fill
			}
		}
		select {
		case <-s.quit:
			return // taken while stopping: leave them for the next owner
		default:
		}
		if !b.handle(sess, claim, batch) || closed {
			return
		}
	}
}

// handle folds batch; false means the session or the subscriber is stopping and the rest
// of the batch stays unmarked (delivered again later).
func (b *batchFolder) handle(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim, batch []*sarama.ConsumerMessage) bool {
	s := b.sub
	// As in ConsumeClaim: a fold is finished even if the session ends meanwhile.
	ctx := observe.WithTransport(context.WithoutCancel(sess.Context()), "kafka")
	start := time.Now()
	var run []*sarama.ConsumerMessage
	var evs []analytics.Event
	done := func(msg *sarama.ConsumerMessage) {
		sess.MarkMessage(msg, "")
		s.metrics.setLag(msg.Topic, s.group, msg.Partition, claim.HighWaterMarkOffset()-msg.Offset-1)
	}
	flush := func() bool {
		if len(run) == 0 {
			return true
		}
		defer func() { run, evs = run[:0], evs[:0] }()
		if _, err := s.call(ctx, evs); err == nil {
			for _, msg := range run {
				s.metrics.consumedInc(msg.Topic, s.group, "ok")
				s.metrics.observe(msg.Topic, s.group, time.Since(start).Seconds())
			}
			done(run[len(run)-1])
			return true
		}
		for _, msg := range run {
			if !s.Handle(context.WithoutCancel(sess.Context()), msg, sess.Context().Done()) {
				return false
			}
			done(msg)
		}
		return true
	}
	for _, msg := range batch {
		if s.fenced(msg) {
			if !flush() {
				return false
			}
			s.skip(sess, msg)
			s.metrics.setLag(msg.Topic, s.group, msg.Partition, claim.HighWaterMarkOffset()-msg.Offset-1)
			continue
		}
		req, err := s.decode(ctx, msg)
		if ev, ok := req.(analytics.Event); err == nil && ok {
			run, evs = append(run, msg), append(evs, ev)
			continue
		}
		if !flush() || !s.Handle(context.WithoutCancel(sess.Context()), msg, sess.Context().Done()) {
			return false
		}
		done(msg)
	}
	return flush()
}

// DecodeAnalyticsEvent turns a message of the patient, billing or audit topic into an
// analytics.Event. The event id is the value's event_id, else the event-id header, else the
// message's place (topic/partition/offset, the same on every replay). occurred_at falls back
// to the message's timestamp. A value that is not the topic's event, or whose text (id, type,
// invoice, currency, action, outcome) the store could not keep, is a poison message.
func DecodeAnalyticsEvent(_ context.Context, msg *sarama.ConsumerMessage) (any, error) {
	ev := analytics.Event{Topic: msg.Topic, Partition: msg.Partition, Offset: msg.Offset}
	bad := func(err error) error {
		return errs.Wrap(errs.InvalidArgument, "the message is not a valid "+msg.Topic+" event", err)
	}
	switch msg.Topic {
	case analytics.TopicPatient:
		var pe eventsv1.PatientEvent
		if err := proto.Unmarshal(msg.Value, &pe); err != nil {
			return nil, bad(err)
		}
		ev.ID, ev.Type = pe.GetEventId(), pe.GetEventType()
		ev.OccurredAt = instant(pe.GetOccurredAt())
		ev.PossibleDuplicates = pe.GetPossibleDuplicates()
	case analytics.TopicBilling:
		var be eventsv1.BillingEvent
		if err := proto.Unmarshal(msg.Value, &be); err != nil {
			return nil, bad(err)
		}
		ev.ID, ev.Type = be.GetEventId(), be.GetEventType()
		ev.OccurredAt = instant(be.GetOccurredAt())
		ev.InvoiceID, ev.Currency, ev.Subtotal, ev.Amount = be.GetInvoiceId(), be.GetCurrency(), be.GetSubtotal(), be.GetAmount()
	case analytics.TopicAudit:
		if t, _ := Header(msg, HeaderEventType); t == analytics.AuditCheckpoint {
			// A signed chain head (docs/audit.md), not an access: analytics counts nothing.
			ev.Type = t
			break
		}
		var ae eventsv1.AuditEvent
		if err := proto.Unmarshal(msg.Value, &ae); err != nil {
			return nil, bad(err)
		}
		ev.ID, ev.Type, ev.Action, ev.Outcome = ae.GetEventId(), "AUDIT_ENTRY", ae.GetAction(), ae.GetOutcome()
		ev.OccurredAt = instant(ae.GetAt())
	default:
		return nil, errs.Newf(errs.InvalidArgument, "analytics does not read topic %q", msg.Topic)
	}
	if ev.Type == "" {
		if t, ok := Header(msg, HeaderEventType); ok {
			ev.Type = t
		}
	}
	if ev.ID == "" {
		if id, ok := Header(msg, HeaderEventID); ok && id != "" {
			ev.ID = id
		} else {
			ev.ID = fmt.Sprintf("kafka:%s/%d/%d", msg.Topic, msg.Partition, msg.Offset)
		}
	}
	if y := msg.Timestamp.Year(); ev.OccurredAt.IsZero() && msg.Timestamp.Unix() > 0 && y <= 9999 {
		ev.OccurredAt = msg.Timestamp
	}
	var invalid errs.Fields
	if len(ev.ID) > 200 {
		invalid.Add("event_id", "must be at most 200 characters")
	}
	for _, f := range [...]struct{ name, value string }{
		{"event_id", ev.ID}, {"event_type", ev.Type}, {"invoice_id", ev.InvoiceID},
		{"currency", ev.Currency}, {"action", ev.Action}, {"outcome", ev.Outcome},
	} {
		if !storableText(f.value) {
			invalid.Add(f.name, "must be UTF-8 text without NUL")
		}
	}
	if err := invalid.Err(); err != nil {
		return nil, err
	}
	ev.OccurredAt = ev.OccurredAt.UTC()
	return ev, nil
}

// instant is ts as a time, or the zero time when ts is absent or outside what a Timestamp
// may hold (years 1 to 9999): the decoder then falls back to the message's timestamp.
func instant(ts *timestamppb.Timestamp) time.Time {
	if ts == nil || !ts.IsValid() {
		return time.Time{}
	}
	return ts.AsTime()
}

// Watermarks asks the brokers for the ends of partitions (for the analytics lag) over one
// client it keeps between calls (and replaces after an error).
type Watermarks struct {
	brokers []string
	cfg     *sarama.Config
	mu      sync.Mutex
	client  sarama.Client
}

// NewWatermarks returns a Watermarks on brokers; Close releases its client.
func NewWatermarks(brokers []string, cfg *sarama.Config) *Watermarks {
	return &Watermarks{brokers: brokers, cfg: cfg}
}

// Get implements analytics.WatermarksFunc. sarama takes no context, so ctx only bounds the
// wait; a call still running when ctx ends finishes on its own.
func (w *Watermarks) Get(ctx context.Context, topics []string) (map[analytics.Partition]analytics.Watermarks, error) {
	type result struct {
		m   map[analytics.Partition]analytics.Watermarks
		err error
	}
	done := make(chan result, 1)
	go func() {
		m, err := w.get(topics)
		done <- result{m, err}
	}()
	select {
	case r := <-done:
		return r.m, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (w *Watermarks) get(topics []string) (map[analytics.Partition]analytics.Watermarks, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.client == nil {
		c, err := sarama.NewClient(w.brokers, w.cfg)
		if err != nil {
			return nil, err
		}
		w.client = c
	}
	out := map[analytics.Partition]analytics.Watermarks{}
	fail := func(err error) (map[analytics.Partition]analytics.Watermarks, error) {
		_ = w.client.Close()
		w.client = nil
		return nil, err
	}
	if err := w.client.RefreshMetadata(topics...); err != nil {
		return fail(err)
	}
	for _, t := range topics {
		parts, err := w.client.Partitions(t)
		if err != nil {
			return fail(err)
		}
		for _, p := range parts {
			oldest, err := w.client.GetOffset(t, p, sarama.OffsetOldest)
			if err != nil {
				return fail(err)
			}
			newest, err := w.client.GetOffset(t, p, sarama.OffsetNewest)
			if err != nil {
				return fail(err)
			}
			out[analytics.Partition{Topic: t, Partition: p}] = analytics.Watermarks{Oldest: oldest, Newest: newest}
		}
	}
	return out, nil
}

// Close releases the client.
func (w *Watermarks) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.client != nil {
		err := w.client.Close()
		w.client = nil
		return err
	}
	return nil
}
