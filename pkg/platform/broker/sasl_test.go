package broker

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/IBM/sarama"
)

func login(user, password string) *sarama.Config {
	c := config()
	c.Metadata.Retry.Max = 0
	return Login(c, user, password)
}

// TestPrincipalsAndACLs: with Users the broker admits only those principals, each with its
// password, and each may do only what it is granted: the writer writes "events", the reader
// may read it but not write it; a client without SASL, or with a wrong password, gets nothing.
func TestPrincipalsAndACLs(t *testing.T) {
	b, err := Start(Options{Addr: "127.0.0.1:0", Topics: []string{"events"}, Users: []User{
		{Name: "writer", Password: "w-secret", Grants: []Grant{{Resource: Topic, Name: "events", Ops: []Op{Write}}}},
		{Name: "reader", Password: "r-secret", Grants: []Grant{{Resource: Topic, Name: "ev", Prefix: true, Ops: []Op{Read}}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	addr := []string{b.Addr()}

	plain := config()
	plain.Metadata.Retry.Max = 0
	if c, err := sarama.NewClient(addr, plain); err == nil {
		c.Close()
		t.Fatal("a client without SASL connected")
	}
	if c, err := sarama.NewClient(addr, login("writer", "wrong")); err == nil {
		c.Close()
		t.Fatal("a wrong password connected")
	}
	w, err := sarama.NewSyncProducer(addr, login("writer", "w-secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, _, err := w.SendMessage(&sarama.ProducerMessage{Topic: "events", Value: sarama.StringEncoder("ok")}); err != nil {
		t.Fatalf("the writer: %v", err)
	}
	rc := login("reader", "r-secret")
	rc.Producer.Idempotent, rc.Net.MaxOpenRequests = false, 5
	r, err := sarama.NewSyncProducer(addr, rc)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, _, err := r.SendMessage(&sarama.ProducerMessage{Topic: "events", Value: sarama.StringEncoder("forged")}); !errors.Is(err, sarama.ErrTopicAuthorizationFailed) {
		t.Fatalf("the reader writing: %v", err)
	}
	c, err := sarama.NewConsumer(addr, login("reader", "r-secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pc, err := c.ConsumePartition("events", 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
}

// TestSASLHandshakeMinPatched: the compatibility shim rewrites SaslHandshake's advertised
// minimum from 1 to 0 in ApiVersions responses of both encodings, and nothing else.
func TestSASLHandshakeMinPatched(t *testing.T) {
	entry := func(key, lo, hi uint16) []byte {
		return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, key), lo), hi)
	}
	// v0-2: error code, int32 count, entries.
	v0 := append([]byte{0, 0, 0, 0, 0, 3}, append(append(entry(0, 0, 11), entry(17, 1, 1)...), entry(18, 0, 4)...)...)
	patchSASLHandshakeMin(v0, 0)
	if got := binary.BigEndian.Uint16(v0[6+6+2:]); got != 0 {
		t.Fatalf("v0: SaslHandshake min %d", got)
	}
	if binary.BigEndian.Uint16(v0[6+12+2:]) != 0 || binary.BigEndian.Uint16(v0[6+2:]) != 0 || binary.BigEndian.Uint16(v0[6+4:]) != 11 {
		t.Fatalf("v0: other entries changed: %v", v0)
	}
	// v3+: error code, uvarint count+1, entries each followed by tagged fields (one with a tag).
	v3 := []byte{0, 0, 3}
	v3 = append(append(v3, entry(0, 0, 11)...), 1, 5, 2, 0xAA, 0xBB) // one tag: id 5, two bytes
	v3 = append(append(v3, entry(17, 1, 1)...), 0)
	patchSASLHandshakeMin(v3, 3)
	if got := binary.BigEndian.Uint16(v3[3+6+5+2:]); got != 0 {
		t.Fatalf("v3: SaslHandshake min %d (%v)", got, v3)
	}
	// A refusal (error code set) is left alone.
	refused := append([]byte{0, 35, 0, 0, 0, 1}, entry(17, 1, 1)...)
	patchSASLHandshakeMin(refused, 0)
	if binary.BigEndian.Uint16(refused[6+2:]) != 1 {
		t.Fatal("a refusal was patched")
	}
	// Truncated bodies do not panic.
	for i := range v0 {
		patchSASLHandshakeMin(append([]byte{}, v0[:i]...), 0)
		patchSASLHandshakeMin(append([]byte{}, v3[:min(i, len(v3))]...), 3)
	}
}

// BenchmarkConnect is the cost of a new client connection (metadata round trip included)
// without SASL and with SCRAM-SHA-512 (4096 PBKDF2 iterations on each side): what
// authentication adds per connection, never per record.
func BenchmarkConnect(b *testing.B) {
	for _, tc := range []struct {
		name  string
		users []User
		cfg   func() *sarama.Config
	}{
		{"plain", nil, config},
		{"scram-sha-512", []User{{Name: "u", Password: "p", Grants: []Grant{{Resource: Topic, Name: "t", Ops: []Op{Read}}}}},
			func() *sarama.Config { return login("u", "p") }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			br, err := Start(Options{Addr: "127.0.0.1:0", Users: tc.users})
			if err != nil {
				b.Fatal(err)
			}
			defer br.Close()
			cfg := tc.cfg()
			for b.Loop() {
				c, err := sarama.NewClient([]string{br.Addr()}, cfg)
				if err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}
