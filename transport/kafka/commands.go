package kafkatransport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/IBM/sarama"
	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/kit/transport"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/idempotency"
	"github.com/pms/pms/pkg/platform/observe"
	"github.com/pms/pms/transport/wire"
)

// Command is one operation a command topic offers (API.md, "Kafka-triggered endpoints"):
// the endpoint it drives (the very endpoint REST and gRPC serve), how a message becomes its
// request, and how its response becomes a reply (the REST status and body).
type Command struct {
	Endpoint endpoint.Endpoint
	// Decode builds the request from the message: its value is the REST body, its headers
	// hold the path parameters, if-match and idempotency-key. Use Body, PathParam, IfMatch.
	Decode func(ctx context.Context, msg *sarama.ConsumerMessage) (any, error)
	// Encode returns the REST status and body (nil for none) of a response.
	Encode func(ctx context.Context, resp any) (status int, body any)
}

// CommandOptions configure NewCommandSubscriber.
type CommandOptions struct {
	// Producer publishes replies and dead letters. Required.
	Producer sarama.SyncProducer
	// Replies, when set, keeps the replies of commands sent with an idempotency-key, so that
	// a repeat gets the stored reply and changes nothing.
	Replies *idempotency.Replies
	// Verifier checks a command's token before its stored reply is looked up: replies are
	// kept per user (token subject), so a repeat is answered only to whoever sent the
	// original, and a message without a valid token never reads one (it goes on to the
	// endpoint, whose guard refuses and audits it). Required with Replies.
	Verifier *authz.Verifier
	// ReplyPrincipals, when set, are the principals a reply may go to: a reply-to must then be
	// "<principal>.replies" of one of them (RepliesOf), the topic only that principal may read.
	// Nil accepts any topic ending in ".replies" (a cluster without ACLs).
	ReplyPrincipals []string
	// Metrics and Group label the consumer metrics.
	Metrics *Metrics
	Group   string
	// Logger receives dead letters, failures to reply and internal errors (ids and kinds).
	Logger log.Logger
	// Options are added to the subscriber's own (retry policy, timeouts, finalizers).
	Options []SubscriberOption
}

// commandRequest is a decoded command: which operation, its request, and what a reply needs.
type commandRequest struct {
	name    string
	cmd     Command
	req     any
	idemKey string
	hash    string
}

// reply is a command's outcome as sent back: the REST status and body.
type reply struct {
	status int
	body   []byte
}

// Limits on command headers. A header that breaks them makes the message undecodable.
const (
	maxHeaderValue = 200
	maxTopicName   = 249
)

// NewCommandSubscriber returns the Subscriber of a command topic. The endpoint header picks
// the command; a reply-to header (a topic ending in ".replies") asks for a reply, with the
// correlation-id and the HTTP status as headers and the REST body (or the contract's error
// body) as value. A message that cannot be decoded or fails validation is dead-lettered (and
// answered when it asked for a reply); a refusal (conflict, not found...) is only answered;
// a reply-to that does not end in ".replies" is refused: dead-lettered, never answered.
func NewCommandSubscriber(commands map[string]Command, o CommandOptions) *Subscriber {
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	if o.Replies != nil && o.Verifier == nil {
		panic("kafkatransport: CommandOptions.Replies needs a Verifier (stored replies are per user)")
	}
	cs := &commandServer{commands: commands, o: o}
	opts := []SubscriberOption{
		SubscriberBefore(RequestIDToContext, TokenToContext, func(ctx context.Context, msg *sarama.ConsumerMessage) context.Context {
			return observe.WithClientAddr(ctx, "kafka:"+msg.Topic)
		}),
		SubscriberErrorEncoder(cs.encodeError),
		SubscriberErrorHandler(LogErrorHandler(o.Logger)),
		SubscriberDeadLetter(o.Producer),
		SubscriberMetrics(o.Metrics, o.Group),
		SubscriberLogger(o.Logger),
	}
	return NewSubscriber(cs.endpoint, cs.decode, cs.encode, append(opts, o.Options...)...)
}

