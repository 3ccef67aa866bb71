package audit

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/errs"
)

// headerEventType is the message header naming an event's type (outbox.EventHeaders).
const headerEventType = "event-type"

// ReadTopic reads the audit topic through client from its first message to its last (every
// partition, up to the high-water mark it had when the read began, with a consumer of no
// group that commits nothing) and returns what it holds about each of services' chains. It is
// what `pms audit verify --against-topic` and the services' GET /audit/verify?againstTopic=true
// compare the databases with; ctx bounds it.
func ReadTopic(ctx context.Context, client sarama.Client, services []string) (map[string]*Published, error) {
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, err
	}
	defer consumer.Close()
	parts, err := client.Partitions(Topic)
	if err != nil {
		return nil, err
	}
	out := map[string]*Published{}
	for _, name := range services {
		out[name] = &Published{Entries: map[int64]string{}}
	}
	for _, p := range parts {
		end, err := client.GetOffset(Topic, p, sarama.OffsetNewest)
		if err != nil {
			return nil, err
		}
		start, err := client.GetOffset(Topic, p, sarama.OffsetOldest)
		if err != nil {
			return nil, err
		}
		if end <= start {
			continue
		}
		if err := readPartition(ctx, consumer, p, start, end, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readPartition folds partition p's messages from start up to (not including) end into out.
func readPartition(ctx context.Context, consumer sarama.Consumer, p int32, start, end int64, out map[string]*Published) error {
	pc, err := consumer.ConsumePartition(Topic, p, start)
	if err != nil {
		return err
	}
	defer pc.Close()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e := <-pc.Errors():
			if e != nil {
				return e
			}
		case m := <-pc.Messages():
			var typ string
			for _, h := range m.Headers {
				if h != nil && string(h.Key) == headerEventType {
					typ = string(h.Value)
				}
			}
			for name, pub := range out {
				if err := pub.Add(name, typ, m.Value); err != nil {
					return fmt.Errorf("partition %d offset %d: not an audit event: %w", p, m.Offset, err)
				}
			}
			if m.Offset >= end-1 {
				return nil
			}
		}
	}
}

// DefaultTopicTimeout bounds a verification against the topic answered to a request: under
// the gateway's upstream timeout (10 s), so a topic that cannot be read in time answers 503
// from the service rather than 504 from the gateway.
const DefaultTopicTimeout = 8 * time.Second

type againstTopicKey struct{}

// WithAgainstTopic returns ctx asking a service's VerifyAudit to compare its chain with the
// audit topic too (GET /audit/verify?againstTopic=true, VerifyAuditRequest.against_topic):
// the endpoint puts its request's flag here, and a client endpoint set reads it back into
// the request it sends, so the Service interfaces keep their signature.
func WithAgainstTopic(ctx context.Context, against bool) context.Context {
	return context.WithValue(ctx, againstTopicKey{}, against)
}

// AgainstTopic reports whether ctx asks for a verification against the topic.
func AgainstTopic(ctx context.Context) bool {
	v, _ := ctx.Value(againstTopicKey{}).(bool)
	return v
}

// TopicCheck is what a service needs to compare its chain with the audit topic on request
// (GET /audit/verify?againstTopic=true): a short-lived reader of the topic and the public
// keys its checkpoints verify with.
type TopicCheck struct {
	// Read reads the audit topic from its beginning to its current end (ReadTopic with a
	// client of its own, closed when it returns).
	Read func(ctx context.Context) (map[string]*Published, error)
	// Keys returns the service's checkpoint public keys, retired ones included.
	Keys func() (map[string]ed25519.PublicKey, error)
	// Timeout bounds the read and the comparison (default DefaultTopicTimeout): past it
	// the answer is unavailable.
	Timeout time.Duration

	// one lets one read of the topic run at a time per service: concurrent verifications
	// wait their turn (within their Timeout) instead of each reading the whole topic at once.
	once sync.Once
	one  chan struct{}
}

// acquire waits for the service's one topic read slot, or ctx's end.
func (tc *TopicCheck) acquire(ctx context.Context) (release func(), err error) {
	tc.once.Do(func() { tc.one = make(chan struct{}, 1) })
	select {
	case tc.one <- struct{}{}:
		return func() { <-tc.one }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// ErrTopicUnavailable answers a verification against the topic that could not read it (in
// time, or at all): nothing is known about the chain from it, so it is no verdict.
var ErrTopicUnavailable = errs.New(errs.Unavailable, "the audit topic could not be read in time; try again, or run pms audit verify --against-topic")

// VerifyService is the verdict a service's GET /audit/verify answers for its chain in table:
// the chain walked alone (VerifyTable) or, with againstTopic, compared with the entries and
// signed checkpoints on the audit topic as well (VerifyAgainst, the verdict of `pms audit
// verify --against-topic`). Without a TopicCheck (a service that publishes no chain, or runs
// without Kafka) againstTopic changes nothing: the chain is its own evidence, as the command
// line treats it. A topic that cannot be read within tc.Timeout is ErrTopicUnavailable.
func VerifyService(ctx context.Context, d *db.DB, table, service string, againstTopic bool, tc *TopicCheck) (Report, error) {
	if !againstTopic || tc == nil || tc.Read == nil {
		return VerifyTable(ctx, d, table, service)
	}
	timeout := tc.Timeout
	if timeout <= 0 {
		timeout = DefaultTopicTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var keys map[string]ed25519.PublicKey
	if tc.Keys != nil {
		var err error
		if keys, err = tc.Keys(); err != nil {
			return Report{}, errs.Wrap(errs.Internal, "internal error", fmt.Errorf("audit: checkpoint keys: %w", err))
		}
	}
	release, err := tc.acquire(ctx)
	if err == nil {
		defer release()
		var pub map[string]*Published
		if pub, err = tc.Read(ctx); err == nil {
			return verifyPublished(ctx, d, table, service, pub, keys)
		}
	}
	if k := errs.KindOf(ctx.Err()); k == errs.Canceled {
		return Report{}, errs.FromContext(ctx.Err(), "")
	}
	return Report{}, errs.Wrap(errs.Unavailable, ErrTopicUnavailable.Message, err)
}

// verifyPublished compares the chain in table with what the topic holds about service.
func verifyPublished(ctx context.Context, d *db.DB, table, service string, pub map[string]*Published, keys map[string]ed25519.PublicKey) (Report, error) {
	p := pub[service]
	if p == nil {
		p = &Published{}
	}
	rep, err := VerifyAgainst(ctx, d, table, service, *p, keys)
	if err != nil && ctx.Err() != nil {
		return Report{}, errs.Wrap(errs.Unavailable, ErrTopicUnavailable.Message, err)
	}
	return rep, err
}
