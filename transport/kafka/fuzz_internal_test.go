package kafkatransport

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/IBM/sarama"
	"github.com/pms/pms/pkg/auth"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
	"github.com/pms/pms/pkg/platform/typed"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
	"github.com/pms/pms/transport/wire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// headersFrom reads a fuzz input as message headers, one per line: "key:value", a bare
// "key" (nil value), or "!" (a nil header, which a record may hold).
func headersFrom(blob string) []*sarama.RecordHeader {
	if blob == "" {
		return nil
	}
	var hs []*sarama.RecordHeader
	for _, line := range strings.Split(blob, "\n") {
		if line == "!" {
			hs = append(hs, nil)
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		h := &sarama.RecordHeader{Key: []byte(k)}
		if ok {
			h.Value = []byte(v)
		}
		hs = append(hs, h)
	}
	return hs
}

// headerLines writes name/value pairs in headersFrom's form.
func headerLines(kv ...string) string {
	var lines []string
	for i := 0; i+1 < len(kv); i += 2 {
		lines = append(lines, kv[i]+":"+kv[i+1])
	}
	return strings.Join(lines, "\n")
}

// isClientKind: the error kinds a bad message may end in (dead-lettered and answered 4xx).
func isClientKind(k errs.Kind) bool {
	return k == errs.InvalidArgument || k == errs.PayloadTooLarge || k == errs.UnsupportedMediaType
}

// echo is an endpoint that answers its request, so a command's reply shows what was decoded.
func echo(_ context.Context, req any) (any, error) { return req, nil }

// fuzzCommandTopics are the three command topics' real decoders over echo endpoints.
var fuzzCommandTopics = []map[string]Command{
	PatientCommands(patient.Set{CreateEndpoint: echo, UpdateEndpoint: echo, DeleteEndpoint: echo}),
	BillingCommands(billing.Set{CreateInvoiceEndpoint: echo, IssueInvoiceEndpoint: echo, RecordPaymentEndpoint: echo, VoidInvoiceEndpoint: echo}),
	AuthCommands(auth.Set{CreateUserEndpoint: echo, UpdateUserEndpoint: echo}),
}

// commandSeeds are valid and hostile commands of every operation: topic, value, headers.
func commandSeeds() []struct {
	topic          uint8
	value, headers string
} {
	pBody := `{"name":"Ada","email":"ada@example.org","address":"x","dateOfBirth":"1915-12-10"}`
	id := "5f0c1c52-8a53-4c8e-9d43-6c1f0e2b7a11"
	return []struct {
		topic          uint8
		value, headers string
	}{
		{0, pBody, headerLines("endpoint", "CreatePatient", "idempotency-key", "k-1", "reply-to", "a.replies", "correlation-id", "c-1")},
		{0, pBody, headerLines("endpoint", "UpdatePatient", "id", id, "if-match", `W/"3"`, "reply-to", "a.replies")},
		{0, "", headerLines("endpoint", "DeletePatient", "ID", id, "If-Match", `"1"`, "if-match", `"2"`)},
		{0, " {} ", headerLines("endpoint", "DeletePatient", "id", id, "if-match", "*", "reply-to", "evil")},
		{0, pBody, "endpoint:CreatePatient\nendpoint:UpdatePatient\nreply-to:a.replies"},
		{0, pBody, "!\nendpoint\nEndpoint:CreatePatient\nIdempotency-Key:\x00"},
		{1, `{"patientId":"` + id + `","currency":"USD","dueDate":"2026-12-31","lines":[{"description":"x","quantity":1,"unitAmount":1}]}`,
			headerLines("endpoint", "CreateInvoice", "idempotency-key", "k", "reply-to", "billing.replies", "x-request-id", "r-1")},
		{1, `{"amount":1,"method":"card","currency":"EUR"}`, headerLines("endpoint", "RecordPayment", "id", id, "idempotency-key", strings.Repeat("k", 201))},
		{1, "", headerLines("endpoint", "IssueInvoice", "id", id, "reply-to", strings.Repeat("r", 250)+".replies")},
		{1, `{"x":1}`, headerLines("endpoint", "VoidInvoice", "id", strings.Repeat("i", 65))},
		{2, `{"email":"a@b.c","password":"p","role":"admin"}`, headerLines("endpoint", "CreateUser", "reply-to", "auth.replies", "authorization", "Bearer x")},
		{2, `{"email":"a@b.c","role":"admin"}`, headerLines("endpoint", "CreateUser", "reply-to", "auth.replies", "idempotency-key", "k")},
		{2, `{"email":"a@b.c","password":"","role":"admin"}`, headerLines("endpoint", "CreateUser")},
		{2, `{"disabled":true}`, headerLines("endpoint", "DisableUser", "id", "u-1", "reply-to", "auth.replies")},
		{2, `{"disabled":false}`, headerLines("endpoint", "DisableUser", "id", "u-1", "reply-to", "auth.replies")},
		{2, `null`, headerLines("endpoint", "DisableUser", "id", "u-1", "correlation-id", "é")},
		{2, "\xff", headerLines("endpoint", "CreateUser", "reply-to", ".replies")},
		{0, `{"name":` + strings.Repeat("[", 10001), headerLines("endpoint", "CreatePatient", "reply-to", "a.replies")},
		{0, "", ""},
	}
}

// checkDecodedCommand checks what a command decoder accepted: the headers it read obeyed
// their rules, and the request is the one the message describes (its body round-trips).
func checkDecodedCommand(t *testing.T, msg *sarama.ConsumerMessage, cr commandRequest) {
	t.Helper()
	if _, ok := replyTo(msg); !ok {
		t.Fatalf("bad reply-to accepted")
	}
	if name, err := printableHeader(msg, HeaderEndpoint); err != nil || name != cr.name {
		t.Fatalf("endpoint %q decoded as %q", name, cr.name)
	}
	if key, err := printableHeader(msg, HeaderIdempotencyKey); err != nil || key != cr.idemKey || (key != "") != (cr.hash != "") {
		t.Fatalf("idempotency-key %q decoded as %q (hash %q)", key, cr.idemKey, cr.hash)
	}
	id := func(got string) {
		t.Helper()
		want, _ := Header(msg, "id")
		if got != want || got == "" || len(got) > wire.MaxIDBytes || headerCount(msg, "id") != 1 {
			t.Fatalf("id header %q decoded as %q", want, got)
		}
	}
	ifMatch := func(got int64) {
		t.Helper()
		if got < 0 || headerCount(msg, HeaderIfMatch) > 1 {
			t.Fatalf("if-match decoded as %d", got)
		}
	}
	key := func(got string) {
		t.Helper()
		want, _ := Header(msg, HeaderIdempotencyKey)
		if got != strings.TrimSpace(want) {
			t.Fatalf("idempotency-key %q decoded as %q", want, got)
		}
	}
	// roundTrip: the body the request stands for decodes to the same request.
	roundTrip := func(body any, again func(*sarama.ConsumerMessage) (any, error)) {
		t.Helper()
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatalf("accepted body does not encode: %v", err)
		}
		m := *msg
		m.Value = b
		got, err := again(&m)
		if err != nil || !reflect.DeepEqual(got, cr.req) {
			t.Fatalf("%s: %+v re-encoded as %s decodes as %+v, %v", cr.name, cr.req, b, got, err)
		}
	}
	decode := func(m *sarama.ConsumerMessage) (any, error) { return cr.cmd.Decode(context.Background(), m) }
	switch r := cr.req.(type) {
	case patient.CreateRequest:
		key(r.IdempotencyKey)
		roundTrip(r, decode)
	case patient.UpdateRequest:
		id(r.ID)
		ifMatch(r.IfMatch)
		roundTrip(patient.BodyOf(r), decode)
	case patient.DeleteRequest:
		id(r.ID)
		ifMatch(r.IfMatch)
		if NoBody(msg) != nil {
			t.Fatalf("delete with body %q accepted", msg.Value)
		}
	case billing.CreateInvoiceRequest:
		key(r.IdempotencyKey)
		roundTrip(r, decode)
	case billing.PaymentRequest:
		id(r.InvoiceID)
		key(r.IdempotencyKey)
		roundTrip(r, decode)
	case billing.IssueInvoiceRequest:
		id(r.ID)
	case billing.VoidInvoiceRequest:
		id(r.ID)
	case auth.CreateUserRequest:
		if r.Password != "" {
			t.Fatalf("CreateUser with a password accepted: %q", msg.Value)
		}
		roundTrip(r, decode)
	case typed.Rejected:
		// Only a CreateUser carrying a password is decoded into a refusal (answered after
		// the guard), and its error names the field.
		body, err := Body[auth.CreateUserRequest](msg)
		if e := errs.As(r.Err); cr.name != AuthCommandCreateUser || err != nil || body.Password == "" ||
			e == nil || e.Kind != errs.InvalidArgument || e.Fields["password"] == "" {
			t.Fatalf("%s decoded as the refusal %v", cr.name, r.Err)
		}
	case auth.UpdateUserRequest:
		id(r.ID)
		if r.Disabled == nil || !*r.Disabled || r.Role != nil {
			t.Fatalf("DisableUser decoded as %+v", r)
		}
	default:
		t.Fatalf("%s decoded as %T", cr.name, cr.req)
	}
}

