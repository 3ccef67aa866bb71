package kafkatransport

import (
	"context"
	"strings"
	"testing"

	"github.com/IBM/sarama"
	"github.com/pms/pms/pkg/auth"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/platform/errs"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
)

func msgWith(value string, headers ...string) *sarama.ConsumerMessage {
	m := &sarama.ConsumerMessage{Topic: "x.commands", Value: []byte(value)}
	for i := 0; i+1 < len(headers); i += 2 {
		m.Headers = append(m.Headers, &sarama.RecordHeader{Key: []byte(headers[i]), Value: []byte(headers[i+1])})
	}
	return m
}

func TestReplyTopicRules(t *testing.T) {
	for topic, ok := range map[string]bool{
		"a.replies": true, "billing-feed_1.replies": true, ".replies": false, "replies": false, "a.replies.x": false,
		"a b.replies": false, "a/b.replies": false, strings.Repeat("a", 250) + ".replies": false, "patient": false,
	} {
		if got := validReplyTopic(topic); got != ok {
			t.Errorf("validReplyTopic(%q) = %v", topic, got)
		}
	}
	if _, ok := replyTo(msgWith("", "reply-to", "a.replies", "Reply-To", "b.replies")); ok {
		t.Error("two reply-to headers accepted")
	}
	if topic, ok := replyTo(msgWith("")); !ok || topic != "" {
		t.Error("no reply-to must mean no reply, not a refusal")
	}
}

func TestCommandHeaders(t *testing.T) {
	if _, err := PathParam(msgWith(""), "id"); errs.KindOf(err) != errs.InvalidArgument {
		t.Errorf("missing id: %v", err)
	}
	if _, err := PathParam(msgWith("", "id", strings.Repeat("x", 65)), "id"); errs.KindOf(err) != errs.InvalidArgument {
		t.Errorf("long id: %v", err)
	}
	if v, err := PathParam(msgWith("", "ID", "abc"), "id"); err != nil || v != "abc" {
		t.Errorf("id header is case-insensitive: %q %v", v, err)
	}
	for h, want := range map[string]int64{`"3"`: 3, `W/"4"`: 4, `*`: 0, ``: 0} {
		if v, err := IfMatch(msgWith("", "if-match", h)); err != nil || v != want {
			t.Errorf("if-match %q: %d %v", h, v, err)
		}
	}
	if _, err := IfMatch(msgWith("", "if-match", "soon")); errs.KindOf(err) != errs.InvalidArgument {
		t.Errorf("bad if-match: %v", err)
	}
	if _, err := printableHeader(msgWith("", "correlation-id", "a\x00b"), "correlation-id"); err == nil {
		t.Error("control characters in correlation-id accepted")
	}
	if err := NoBody(msgWith(" {} ")); err != nil {
		t.Error(err)
	}
	if err := NoBody(msgWith(`{"a":1}`)); errs.KindOf(err) != errs.InvalidArgument {
		t.Errorf("body on a delete: %v", err)
	}
	type body struct {
		Name string `json:"name"`
	}
	for _, bad := range []string{"", "[]", `{"name":1}`, `{"name":"a"} x`, "\xff", `{"other":"x"}`} {
		if _, err := Body[body](msgWith(bad)); errs.KindOf(err) != errs.InvalidArgument {
			t.Errorf("Body(%q): %v", bad, err)
		}
	}
	if _, err := Body[body](msgWith(`{"name":"` + strings.Repeat("a", 1<<20) + `"}`)); errs.KindOf(err) != errs.PayloadTooLarge {
		t.Errorf("huge body: %v", err)
	}
}

// FuzzCommandDecode: no message, however malformed, makes the command decoder panic, and
// every refusal is a contract error (never an internal one).
func FuzzCommandDecode(f *testing.F) {
	f.Add("CreatePatient", `{"name":"a"}`, "x.replies", "id-1", `"2"`)
	f.Add("", "", "", "", "")
	f.Add("DeletePatient", "{}", "evil", strings.Repeat("i", 70), "W/")
	cs := &commandServer{commands: map[string]Command{
		"CreatePatient": {Decode: func(_ context.Context, m *sarama.ConsumerMessage) (any, error) {
			return Body[map[string]string](m)
		}},
		"DeletePatient": {Decode: func(_ context.Context, m *sarama.ConsumerMessage) (any, error) {
			id, err := PathParam(m, "id")
			if err != nil {
				return nil, err
			}
			if _, err := IfMatch(m); err != nil {
				return nil, err
			}
			return id, NoBody(m)
		}},
	}}
	f.Fuzz(func(t *testing.T, endpoint, value, replyTo, id, ifMatch string) {
		m := msgWith(value, "endpoint", endpoint, "reply-to", replyTo, "id", id, "if-match", ifMatch, "idempotency-key", id)
		_, err := cs.decode(context.Background(), m)
		if err != nil && errs.KindOf(err) == errs.Internal {
			t.Fatalf("internal error for input: %v", err)
		}
	})
}

// FuzzServiceCommandDecode feeds arbitrary messages to the real decoders of billing.commands
// and auth.commands and to billing's patient-event decoder: whatever arrives is a decode or
// validation error (dead-lettered and answered 400), never an internal error or a panic.
func FuzzServiceCommandDecode(f *testing.F) {
	f.Add("CreateInvoice", `{"patientId":"x","currency":"USD","lines":[]}`, "x.replies", "id-1", "k")
	f.Add("RecordPayment", `{"amount":1,"method":"card"}`, "", "", "")
	f.Add("VoidInvoice", `{}`, "evil", strings.Repeat("i", 70), "k")
	f.Add("CreateUser", `{"email":"a@b.c","password":"p","role":"admin"}`, "a.replies", "", "")
	f.Add("DisableUser", `{"disabled":false}`, "", "u-1", "")
	f.Add("DisableUser", `null`, "", "u-1", "")
	commands := map[string]Command{}
	for name, c := range BillingCommands(billing.Set{}) {
		commands[name] = c
	}
	for name, c := range AuthCommands(auth.Set{}) {
		commands[name] = c
	}
	cs := &commandServer{commands: commands}
	decodeEvent := DecodeEvent(func() *eventsv1.PatientEvent { return new(eventsv1.PatientEvent) })
	f.Fuzz(func(t *testing.T, endpoint, value, replyTo, id, key string) {
		m := msgWith(value, "endpoint", endpoint, "reply-to", replyTo, "id", id, "idempotency-key", key)
		if _, err := cs.decode(context.Background(), m); err != nil && errs.KindOf(err) != errs.InvalidArgument &&
			errs.KindOf(err) != errs.PayloadTooLarge && errs.KindOf(err) != errs.UnsupportedMediaType {
			t.Fatalf("%s error for input: %v", errs.KindOf(err), err)
		}
		if _, err := decodeEvent(context.Background(), m); err != nil && errs.KindOf(err) != errs.InvalidArgument {
			t.Fatalf("event decode: %v", err)
		}
	})
}
