package kafkatransport

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/kit/transport"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
	"github.com/pms/pms/pkg/platform/outbox"
)

// DecodeRequestFunc turns a consumed message into an endpoint request. Its errors are
// permanent: the message is dead-lettered (after the ErrorEncoder has had its say).
type DecodeRequestFunc func(context.Context, *sarama.ConsumerMessage) (request any, err error)

// EncodeResponseFunc does what a successful endpoint response calls for (publish a reply,
// for instance). It runs once, after the endpoint succeeded; its error goes to the
// ErrorHandler and does not undo the message (the endpoint's effect is done).
type EncodeResponseFunc func(context.Context, *sarama.ConsumerMessage, any) error

// RequestFunc may take information from a consumed message into the context (SubscriberBefore).
type RequestFunc func(context.Context, *sarama.ConsumerMessage) context.Context

// SubscriberResponseFunc may act on the context and the endpoint's response after success,
// before the response is encoded (SubscriberAfter).
type SubscriberResponseFunc func(context.Context, *sarama.ConsumerMessage, any) context.Context

// ErrorEncoder tells the sender about a final failure (an error reply), once per message.
type ErrorEncoder func(ctx context.Context, err error, msg *sarama.ConsumerMessage)

// SubscriberFinalizerFunc runs last for every message taken, with its final error (nil on
// success).
type SubscriberFinalizerFunc func(ctx context.Context, msg *sarama.ConsumerMessage, err error)

// Disposition is what the Subscriber does with a message whose handling failed.
type Disposition int

const (
	// Retry: the error may be transient or may be this message's (an internal error, a rate
	// limit). Try again after a backoff; when the attempts are used up, dead-letter it.
	Retry Disposition = iota
	// DeadLetter: the message itself is bad (cannot be decoded, fails validation). Encode
	// the error, send the message to <topic>.dlq with the reason, mark it.
	DeadLetter
	// Reject: a business refusal (conflict, not found, not allowed). Encode the error and
	// mark the message; the message was fine, it just cannot be done.
	Reject
	// Wait: a dependency is down (the database unreachable, a deadline passed) and nothing was
	// done. The message is fine and every message behind it would fail the same way, so the
	// partition waits: retried with the capped backoff until it succeeds or the consumer
	// stops, never dead-lettered (that would drop a good event because of an outage; the lag
	// metric shows the wait).
	Wait
)

// DecodeError wraps an error of a DecodeRequestFunc, so a classifier can tell it apart.
type DecodeError struct{ Err error }

func (e *DecodeError) Error() string { return "decode: " + e.Err.Error() }
func (e *DecodeError) Unwrap() error { return e.Err }

// DefaultClassifier is the disposition of PMS errors: decoding failures and invalid input
// are dead-lettered; unavailable and timeout errors wait out the outage, and so does a
// cancelled call (the consumer is stopping: the message stays unmarked and comes back, never
// dead-lettered or counted as a failure); rate-limited and
// internal errors are retried (an internal error may be a database hiccup; a real bug ends in
// the dead-letter topic after the bounded attempts); everything else (conflict, not found,
// gone, precondition failed, unauthenticated, permission denied) is a refusal.
func DefaultClassifier(err error) Disposition {
	var de *DecodeError
	if errors.As(err, &de) {
		return DeadLetter
	}
	switch errs.KindOf(err) {
	case errs.Unavailable, errs.Timeout, errs.Canceled:
		return Wait
	case errs.RateLimited, errs.Internal:
		return Retry
	case errs.InvalidArgument, errs.PayloadTooLarge, errs.UnsupportedMediaType, errs.MethodNotAllowed:
		return DeadLetter
	default:
		return Reject
	}
}

// Retry policy defaults.
const (
	DefaultMaxAttempts = 5
	DefaultMinBackoff  = 100 * time.Millisecond
	DefaultMaxBackoff  = 5 * time.Second
	DefaultTimeout     = 30 * time.Second
)