// FuzzCommandDecoders drives the real decoders of patient.commands, billing.commands and
// auth.commands (the first byte picks the topic) with any value and any headers (names in
// any case, repeated, nil): every refusal is a client error, never an internal one or a
// panic, and every command accepted is the one its headers and value describe.
func FuzzCommandDecoders(f *testing.F) {
	for _, s := range commandSeeds() {
		f.Add(s.topic, []byte(s.value), s.headers)
	}
	f.Fuzz(func(t *testing.T, topic uint8, value []byte, headers string) {
		cs := &commandServer{commands: fuzzCommandTopics[int(topic)%len(fuzzCommandTopics)]}
		msg := &sarama.ConsumerMessage{Topic: "x.commands", Value: value, Headers: headersFrom(headers)}
		req, err := cs.decode(context.Background(), msg)
		if err != nil {
			if !isClientKind(errs.KindOf(err)) {
				t.Fatalf("%s error for a message: %v", errs.KindOf(err), err)
			}
			return
		}
		checkDecodedCommand(t, msg, req.(commandRequest))
	})
}

// recordingProducer is a SyncProducer that keeps what it is given, so a fuzz target sees
// the replies and dead letters a message caused without a broker.
type recordingProducer struct {
	sarama.SyncProducer
	sent []*sarama.ProducerMessage
}