type commandServer struct {
	commands map[string]Command
	o        CommandOptions
}

// replyTo returns the message's reply topic, "" when it asked for none, and whether it is
// acceptable.
func replyTo(msg *sarama.ConsumerMessage) (string, bool) {
	if headerCount(msg, HeaderReplyTo) > 1 {
		return "", false
	}
	t, ok := Header(msg, HeaderReplyTo)
	if !ok {
		return "", true
	}
	return t, validReplyTopic(t)
}

// validReplyTopic: a legal Kafka topic name that ends in ".replies".
func validReplyTopic(t string) bool {
	if len(t) <= len(RepliesSuffix) || len(t) > maxTopicName || t[len(t)-len(RepliesSuffix):] != RepliesSuffix {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// printableHeader returns header name (at most once, printable ASCII, at most 200 bytes).
func printableHeader(msg *sarama.ConsumerMessage, name string) (string, error) {
	if headerCount(msg, name) > 1 {
		return "", errs.Invalid(map[string]string{name: "must be given at most once"})
	}
	v, _ := Header(msg, name)
	if len(v) > maxHeaderValue {
		return "", errs.Invalid(map[string]string{name: "must be at most 200 characters"})
	}
	if !wire.PrintableASCII(v) {
		return "", errs.Invalid(map[string]string{name: "must be printable ASCII"})
	}
	return v, nil
}

// replyTopic is replyTo, and with ReplyPrincipals also "the reply topic of one of them".
func (cs *commandServer) replyTopic(msg *sarama.ConsumerMessage) (string, bool) {
	t, ok := replyTo(msg)
	if !ok || t == "" || cs.o.ReplyPrincipals == nil {
		return t, ok
	}
	for _, p := range cs.o.ReplyPrincipals {
		if t == RepliesOf(p) {
			return t, true
		}
	}
	return "", false
}

func (cs *commandServer) decode(ctx context.Context, msg *sarama.ConsumerMessage) (any, error) {
	if _, ok := cs.replyTopic(msg); !ok {
		if cs.o.ReplyPrincipals != nil {
			return nil, errs.Invalid(map[string]string{HeaderReplyTo: "must be the reply topic of a principal: <principal>.replies"})
		}
		return nil, errs.Invalid(map[string]string{HeaderReplyTo: "must be a topic whose name ends in .replies"})
	}
	if _, err := printableHeader(msg, HeaderCorrelationID); err != nil {
		return nil, err
	}
	name, err := printableHeader(msg, HeaderEndpoint)
	if err != nil {
		return nil, err
	}
	cmd, ok := cs.commands[name]
	if !ok {
		return nil, errs.Invalid(map[string]string{HeaderEndpoint: "must name an operation of this topic"})
	}
	key, err := printableHeader(msg, HeaderIdempotencyKey)
	if err != nil {
		return nil, err
	}
	req, err := cmd.Decode(ctx, msg)
	if err != nil {
		return nil, err
	}
	cr := commandRequest{name: name, cmd: cmd, req: req, idemKey: key}
	if key != "" {
		cr.hash = requestHash(msg)
	}
	return cr, nil
}

// requestHash fingerprints what a command asks (its operation, path parameters,
// precondition and body), to tell a true repeat from a reuse of its idempotency key.
func requestHash(msg *sarama.ConsumerMessage) string {
	h := sha256.New()
	for _, name := range []string{HeaderEndpoint, "id", "invoiceId", HeaderIfMatch} {
		v, _ := Header(msg, name)
		fmt.Fprintf(h, "%d:%s;", len(v), v)
	}
	h.Write(msg.Value)
	return hex.EncodeToString(h.Sum(nil))
}

var errIdempotencyConflict = errs.New(errs.Conflict, "the idempotency-key was used with a different request")

// endpoint runs the command's endpoint, or answers a repeat from the stored reply.
func (cs *commandServer) endpoint(ctx context.Context, request any) (any, error) {
	cr, ok := request.(commandRequest)
	if !ok {
		return nil, errs.Wrap(errs.Internal, "internal error", fmt.Errorf("kafkatransport: command request %T", request))
	}
	useStore := cr.idemKey != "" && cs.o.Replies != nil
	scope := cr.name
	if useStore {
		p, err := cs.o.Verifier.Verify(ctx, authz.Token(ctx))
		useStore = err == nil
		scope = cr.name + "/" + p.Subject
	}
	if useStore {
		stored, found, err := cs.o.Replies.Get(ctx, scope, cr.idemKey)
		if err != nil {
			return nil, err
		}
		if found {
			if stored.RequestHash != cr.hash {
				return nil, errIdempotencyConflict
			}
			return reply{status: stored.Status, body: stored.Body}, nil
		}
	}
	resp, err := cr.cmd.Endpoint(ctx, cr.req)
	if err != nil {
		return nil, err
	}
	status, body := cr.cmd.Encode(ctx, resp)
	rep := reply{status: status}
	if body != nil {
		if rep.body, err = json.Marshal(body); err != nil {
			return nil, errs.Wrap(errs.Internal, "internal error", err)
		}
	}
	if useStore {
		// The effect is committed; failing to store its reply must not make the command run
		// again, so this is logged, not returned. The stored copy keeps no credential (an
		// invite's token is shown once, in the first reply): a repeat gets it redacted.
		stored, _ := redactCredentials(rep.body)
		if err := cs.o.Replies.Put(ctx, scope, cr.idemKey, idempotency.Reply{RequestHash: cr.hash, Status: rep.status, Body: nonNilBytes(stored)}); err != nil {
			_ = level.Error(cs.o.Logger).Log("msg", "storing a command reply failed", "endpoint", cr.name,
				"request_id", observe.RequestID(ctx), "err", err)
		}
	}
	return rep, nil
}

func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// encode sends the success reply, when one was asked for.
func (cs *commandServer) encode(ctx context.Context, msg *sarama.ConsumerMessage, resp any) error {
	rep, ok := resp.(reply)
	if !ok {
		return errs.Wrap(errs.Internal, "internal error", fmt.Errorf("kafkatransport: command response %T", resp))
	}
	return cs.sendReply(ctx, msg, rep)
}

// encodeError sends the error reply: the contract's error body and status (wire.Error),
// exactly as REST would have answered. A message whose reply-to is not acceptable gets none.
func (cs *commandServer) encodeError(ctx context.Context, err error, msg *sarama.ConsumerMessage) {
	var de *DecodeError
	if errors.As(err, &de) {
		err = de.Err
	}
	status, body := wire.Error(ctx, err)
	if body.RequestID == "" {
		body.RequestID = observe.NewRequestID()
	}
	body.Candidates = candidateIDs(body.Candidates)
	b, _ := json.Marshal(body) // an ErrorBody always encodes
	if serr := cs.sendReply(ctx, msg, reply{status: status, body: b}); serr != nil {
		_ = level.Warn(cs.o.Logger).Log("msg", "error reply not sent", "topic", msg.Topic, "request_id", observe.RequestID(ctx), "err", serr)
	}
}

func (cs *commandServer) sendReply(ctx context.Context, msg *sarama.ConsumerMessage, rep reply) error {
	topic, ok := cs.replyTopic(msg)
	if !ok || topic == "" {
		return nil
	}
	out := &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(nonNilBytes(rep.body))}
	if msg.Key != nil {
		out.Key = sarama.ByteEncoder(msg.Key)
	}
	corr, _ := printableHeader(msg, HeaderCorrelationID)
	SetHeader(out, HeaderCorrelationID, corr)
	SetHeader(out, HeaderStatus, strconv.Itoa(rep.status))
	SetHeader(out, HeaderContentType, ContentTypeJSON)
	SetHeader(out, HeaderRequestID, observe.RequestID(ctx))
	if _, _, err := cs.o.Producer.SendMessage(out); err != nil {
		return fmt.Errorf("kafkatransport: reply to %s: %w", topic, err)
	}
	return nil
}

// Body decodes the message value, a REST request body, into a T with the contract's body
// rules (wire.DecodeBody: one JSON object, UTF-8, no unknown fields, at most 1 MiB), so a
// command is judged exactly as the same body over REST.
func Body[T any](msg *sarama.ConsumerMessage) (T, error) {
	return wire.DecodeBody[T](msg.Value)
}

// NoBody checks that a command that takes no body (a delete) has none: an empty value, or an
// empty JSON object.
func NoBody(msg *sarama.ConsumerMessage) error {
	v := bytes.TrimSpace(msg.Value)
	if len(v) == 0 || string(v) == "{}" {
		return nil
	}
	return errs.New(errs.InvalidArgument, "this operation takes no body")
}

// PathParam returns the required path parameter name (a header of that name), at most
// wire.MaxIDBytes as a REST path id; the service judges its form.
func PathParam(msg *sarama.ConsumerMessage, name string) (string, error) {
	if headerCount(msg, name) > 1 {
		return "", errs.Invalid(map[string]string{name: "must be given at most once"})
	}
	v, ok := Header(msg, name)
	switch {
	case !ok || v == "":
		return "", errs.Invalid(map[string]string{name: "is required (a message header)"})
	case len(v) > wire.MaxIDBytes:
		return "", errs.Invalid(map[string]string{name: "must be at most " + strconv.Itoa(wire.MaxIDBytes) + " bytes"})
	}
	return v, nil
}

// IfMatch reads the optional if-match header with the rules of REST's If-Match
// (wire.IfMatchVersion).
func IfMatch(msg *sarama.ConsumerMessage) (int64, error) {
	return wire.IfMatchVersion(headerValues(msg, HeaderIfMatch))
}

// IdempotencyKey reads the optional idempotency-key header with the rules of REST's
// Idempotency-Key (wire.IdempotencyKey).
func IdempotencyKey(msg *sarama.ConsumerMessage) (string, error) {
	return wire.IdempotencyKey(headerValues(msg, HeaderIdempotencyKey))
}

// headerValues returns the values of every message header called name (name in lower case;
// keys are compared in lower case).
func headerValues(msg *sarama.ConsumerMessage, name string) []string {
	var vs []string
	for _, rh := range msg.Headers {
		if rh != nil && len(rh.Key) == len(name) && string(bytes.ToLower(rh.Key)) == name {
			vs = append(vs, string(rh.Value))
		}
	}
	return vs
}

// LogErrorHandler logs the final errors of messages that are ours to worry about (internal,
// unavailable, timeout), with ids and kinds only.
func LogErrorHandler(logger log.Logger) transport.ErrorHandler {
	return transport.ErrorHandlerFunc(func(ctx context.Context, err error) {
		switch errs.KindOf(err) {
		case errs.Internal, errs.Unavailable, errs.Timeout:
			_ = level.Error(logger).Log("msg", "kafka message failed", "transport", "kafka",
				"request_id", observe.RequestID(ctx), "error", string(errs.KindOf(err)), "cause", err.Error())
		}
	})
}

// candidateIDs keeps only the id and score of each candidate of a possible_duplicate reply:
// a reply topic cannot be erased, so it never holds a candidate's PHI or which of its fields
// agree; the caller reads the candidates over the audited API (GET /patients/{id}).
func candidateIDs(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return raw
	}
	var cs []struct {
		ID    string  `json:"id"`
		Score float64 `json:"score"`
	}
	if err := json.Unmarshal(raw, &cs); err != nil {
		return json.RawMessage("[]")
	}
	b, _ := json.Marshal(cs)
	return b
}