// Subscriber serves one endpoint from Kafka messages. It is a sarama.ConsumerGroupHandler:
// give it to a Consumer (or to sarama.ConsumerGroup.Consume yourself). Each partition's
// messages are handled one at a time, in offset order, so the order of a key holds.
type Subscriber struct {
	e            endpoint.Endpoint
	dec          DecodeRequestFunc
	enc          EncodeResponseFunc
	before       []RequestFunc
	after        []SubscriberResponseFunc
	errorEncoder ErrorEncoder
	errorHandler transport.ErrorHandler
	finalizer    []SubscriberFinalizerFunc
	classify     func(error) Disposition
	dlq          sarama.SyncProducer
	dlqNoBody    bool
	metrics      *Metrics
	group        string
	logger       log.Logger
	maxAttempts  int
	minBackoff   time.Duration
	maxBackoff   time.Duration
	timeout      time.Duration
	resume       ResumeFunc
	loadFences   func(ctx context.Context) ([]outbox.Fence, error)
	skipped      func(ctx context.Context, p outbox.Position) error
	fences       atomic.Pointer[[]outbox.Fence]
	// claim, when set, replaces ConsumeClaim's one-message-at-a-time loop (the analytics
	// subscriber folds batches: analytics.go).
	claim func(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim)

	quit     chan struct{}
	quitOnce sync.Once
}

// SubscriberOption sets an optional parameter of a Subscriber.
type SubscriberOption func(*Subscriber)