func (p *recordingProducer) SendMessage(m *sarama.ProducerMessage) (int32, int64, error) {
	p.sent = append(p.sent, m)
	return 0, int64(len(p.sent)), nil
}

func producedHeader(m *sarama.ProducerMessage, name string) (string, int) {
	v, n := "", 0
	for _, h := range m.Headers {
		if string(h.Key) == name {
			v, n = string(h.Value), n+1
		}
	}
	return v, n
}

// FuzzCommandSubscriber runs whole messages through a command topic's Subscriber (before
// functions, decode, endpoint, reply, dead letter) with a producer that records. Whatever
// the message, Handle finishes it; a message with an acceptable reply-to gets exactly one
// reply, with its correlation-id, a 2xx or 4xx status and the REST body (the contract's
// error body for a 4xx); one without gets none; a message that cannot be decoded is
// dead-lettered once, with its value, its headers and the reason.
func FuzzCommandSubscriber(f *testing.F) {
	for _, s := range commandSeeds() {
		f.Add(s.topic, []byte(s.value), s.headers)
	}
	f.Fuzz(func(t *testing.T, topic uint8, value []byte, headers string) {
		p := &recordingProducer{}
		sub := NewCommandSubscriber(fuzzCommandTopics[int(topic)%len(fuzzCommandTopics)], CommandOptions{
			Producer: p, Options: []SubscriberOption{SubscriberRetry(1, 0, 0)},
		})
		msg := &sarama.ConsumerMessage{Topic: "x.commands", Value: value, Headers: headersFrom(headers), Key: []byte("k")}
		if !sub.Handle(context.Background(), msg, nil) {
			t.Fatal("message not finished")
		}
		_, decodeErr := (&commandServer{commands: fuzzCommandTopics[int(topic)%len(fuzzCommandTopics)]}).decode(context.Background(), msg)
		replyTopic, replyOK := replyTo(msg)
		var replies, dead int
		for _, m := range p.sent {
			switch m.Topic {
			case msg.Topic + DLQSuffix:
				dead++
				if kind, _ := producedHeader(m, HeaderDLQKind); kind != "decode" {
					t.Fatalf("dead letter of kind %q", kind)
				}
				if v, _ := m.Value.Encode(); !bytes.Equal(v, msg.Value) || len(m.Headers) < len(msg.Headers) {
					t.Fatalf("dead letter lost the message")
				}
			case replyTopic:
				replies++
				checkReply(t, msg, m)
			default:
				t.Fatalf("message sent to %q", m.Topic)
			}
		}
		if wantDead := decodeErr != nil; (dead == 1) != wantDead || dead > 1 {
			t.Fatalf("%d dead letters for decode error %v", dead, decodeErr)
		}
		if wantReply := replyOK && replyTopic != ""; (replies == 1) != wantReply || replies > 1 {
			t.Fatalf("%d replies to reply-to %q (acceptable: %v)", replies, replyTopic, replyOK)
		}
	})
}

