package kafkatransport

import (
	"context"

	"github.com/IBM/sarama"
	"github.com/go-kit/kit/endpoint"
	"github.com/pms/pms/pkg/platform/errs"
)

// EncodeRequestFunc fills a message (key, value, headers) from an endpoint request. The
// topic is the Publisher's.
type EncodeRequestFunc func(context.Context, *sarama.ProducerMessage, any) error

// PublisherRequestFunc may put information from the context into the message before it is
// sent (PublisherBefore): a request id, a token.
type PublisherRequestFunc func(context.Context, *sarama.ProducerMessage) context.Context

// Published is what a Publisher's endpoint returns: where the message landed.
type Published struct {
	Topic     string
	Partition int32
	Offset    int64
}

// Publisher is the client side: an endpoint that produces one message to a topic and returns
// where it landed once the broker acknowledged it (acks as the producer is configured).
type Publisher struct {
	producer sarama.SyncProducer
	topic    string
	enc      EncodeRequestFunc
	before   []PublisherRequestFunc
}

// PublisherOption sets an optional parameter of a Publisher.
type PublisherOption func(*Publisher)

// PublisherBefore adds functions run on the message before it is sent.
func PublisherBefore(f ...PublisherRequestFunc) PublisherOption {
	return func(p *Publisher) { p.before = append(p.before, f...) }
}

// NewPublisher returns a Publisher of topic through producer.
func NewPublisher(producer sarama.SyncProducer, topic string, enc EncodeRequestFunc, opts ...PublisherOption) *Publisher {
	p := &Publisher{producer: producer, topic: topic, enc: enc}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Endpoint returns the endpoint that publishes. A failure to encode is InvalidArgument; a
// failure to produce is Unavailable (nothing is known to be written; a retry may duplicate,
// which consumers deduplicate).
func (p *Publisher) Endpoint() endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		msg := &sarama.ProducerMessage{Topic: p.topic}
		if err := p.enc(ctx, msg, request); err != nil {
			if errs.KindOf(err) == errs.Internal {
				return nil, errs.Wrap(errs.InvalidArgument, "the message could not be encoded", err)
			}
			return nil, err
		}
		for _, f := range p.before {
			ctx = f(ctx, msg)
		}
		if err := ctx.Err(); err != nil {
			return nil, errs.Wrap(errs.Timeout, "the request timed out", err)
		}
		partition, offset, err := p.producer.SendMessage(msg)
		if err != nil {
			return nil, errs.Wrap(errs.Unavailable, "the message broker is unavailable", err)
		}
		return Published{Topic: msg.Topic, Partition: partition, Offset: offset}, nil
	}
}