// NewSubscriber returns a Subscriber serving e. enc may be nil (nothing to do on success).
func NewSubscriber(e endpoint.Endpoint, dec DecodeRequestFunc, enc EncodeResponseFunc, opts ...SubscriberOption) *Subscriber {
	s := &Subscriber{
		e: e, dec: dec, enc: enc,
		errorEncoder: func(context.Context, error, *sarama.ConsumerMessage) {},
		errorHandler: transport.ErrorHandlerFunc(func(context.Context, error) {}),
		classify:     DefaultClassifier,
		logger:       log.NewNopLogger(),
		maxAttempts:  DefaultMaxAttempts,
		minBackoff:   DefaultMinBackoff,
		maxBackoff:   DefaultMaxBackoff,
		timeout:      DefaultTimeout,
		quit:         make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// SubscriberBefore adds functions run on the context before the message is decoded.
func SubscriberBefore(f ...RequestFunc) SubscriberOption {
	return func(s *Subscriber) { s.before = append(s.before, f...) }
}

// SubscriberAfter adds functions run after the endpoint succeeded, before encoding.
func SubscriberAfter(f ...SubscriberResponseFunc) SubscriberOption {
	return func(s *Subscriber) { s.after = append(s.after, f...) }
}

// SubscriberErrorEncoder sets what tells the sender about a final failure (an error reply).
func SubscriberErrorEncoder(ee ErrorEncoder) SubscriberOption {
	return func(s *Subscriber) { s.errorEncoder = ee }
}

// SubscriberErrorHandler sets the handler of every final error (for logging), including
// errors of the response encoder and of dead-lettering.
func SubscriberErrorHandler(h transport.ErrorHandler) SubscriberOption {
	return func(s *Subscriber) { s.errorHandler = h }
}

// SubscriberFinalizer adds functions run last for every message taken.
func SubscriberFinalizer(f ...SubscriberFinalizerFunc) SubscriberOption {
	return func(s *Subscriber) { s.finalizer = append(s.finalizer, f...) }
}

// SubscriberClassifier replaces DefaultClassifier.
func SubscriberClassifier(f func(error) Disposition) SubscriberOption {
	return func(s *Subscriber) { s.classify = f }
}

// SubscriberRetry sets the attempts (at least 1) and the backoff between them (doubling from
// min to max, with jitter).
func SubscriberRetry(attempts int, minBackoff, maxBackoff time.Duration) SubscriberOption {
	return func(s *Subscriber) {
		s.maxAttempts = max(attempts, 1)
		s.minBackoff, s.maxBackoff = minBackoff, max(maxBackoff, minBackoff)
	}
}

// SubscriberTimeout bounds one endpoint attempt; default 30 s.
func SubscriberTimeout(d time.Duration) SubscriberOption {
	return func(s *Subscriber) { s.timeout = d }
}

// SubscriberDeadLetterNoBody makes dead letters carry headers only (dlq-redacted: "body"):
// for topics whose bodies hold personal data (patient.commands), which a dead-letter topic
// would otherwise keep beyond any erasure. The reason and the origin (topic, partition,
// offset) still say which message failed and why.
func SubscriberDeadLetterNoBody() SubscriberOption {
	return func(s *Subscriber) { s.dlqNoBody = true }
}

// SubscriberDeadLetter sets the producer that writes dead letters to <topic>.dlq. Without
// one, a message that should be dead-lettered is logged (ids only) and marked.
func SubscriberDeadLetter(p sarama.SyncProducer) SubscriberOption {
	return func(s *Subscriber) { s.dlq = p }
}

// SubscriberMetrics records consumed, retried and dead-lettered messages and the lag, under
// the consumer group's name.
func SubscriberMetrics(m *Metrics, group string) SubscriberOption {
	return func(s *Subscriber) { s.metrics, s.group = m, group }
}

// SubscriberWrap puts mw around the Subscriber's endpoint: a consumer that handles more
// messages than its constructor knows of (billing's merges on the patient topic).
func SubscriberWrap(mw endpoint.Middleware) SubscriberOption {
	return func(s *Subscriber) { s.e = mw(s.e) }
}

// SubscriberLogger sets the logger of dead letters and retries (ids and kinds, never values).
func SubscriberLogger(l log.Logger) SubscriberOption {
	return func(s *Subscriber) { s.logger = l }
}

// ResumeFunc returns, by topic and partition, the next offset a consumer is to apply as its
// own database knows it (outbox.ConsumerOffsets).
type ResumeFunc func(ctx context.Context) (map[string]map[int32]int64, error)

// SubscriberResume makes every claimed partition start at the offset f gives for it (where
// it gives one) instead of the group's committed offset. A consumer that keeps its applied
// offsets in its database, in the transaction that applies each message, then resumes from
// them: after a restore of that database they are behind the broker's committed offsets, and
// starting from the broker's would skip, for good, what the restore took away.
func SubscriberResume(f ResumeFunc) SubscriberOption {
	return func(s *Subscriber) { s.resume = f }
}

// SubscriberFences makes the subscriber skip (mark without handling) every message that one
// of the fences f gives holds (outbox.Fence: an interval of record timestamps of a topic). A
// restore fences, in each consumer's database, the events of the changes it took away from
// their source: they stay on the topic, and applying them would make records of things the
// source no longer has. f is read at each session's start.
func SubscriberFences(f func(ctx context.Context) ([]outbox.Fence, error)) SubscriberOption {
	return func(s *Subscriber) { s.loadFences = f }
}

// SubscriberSkipped gives the subscriber f, called with the place of each message a fence
// skips, so a consumer that resumes from its own offsets records it (outbox.SkipOffset): the
// offsets it resumes from and its lag then move past the fenced interval. A failure is
// logged; the message stays skipped and is read, and skipped, again after a restart.
func SubscriberSkipped(f func(ctx context.Context, p outbox.Position) error) SubscriberOption {
	return func(s *Subscriber) { s.skipped = f }
}

// skip deals with a fenced message: recorded (SubscriberSkipped), marked and counted.
func (s *Subscriber) skip(sess sarama.ConsumerGroupSession, msg *sarama.ConsumerMessage) {
	if s.skipped != nil {
		if err := s.skipped(context.WithoutCancel(sess.Context()), outbox.Position{Topic: msg.Topic, Partition: msg.Partition, Offset: msg.Offset}); err != nil {
			_ = level.Error(s.logger).Log("msg", "cannot record a fenced message's offset", "group", s.group, "topic", msg.Topic, "partition", msg.Partition, "offset", msg.Offset, "err", err)
		}
	}
	sess.MarkMessage(msg, "")
	s.metrics.consumedInc(msg.Topic, s.group, "fenced")
}

// fenced reports whether a fence holds msg.
func (s *Subscriber) fenced(msg *sarama.ConsumerMessage) bool {
	fences := s.fences.Load()
	if fences == nil {
		return false
	}
	for _, f := range *fences {
		if f.Holds(msg.Topic, msg.Timestamp) {
			return true
		}
	}
	return false
}

// Setup implements sarama.ConsumerGroupHandler: it reads the fences (SubscriberFences), and
// with SubscriberResume, it moves each claimed
// partition to the offset the consumer's database gives, or to its oldest when the database
// has applied nothing from it (sarama starts the claim there; an offset the broker no longer
// has, or not yet, falls back to the oldest).
func (s *Subscriber) Setup(sess sarama.ConsumerGroupSession) error {
	if s.loadFences != nil {
		fences, err := s.loadFences(sess.Context())
		if err != nil {
			_ = level.Error(s.logger).Log("msg", "cannot read the consumer's fences", "group", s.group, "err", err)
			return err
		}
		s.fences.Store(&fences)
	}
	if s.resume == nil {
		return nil
	}
	next, err := s.resume(sess.Context())
	if err != nil {
		_ = level.Error(s.logger).Log("msg", "cannot read the consumer's stored offsets", "group", s.group, "err", err)
		return err
	}
	for topic, partitions := range sess.Claims() {
		for _, p := range partitions {
			off, ok := next[topic][p]
			if !ok {
				// Nothing applied from this partition yet: from its oldest offset.
				off = sarama.OffsetOldest
			}
			sess.ResetOffset(topic, p, off, "")
		}
	}
	return nil
}

// Cleanup implements sarama.ConsumerGroupHandler.
func (s *Subscriber) Cleanup(sarama.ConsumerGroupSession) error { return nil }

// ConsumeClaim implements sarama.ConsumerGroupHandler: it handles the claim's messages one by
// one until the claim ends, the session ends or Stop is called, and always returns nil (a
// handler error would make sarama end the session and redeliver, forever). A message is
// marked only once it succeeded, was refused or was dead-lettered; one left unmarked (the
// consumer is stopping) is delivered again later.
func (s *Subscriber) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	if s.claim != nil {
		s.claim(sess, claim)
		return nil
	}
	for {
		select {
		case <-s.quit:
			return nil
		case <-sess.Context().Done():
			return nil
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			select {
			case <-s.quit:
				return nil // taken while stopping: leave it for the next owner
			default:
			}
			if s.fenced(msg) {
				s.skip(sess, msg)
				continue
			}
			// The message is finished even if the session ends meanwhile (stop, rebalance):
			// its context keeps the session's values but not its cancellation, so a
			// database transaction is not cut in half. Only retry waits are cut short.
			if s.Handle(context.WithoutCancel(sess.Context()), msg, sess.Context().Done()) {
				sess.MarkMessage(msg, "")
				s.metrics.setLag(msg.Topic, s.group, msg.Partition, claim.HighWaterMarkOffset()-msg.Offset-1)
			}
		}
	}
}

// Stop makes ConsumeClaim return after the message in hand; a retry backoff in progress is
// cut short, leaving that message unmarked. It is safe to call more than once.
func (s *Subscriber) Stop() { s.quitOnce.Do(func() { close(s.quit) }) }

// Handle runs one message through the subscriber: before functions, decode, the endpoint
// with bounded retries, then after functions and the response encoder, or the error
// encoder and dead-lettering. It reports whether the message is done with (to be marked);
// false means abandon was closed first and the message must be delivered again. ctx is the
// session's context; abandon is closed when waiting must end (the session or the consumer
// is stopping).
func (s *Subscriber) Handle(ctx context.Context, msg *sarama.ConsumerMessage, abandon <-chan struct{}) (done bool) {
	start := time.Now()
	ctx = observe.WithTransport(ctx, "kafka")
	ctx = outbox.WithPosition(ctx, outbox.Position{Topic: msg.Topic, Partition: msg.Partition, Offset: msg.Offset})
	for _, f := range s.before {
		ctx = f(ctx, msg)
	}
	var finalErr error
	defer func() {
		for _, f := range s.finalizer {
			f(ctx, msg, finalErr)
		}
		if done {
			s.metrics.observe(msg.Topic, s.group, time.Since(start).Seconds())
		}
	}()

	req, err := s.decode(ctx, msg)
	attempts := 0
	if err == nil {
		var resp any
		for {
			attempts++
			resp, err = s.call(ctx, req)
			if err == nil {
				for _, f := range s.after {
					ctx = f(ctx, msg, resp)
				}
				if s.enc != nil {
					if eerr := s.encode(ctx, msg, resp); eerr != nil {
						s.errorHandler.Handle(ctx, eerr)
					}
				}
				s.metrics.consumedInc(msg.Topic, s.group, "ok")
				return true
			}
			d := s.classify(err)
			if d != Wait && (d != Retry || attempts >= s.maxAttempts) {
				break
			}
			s.metrics.retried(msg.Topic, s.group)
			lvl := level.Warn
			if errs.KindOf(err) == errs.Canceled {
				lvl = level.Debug // the consumer is stopping: nothing is wrong
			}
			_ = lvl(s.logger).Log("msg", "retrying message", "topic", msg.Topic, "partition", msg.Partition,
				"offset", msg.Offset, "attempt", attempts, "error", string(errs.KindOf(err)), "request_id", observe.RequestID(ctx))
			if !s.wait(abandon, s.backoff(attempts, err)) {
				finalErr = err
				return false
			}
		}
	}
	finalErr = err
	disposition := s.classify(err)
	if disposition == Retry || disposition == Wait {
		disposition = DeadLetter // attempts used up (Wait ends above only when abandoned)
	}
	if disposition == DeadLetter {
		if !s.deadLetter(ctx, msg, err, attempts, abandon) {
			return false
		}
	}
	s.errorEncoder(ctx, err, msg)
	s.errorHandler.Handle(ctx, err)
	if disposition == DeadLetter {
		s.metrics.consumedInc(msg.Topic, s.group, "dead_lettered")
	} else {
		s.metrics.consumedInc(msg.Topic, s.group, "rejected")
	}
	return true
}

// decode runs the decoder, turning its error or panic into a DecodeError.
func (s *Subscriber) decode(ctx context.Context, msg *sarama.ConsumerMessage) (req any, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.logPanic(ctx, msg, p)
			err = &DecodeError{Err: errs.New(errs.InvalidArgument, "the message could not be decoded")}
		}
	}()
	req, err = s.dec(ctx, msg)
	if err != nil {
		err = &DecodeError{Err: err}
	}
	return req, err
}