// checkReply: a reply carries the correlation-id, a 2xx or 4xx status, JSON, and for an
// error the contract's error body.
func checkReply(t *testing.T, msg *sarama.ConsumerMessage, m *sarama.ProducerMessage) {
	t.Helper()
	corr, _ := printableHeader(msg, HeaderCorrelationID)
	if got, n := producedHeader(m, HeaderCorrelationID); got != corr || n != 1 {
		t.Fatalf("reply correlation-id %q, want %q", got, corr)
	}
	if id, _ := producedHeader(m, HeaderRequestID); observe.RequestIDOrNew(id) != id {
		t.Fatalf("reply request id %q", id)
	}
	s, _ := producedHeader(m, HeaderStatus)
	status, err := strconv.Atoi(s)
	if err != nil || status < 200 || status >= 500 {
		t.Fatalf("reply status %q", s)
	}
	body, _ := m.Value.Encode()
	if status == http.StatusNoContent && len(body) == 0 {
		return
	}
	if !json.Valid(body) {
		t.Fatalf("reply body %q", body)
	}
	if status >= 400 {
		var e struct {
			Error   errs.Kind `json:"error"`
			Message string    `json:"message"`
		}
		if json.Unmarshal(body, &e) != nil || wire.StatusOf(e.Error) != status || e.Message == "" {
			t.Fatalf("error reply %d %s", status, body)
		}
	}
}

// FuzzMessageHeaders drives every header reader of the Kafka transport with any header list:
// reply-to, correlation-id, endpoint, path parameters, if-match, idempotency-key,
// x-request-id and authorization. Each either refuses with a client error or returns a value
// within its rules.
func FuzzMessageHeaders(f *testing.F) {
	for _, s := range []string{
		headerLines("reply-to", "a.replies", "correlation-id", "c", "id", "x", "if-match", `"3"`, "idempotency-key", "k", "x-request-id", "r-1", "authorization", "Bearer t"),
		headerLines("Reply-To", "a.replies", "REPLY-TO", "b.replies"),
		headerLines("reply-to", ".replies", "id", "", "if-match", "W/", "authorization", "bearer  "),
		headerLines("reply-to", "a\x00.replies", "id", strings.Repeat("i", 65), "if-match", `W/"-1"`, "x-request-id", strings.Repeat("r", 129)),
		headerLines("correlation-id", strings.Repeat("c", 201), "idempotency-key", "\x7f", "authorization", "Basic x"),
		"!\nreply-to\nid\nif-match\nidempotency-key\nauthorization",
		"authorization:Bearer 0k\xf4\xac\x9b\xdb<o",
		"reply-to:a.replies\n!\nreply-to:a.replies",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, headers string) {
		msg := &sarama.ConsumerMessage{Headers: headersFrom(headers)}
		if topic, ok := replyTo(msg); ok && topic != "" && (!validReplyTopic(topic) || !strings.HasSuffix(topic, RepliesSuffix) || headerCount(msg, HeaderReplyTo) != 1) {
			t.Fatalf("reply-to %q accepted", topic)
		}
		for _, name := range []string{HeaderCorrelationID, HeaderEndpoint, HeaderIdempotencyKey} {
			v, err := printableHeader(msg, name)
			if err != nil {
				if !isClientKind(errs.KindOf(err)) {
					t.Fatal(err)
				}
				continue
			}
			if len(v) > maxHeaderValue || strings.IndexFunc(v, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0 {
				t.Fatalf("%s %q accepted", name, v)
			}
		}
		if v, err := PathParam(msg, "id"); err == nil && (v == "" || len(v) > wire.MaxIDBytes) {
			t.Fatalf("id %q accepted", v)
		} else if err != nil && !isClientKind(errs.KindOf(err)) {
			t.Fatal(err)
		}
		if v, err := IfMatch(msg); err == nil && v < 0 {
			t.Fatalf("if-match %d accepted", v)
		} else if err != nil && !isClientKind(errs.KindOf(err)) {
			t.Fatal(err)
		}
		if v, err := IdempotencyKey(msg); err == nil && (len(v) > 200 || v != strings.TrimSpace(v)) {
			t.Fatalf("idempotency-key %q accepted", v)
		} else if err != nil && !isClientKind(errs.KindOf(err)) {
			t.Fatal(err)
		}
		ctx := RequestIDToContext(context.Background(), msg)
		if id := observe.RequestID(ctx); observe.RequestIDOrNew(id) != id {
			t.Fatalf("request id %q", id)
		}
		if tok := authz.Token(TokenToContext(context.Background(), msg)); tok != "" {
			v, _ := Header(msg, HeaderAuthorization)
			if !regexp.MustCompile(`^[A-Za-z0-9._~+/-]+=*$`).MatchString(tok) || !strings.Contains(v, tok) {
				t.Fatalf("authorization %q gave token %q", v, tok)
			}
		}
	})
}

