package kafkatransport

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/IBM/sarama"
)

// TestDeadLetterCopyCarriesNoCredential: the authorization header gives way to its token's
// subject, credential fields of a JSON body (password, newPassword, refreshToken, an invite's
// inviteToken) are redacted at any depth, a non-JSON body that
// mentions a password is dropped, and everything else is copied as it was.
func TestDeadLetterCopyCarriesNoCredential(t *testing.T) {
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"EdDSA","typ":"JWT","kid":"k"}`))
	claims := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"u-42","role":"admin"}`))
	msg := &sarama.ConsumerMessage{Topic: "auth.commands", Key: []byte("k"), Headers: []*sarama.RecordHeader{
		{Key: []byte("Authorization"), Value: []byte("Bearer " + header + "." + claims + ".sig")}, {Key: []byte("endpoint"), Value: []byte("CreateUser")},
	}, Value: []byte(`{"email":"a@b.c","password":"hunter2hunter2","nested":[{"refreshToken":"r"}],"role":"admin","inviteToken":"invite-secret","newPassword":"np-secret"}`)}
	out := deadLetterCopy(msg)
	v, _ := out.Value.Encode()
	if out.Topic != "auth.commands.dlq" || strings.Contains(string(v), "hunter2") || strings.Contains(string(v), `"r"`) ||
		strings.Contains(string(v), "invite-secret") || strings.Contains(string(v), "np-secret") ||
		!strings.Contains(string(v), `"email":"a@b.c"`) {
		t.Fatalf("dead letter %s: %s", out.Topic, v)
	}
	h := map[string]string{}
	for _, rh := range out.Headers {
		h[strings.ToLower(string(rh.Key))] = string(rh.Value)
	}
	if _, ok := h["authorization"]; ok || h[HeaderDLQSubject] != "u-42" || h["endpoint"] != "CreateUser" || h[HeaderDLQRedacted] != "fields" {
		t.Fatalf("headers %v", h)
	}
	for body, want := range map[string]string{
		`{"email": "password":"x"`: "",                  // not JSON, mentions a password: dropped
		`{"email":"a@b.c"}`:        `{"email":"a@b.c"}`, // nothing to redact: as it was
		"\x08\x01binary":           "\x08\x01binary",    // an event: as it was
	} {
		out := deadLetterCopy(&sarama.ConsumerMessage{Topic: "t", Value: []byte(body)})
		got := ""
		if out.Value != nil {
			b, _ := out.Value.Encode()
			got = string(b)
		}
		if got != want {
			t.Errorf("body %q dead-lettered as %q, want %q", body, got, want)
		}
	}
	if tokenSubject("Bearer not.a-token") != "" || tokenSubject("Basic x") != "" {
		t.Error("a subject from a malformed authorization header")
	}
}