// call runs the endpoint once, within the attempt timeout; a panic is an internal error.
func (s *Subscriber) call(ctx context.Context, req any) (resp any, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			s.logPanic(ctx, nil, p)
			err = errs.New(errs.Internal, "internal error")
		}
	}()
	return s.e(ctx, req)
}

func (s *Subscriber) encode(ctx context.Context, msg *sarama.ConsumerMessage, resp any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			s.logPanic(ctx, msg, p)
			err = errs.New(errs.Internal, "internal error")
		}
	}()
	return s.enc(ctx, msg, resp)
}

func (s *Subscriber) logPanic(ctx context.Context, msg *sarama.ConsumerMessage, p any) {
	kv := []any{"msg", "panic handling message", "transport", "kafka", "request_id", observe.RequestID(ctx),
		"panic", fmt.Sprintf("%T", p), "stack", string(debug.Stack())}
	if msg != nil {
		kv = append(kv, "topic", msg.Topic, "partition", msg.Partition, "offset", msg.Offset)
	}
	_ = level.Error(s.logger).Log(kv...)
}

// backoff is the wait before attempt n+1: doubling from minBackoff, capped at maxBackoff,
// with ±20% jitter so that many consumers do not retry in step; at least the Retry-After of
// a rate-limit error (capped the same way).
func (s *Subscriber) backoff(n int, err error) time.Duration {
	d := s.minBackoff
	for i := 1; i < n && d < s.maxBackoff; i++ {
		d *= 2
	}
	if e := errs.As(err); e != nil && e.RetryAfter > d {
		d = e.RetryAfter
	}
	d = min(d, s.maxBackoff)
	if d <= 0 {
		return 0
	}
	jitter := time.Duration(rand.Int64N(int64(d)/5 + 1))
	return d - d/10 + jitter
}