// stubAccounts is the billing service behind BillingPatientEndpoint: it records the accounts
// it was asked to open.
type stubAccounts struct {
	billing.Service
	opened []billing.CreateAccountRequest
}

func (s *stubAccounts) CreateAccount(_ context.Context, r billing.CreateAccountRequest) (billing.Account, error) {
	s.opened = append(s.opened, r)
	return billing.Account{}, nil
}

// TestBillingPatientEndpointRefusesUnstorableEventID: a PATIENT_CREATED whose event id holds
// NUL opens no account and is invalid (dead-lettered), not an internal error retried.
func TestBillingPatientEndpointRefusesUnstorableEventID(t *testing.T) {
	svc := &stubAccounts{}
	ev := &eventsv1.PatientEvent{EventId: "e\x00", EventType: patient.EventCreated, PatientId: "5f0c1c52-8a53-4c8e-9d43-6c1f0e2b7a11"}
	if _, err := BillingPatientEndpoint(svc, nil)(context.Background(), ev); errs.KindOf(err) != errs.InvalidArgument || len(svc.opened) != 0 {
		t.Fatalf("%v, opened %v", err, svc.opened)
	}
	ev.EventId = "e-1"
	if _, err := BillingPatientEndpoint(svc, nil)(context.Background(), ev); err != nil || len(svc.opened) != 1 {
		t.Fatalf("%v, opened %v", err, svc.opened)
	}
}

// FuzzPatientEventConsumer drives billing's consumer of the patient topic: the event decoder
// and the endpoint that opens accounts. A value that is not a PatientEvent, or one the
// endpoint finds invalid, is a client error (dead-lettered); an event accepted round-trips,
// and an account is opened only for a PATIENT_CREATED with an event id that can be stored.
func FuzzPatientEventConsumer(f *testing.F) {
	created := func(id string) []byte {
		b, _ := proto.Marshal(&eventsv1.PatientEvent{EventId: id, EventType: patient.EventCreated, PatientId: "5f0c1c52-8a53-4c8e-9d43-6c1f0e2b7a11", OccurredAt: timestamppb.Now()})
		return b
	}
	upd, _ := proto.Marshal(&eventsv1.PatientEvent{EventId: "e", EventType: patient.EventUpdated, Patient: &eventsv1.PatientRecord{Id: "p"}})
	for _, v := range [][]byte{created("e-1"), created(""), created(strings.Repeat("e", 201)), created("a\x00b"), upd, nil, {0xff}, {0x2a, 0x01, 0xff}, {0x0a, 0x02, 0xc3, 0x28}} {
		f.Add(v)
	}
	decode := DecodeEvent(func() *eventsv1.PatientEvent { return new(eventsv1.PatientEvent) })
	f.Fuzz(func(t *testing.T, value []byte) {
		req, err := decode(context.Background(), &sarama.ConsumerMessage{Topic: patient.TopicEvents, Value: value})
		if err != nil {
			if errs.KindOf(err) != errs.InvalidArgument {
				t.Fatalf("decode: %v", err)
			}
			return
		}
		ev := req.(*eventsv1.PatientEvent)
		b, err := proto.Marshal(ev)
		again := new(eventsv1.PatientEvent)
		if err != nil || proto.Unmarshal(b, again) != nil || !proto.Equal(ev, again) {
			t.Fatalf("event %v does not round-trip: %v", ev, err)
		}
		svc := &stubAccounts{}
		if _, err := BillingPatientEndpoint(svc, nil)(context.Background(), ev); err != nil && errs.KindOf(err) != errs.InvalidArgument {
			t.Fatalf("endpoint: %v", err)
		}
		for _, r := range svc.opened {
			if ev.GetEventType() != patient.EventCreated || !storable(r.EventID) || r.EventID == "" || len(r.EventID) > maxEventID {
				t.Fatalf("account opened for %v: %+v", ev, r)
			}
		}
	})
}

// storable reports whether s can be kept in a text column of both databases: UTF-8 without
// NUL (PostgreSQL refuses either).
func storable(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }
