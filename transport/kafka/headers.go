package kafkatransport

import (
	"context"
	"strings"

	"github.com/IBM/sarama"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/observe"
	"github.com/pms/pms/transport/wire"
)

// Header names (API.md, "Kafka"). Header names are matched case-insensitively on the way in
// and written in lower case.
const (
	HeaderRequestID      = "x-request-id"
	HeaderAuthorization  = "authorization"
	HeaderContentType    = "content-type"
	HeaderEventType      = "event-type"
	HeaderEventID        = "event-id"
	HeaderEndpoint       = "endpoint"
	HeaderIfMatch        = "if-match"
	HeaderIdempotencyKey = "idempotency-key"
	HeaderReplyTo        = "reply-to"
	HeaderCorrelationID  = "correlation-id"
	HeaderStatus         = "status"

	// Dead-letter headers: why and whence a message was dead-lettered. The original headers
	// are kept beside them.
	HeaderDLQReason    = "dlq-reason"        // a human-readable reason (the error's message)
	HeaderDLQKind      = "dlq-error"         // the contract's error word, or "decode"
	HeaderDLQTopic     = "dlq-topic"         // the topic the message came from
	HeaderDLQPartition = "dlq-partition"     // its partition
	HeaderDLQOffset    = "dlq-offset"        // its offset
	HeaderDLQGroup     = "dlq-group"         // the consumer group that gave up on it
	HeaderDLQAttempts  = "dlq-attempts"      // how many times the handler was tried
	HeaderDLQSubject   = "dlq-token-subject" // the sub of the bearer token the message carried (never the token)
	HeaderDLQRedacted  = "dlq-redacted"      // "fields" (credential fields redacted) or "body" (dropped)
)

// Content types of message values.
const (
	ContentTypeProtobuf = "application/x-protobuf"
	ContentTypeJSON     = wire.ContentTypeJSON
)

// DLQSuffix is appended to a topic's name to name its dead-letter topic.
const DLQSuffix = ".dlq"

// RepliesSuffix is how every topic a command may ask its reply on must end.
const RepliesSuffix = ".replies"

// Header returns the value of the first header called name (case-insensitive) and whether
// there was one.
func Header(msg *sarama.ConsumerMessage, name string) (string, bool) {
	for _, h := range msg.Headers {
		if h != nil && strings.EqualFold(string(h.Key), name) {
			return string(h.Value), true
		}
	}
	return "", false
}

// headerCount returns how many headers are called name.
func headerCount(msg *sarama.ConsumerMessage, name string) int {
	n := 0
	for _, h := range msg.Headers {
		if h != nil && strings.EqualFold(string(h.Key), name) {
			n++
		}
	}
	return n
}

// RequestIDToContext is a SubscriberBefore that puts the message's x-request-id (when well
// formed, else a new one) into the context, so every log line and audit row about the
// message carries the id of the request that caused it.
func RequestIDToContext(ctx context.Context, msg *sarama.ConsumerMessage) context.Context {
	id, _ := Header(msg, HeaderRequestID)
	return observe.WithRequestID(ctx, observe.RequestIDOrNew(id))
}

// TokenToContext is a SubscriberBefore that puts the bearer token of the authorization header
// into the context, where the authentication middleware finds it, as it finds an HTTP
// caller's. A command message acts on its sender's behalf (API.md, "Who acts"). A value that
// is not a bearer token of RFC 6750's syntax carries none (wire.TokenToContext).
func TokenToContext(ctx context.Context, msg *sarama.ConsumerMessage) context.Context {
	v, _ := Header(msg, HeaderAuthorization)
	return wire.TokenToContext(ctx, v)
}

// RequestIDToHeaders is a PublisherBefore that copies the context's request id into the
// message's x-request-id header.
func RequestIDToHeaders(ctx context.Context, msg *sarama.ProducerMessage) context.Context {
	if id := observe.RequestID(ctx); id != "" {
		SetHeader(msg, HeaderRequestID, id)
	}
	return ctx
}

// TokenToHeaders is a PublisherBefore that forwards the context's bearer token as the
// authorization header, so a command published on a user's behalf carries that user's token.
func TokenToHeaders(ctx context.Context, msg *sarama.ProducerMessage) context.Context {
	if tok := authz.Token(ctx); tok != "" {
		SetHeader(msg, HeaderAuthorization, "Bearer "+tok)
	}
	return ctx
}

// SetHeader sets header name of msg to value, replacing any header of that name.
func SetHeader(msg *sarama.ProducerMessage, name, value string) {
	out := msg.Headers[:0]
	for _, h := range msg.Headers {
		if !strings.EqualFold(string(h.Key), name) {
			out = append(out, h)
		}
	}
	msg.Headers = append(out, sarama.RecordHeader{Key: []byte(name), Value: []byte(value)})
}