// wait sleeps d unless abandon or Stop comes first; it reports whether the full wait passed.
func (s *Subscriber) wait(abandon <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-abandon:
		return false
	case <-s.quit:
		return false
	}
}

// deadLetter writes msg to <topic>.dlq with the reason and its origin in headers, trying
// until it succeeds or abandon/Stop comes (then it reports false: the message stays
// unmarked and comes back).
func (s *Subscriber) deadLetter(ctx context.Context, msg *sarama.ConsumerMessage, cause error, attempts int, abandon <-chan struct{}) bool {
	kind := string(errs.KindOf(cause))
	var de *DecodeError
	if errors.As(cause, &de) {
		kind = "decode"
	}
	reason := errs.As(cause).Message
	if errs.KindOf(cause) == errs.Internal || reason == "" {
		reason = "internal error" // the cause's text is for logs, not for a topic
	}
	if s.dlq == nil {
		_ = level.Error(s.logger).Log("msg", "message dropped: no dead-letter producer", "topic", msg.Topic,
			"partition", msg.Partition, "offset", msg.Offset, "error", kind, "request_id", observe.RequestID(ctx))
		s.metrics.deadLettered(msg.Topic, s.group, kind)
		return true
	}
	out := deadLetterCopy(msg)
	if s.dlqNoBody {
		out.Value = nil
		SetHeader(out, HeaderDLQRedacted, "body")
	}
	for _, kv := range [][2]string{
		{HeaderDLQReason, reason}, {HeaderDLQKind, kind}, {HeaderDLQTopic, msg.Topic},
		{HeaderDLQPartition, strconv.Itoa(int(msg.Partition))}, {HeaderDLQOffset, strconv.FormatInt(msg.Offset, 10)},
		{HeaderDLQGroup, s.group}, {HeaderDLQAttempts, strconv.Itoa(attempts)},
	} {
		SetHeader(out, kv[0], kv[1])
	}
	for n := 1; ; n++ {
		_, _, err := s.dlq.SendMessage(out)
		if err == nil {
			break
		}
		s.errorHandler.Handle(ctx, fmt.Errorf("kafka: dead-letter to %s: %w", out.Topic, err))
		if !s.wait(abandon, s.backoff(n, nil)) {
			return false
		}
	}
	s.metrics.deadLettered(msg.Topic, s.group, kind)
	_ = level.Warn(s.logger).Log("msg", "message dead-lettered", "topic", msg.Topic, "partition", msg.Partition,
		"offset", msg.Offset, "error", kind, "attempts", attempts, "request_id", observe.RequestID(ctx))
	return true
}

// deadLetterCopy is msg as its dead-letter topic keeps it: key, value and headers, but never
// a credential — the authorization header gives way to the subject its token names
// (dlq-token-subject, unverified: for the reader's orientation only) and every password or
// token field of a JSON body is redacted. A body that is not JSON but mentions a password is
// not copied at all (dlq-redacted says so).
func deadLetterCopy(msg *sarama.ConsumerMessage) *sarama.ProducerMessage {
	out := &sarama.ProducerMessage{Topic: msg.Topic + DLQSuffix}
	if msg.Key != nil {
		out.Key = sarama.ByteEncoder(msg.Key)
	}
	for _, h := range msg.Headers {
		if h == nil {
			continue
		}
		if strings.EqualFold(string(h.Key), HeaderAuthorization) {
			if sub := tokenSubject(string(h.Value)); sub != "" {
				out.Headers = append(out.Headers, sarama.RecordHeader{Key: []byte(HeaderDLQSubject), Value: []byte(sub)})
			}
			continue
		}
		out.Headers = append(out.Headers, sarama.RecordHeader{Key: h.Key, Value: h.Value})
	}
	value, redacted := redactCredentials(msg.Value)
	out.Value = sarama.ByteEncoder(value)
	if redacted != "" {
		SetHeader(out, HeaderDLQRedacted, redacted)
	}
	return out
}

// credentialField reports whether a JSON field name holds a credential.
func credentialField(name string) bool {
	n := strings.ToLower(name)
	return strings.Contains(n, "password") || strings.Contains(n, "token") || strings.Contains(n, "secret")
}

// redactCredentials returns body with every credential field (at any depth) replaced by
// "[redacted]", and what was redacted: "fields", "body" (not JSON, but mentioning a
// password: dropped whole) or "".
func redactCredentials(body []byte) ([]byte, string) {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		if bytes.Contains(bytes.ToLower(body), []byte("password")) {
			return nil, "body"
		}
		return body, ""
	}
	changed := false
	var walk func(any) any
	walk = func(x any) any {
		switch t := x.(type) {
		case map[string]any:
			for k, val := range t {
				if credentialField(k) {
					t[k], changed = "[redacted]", true
				} else {
					t[k] = walk(val)
				}
			}
		case []any:
			for i := range t {
				t[i] = walk(t[i])
			}
		}
		return x
	}
	v = walk(v)
	if !changed {
		return body, ""
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, "body"
	}
	return b, "fields"
}

// tokenSubject is the sub claim of a bearer token, read without verifying it, or "".
func tokenSubject(authorization string) string {
	tok, ok := strings.CutPrefix(authorization, "Bearer ")
	if !ok {
		return ""
	}
	return authz.UnverifiedSubject(tok)
}
