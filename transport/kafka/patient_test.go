package kafkatransport_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/jmoiron/sqlx"
	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/authz/authztest"
	"github.com/pms/pms/pkg/platform/broker"
	"github.com/pms/pms/pkg/platform/broker/brokertest"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/idempotency"
	"github.com/pms/pms/pkg/platform/observe"
	"github.com/pms/pms/pkg/platform/outbox"
	"github.com/pms/pms/pkg/platform/shred"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
	kafkatransport "github.com/pms/pms/transport/kafka"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
)

// patientStack is the patient service as cmd/pms wires it, minus HTTP and gRPC: its store,
// audit writer (whose entries go to the outbox), endpoint set, outbox relay and, when asked,
// the patient.commands consumer.
// testIssuer signs the user tokens commands carry (command topics need one, like REST).
var testIssuer = authztest.Start()

type patientStack struct {
	d     *db.DB
	svc   patient.Service
	set   patient.Set
	relay *outbox.Relay
	reg   *prometheus.Registry
}

func newPatientStack(t *testing.T, d *db.DB, addr string, commands bool) *patientStack {
	t.Helper()
	reg := prometheus.NewRegistry()
	store := patient.NewStore(d)
	w := audit.NewWriter(d, audit.Options{Table: patient.AuditTable, AfterBatch: audit.OutboxHook(store.Outbox(), "patient"), AfterCommit: store.Outbox().Wake})
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	svc := patient.NewService(store, w, patient.Options{})
	set := patient.NewEndpoints(svc, patient.EndpointOptions{Metrics: observe.NewRequestMetrics(reg, "patient"),
		Guard: authz.NewGuard(testIssuer.Verifier(), patient.Roles, patient.DeniedAuditor(w))})
	cfg := kafkatransport.NewConfig("patient-test")
	relay := startRelay(t, store.Outbox(), outbox.RelayOptions{
		NewProducer: func() (sarama.SyncProducer, error) { return sarama.NewSyncProducer([]string{addr}, cfg) },
		MaxBackoff:  200 * time.Millisecond,
	})
	s := &patientStack{d: d, svc: svc, set: set, relay: relay, reg: reg}
	if commands {
		sub := kafkatransport.NewCommandSubscriber(kafkatransport.PatientCommands(set), kafkatransport.CommandOptions{
			Producer: newProducer(t, addr), Replies: idempotency.NewReplies(d), Verifier: testIssuer.Verifier(),
			Metrics: kafkatransport.NewMetrics(reg, "patient"), Group: "patient",
			Options: []kafkatransport.SubscriberOption{kafkatransport.SubscriberDeadLetterNoBody()},
		})
		startConsumer(t, addr, "patient", sub, patient.TopicCommands)
	}
	return s
}

func startRelay(t *testing.T, ob *outbox.Outbox, o outbox.RelayOptions) *outbox.Relay {
	t.Helper()
	r := outbox.NewRelay(ob, o)
	done := make(chan error, 1)
	go func() { done <- r.Run() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := r.Stop(ctx); err != nil {
			t.Errorf("relay stop: %v", err)
		}
		<-done
	})
	return r
}

func ensureTopics(t *testing.T, addr string) {
	t.Helper()
	if err := kafkatransport.EnsureTopics(context.Background(), []string{addr}, kafkatransport.NewConfig("t"),
		append(kafkatransport.PatientTopics(3, 1), kafkatransport.Topic{Name: "test.replies", Partitions: 1})); err != nil {
		t.Fatal(err)
	}
}

// command sends one command and returns its reply (status, body) from test.replies.
type commander struct {
	t       *testing.T
	p       sarama.SyncProducer
	replies *brokertest.Reader
	n       atomic.Int64
	// topic is the command topic (default patient.commands), role the role of send's token
	// (default clinician) and key the message key.
	topic, role, key string
}

func (c *commander) send(endpoint, value string, headers ...string) string {
	c.t.Helper()
	role := c.role
	if role == "" {
		role = authz.RoleClinician
	}
	return c.sendAs("Bearer "+testIssuer.Token(c.t, "clerk-1", role), endpoint, value, headers...)
}

// sendAs sends a command with the given authorization header ("" for none).
func (c *commander) sendAs(authorization, endpoint, value string, headers ...string) string {
	c.t.Helper()
	corr := fmt.Sprintf("c-%d", c.n.Add(1))
	h := append([]string{"endpoint", endpoint, "correlation-id", corr}, headers...)
	if authorization != "" {
		h = append(h, "authorization", authorization)
	}
	topic := c.topic
	if topic == "" {
		topic = patient.TopicCommands
	}
	send(c.t, c.p, topic, c.key, value, h...)
	return corr
}

func (c *commander) reply(corr string) (int, map[string]any, *sarama.ConsumerMessage) {
	c.t.Helper()
	m := c.replies.Read(1, 30*time.Second)[0]
	if got := brokertest.Header(m, "correlation-id"); got != corr {
		c.t.Fatalf("reply for %q, want %q", got, corr)
	}
	var status int
	fmt.Sscan(brokertest.Header(m, "status"), &status)
	var body map[string]any
	if len(m.Value) > 0 {
		if err := json.Unmarshal(m.Value, &body); err != nil {
			c.t.Fatalf("reply body %q: %v", m.Value, err)
		}
	}
	return status, body, m
}

// TestPatientCommands drives patient.commands end to end on both databases: valid and
// invalid commands, replies on a .replies topic with correlation-id and status, refusals
// answered but not dead-lettered, undecodable and invalid commands answered and
// dead-lettered, a reply-to outside *.replies refused without a reply, an idempotency-key
// repeat answered from the stored reply; and the partition keeps moving throughout.
func TestPatientCommands(t *testing.T) {
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		b := brokertest.Start(t)
		ensureTopics(t, b.Addr())
		s := newPatientStack(t, d, b.Addr(), true)
		c := &commander{t: t, p: newProducer(t, b.Addr()), replies: brokertest.NewReader(t, b.Addr(), "test.replies")}
		rt := []string{"reply-to", "test.replies"}

		body := `{"name":"Ada","email":"ada@example.org","address":"1 Main St","dateOfBirth":"1990-01-02"}`
		corr := c.send("CreatePatient", body, append(rt, "idempotency-key", "k1", "x-request-id", "req-1")...)
		status, created, m := c.reply(corr)
		// The reply names the record and carries none of its PHI (a reply topic cannot be erased).
		if status != 201 || created["mrn"] == "" || created["version"] != 1.0 || brokertest.Header(m, "x-request-id") != "req-1" ||
			created["email"] != nil || created["name"] != nil || created["address"] != nil || created["dateOfBirth"] != nil {
			t.Fatalf("create: %d %v", status, created)
		}
		id := created["id"].(string)

		// The same key and body: the stored reply, nothing new.
		status, again, _ := c.reply(c.send("CreatePatient", body, append(rt, "idempotency-key", "k1")...))
		if status != 201 || again["id"] != id {
			t.Fatalf("repeat: %d %v", status, again)
		}
		// The same key, another body: 409.
		status, conflict, _ := c.reply(c.send("CreatePatient", strings.Replace(body, "Ada", "Eve", 1), append(rt, "idempotency-key", "k1")...))
		if status != 409 || conflict["error"] != "conflict" {
			t.Fatalf("key reuse: %d %v", status, conflict)
		}
		// Stored replies are per user: the same key and body without a token is refused (401),
		// not answered from the store; another user's repeat runs as theirs (409, the email is
		// taken) and never sees the first user's reply.
		if status, e, _ := c.reply(c.sendAs("", "CreatePatient", body, append(rt, "idempotency-key", "k1")...)); status != 401 || e["error"] != "unauthenticated" {
			t.Fatalf("repeat without a token: %d %v", status, e)
		}
		other := "Bearer " + testIssuer.Token(t, "admin-2", authz.RoleAdmin)
		if status, e, _ := c.reply(c.sendAs(other, "CreatePatient", body, append(rt, "idempotency-key", "k1")...)); status != 409 || e["error"] != "conflict" || e["id"] != nil {
			t.Fatalf("another user's repeat: %d %v", status, e)
		}
		// Command topics need a user token, like REST: none → 401, a role that may not → 403,
		// and neither changes anything.
		if status, e, _ := c.reply(c.sendAs("", "CreatePatient", strings.Replace(body, "ada@", "anon@", 1), rt...)); status != 401 || e["error"] != "unauthenticated" {
			t.Fatalf("no token: %d %v", status, e)
		}
		analyst := "Bearer " + testIssuer.Token(t, "an-1", authz.RoleAnalyst)
		if status, e, _ := c.reply(c.sendAs(analyst, "CreatePatient", strings.Replace(body, "ada@", "analyst@", 1), rt...)); status != 403 || e["error"] != "permission_denied" {
			t.Fatalf("analyst: %d %v", status, e)
		}
		// Duplicate email: a refusal, answered only.
		status, dup, _ := c.reply(c.send("CreatePatient", body, rt...))
		if status != 409 || dup["error"] != "conflict" || dup["requestId"] == "" {
			t.Fatalf("duplicate: %d %v", status, dup)
		}
		// Invalid fields: 400 with fields, and dead-lettered.
		status, invalid, _ := c.reply(c.send("CreatePatient", `{"name":"","email":"bad","address":"x","dateOfBirth":"2999-01-01"}`, rt...))
		fields, _ := invalid["fields"].(map[string]any)
		if status != 400 || fields["email"] == nil || fields["dateOfBirth"] == nil {
			t.Fatalf("invalid: %d %v", status, invalid)
		}
		// Not JSON, an unknown field, an unknown endpoint: 400 and dead-lettered.
		for _, bad := range [][2]string{{"CreatePatient", `{"name":`}, {"CreatePatient", `{"nope":1}`}, {"Frobnicate", `{}`}} {
			status, e, _ := c.reply(c.send(bad[0], bad[1], rt...))
			if status != 400 || e["error"] != "invalid_argument" {
				t.Fatalf("%s %s: %d %v", bad[0], bad[1], status, e)
			}
		}
		// A reply-to outside *.replies: dead-lettered, no reply (the next reply read below
		// belongs to the next command).
		c.send("CreatePatient", body, "reply-to", "patient")
		// Update with a stale if-match: 412, answered only; then a good one.
		status, pre, _ := c.reply(c.send("UpdatePatient", `{"name":"Ada L","email":"ada@example.org","address":"1 Main St","dateOfBirth":"1990-01-02"}`,
			append(rt, "id", id, "if-match", `"7"`)...))
		if status != 412 || pre["error"] != "precondition_failed" {
			t.Fatalf("stale update: %d %v", status, pre)
		}
		status, upd, _ := c.reply(c.send("UpdatePatient", `{"name":"Ada L","email":"ada@example.org","address":"1 Main St","dateOfBirth":"1990-01-02"}`,
			append(rt, "id", id, "if-match", `"1"`)...))
		if status != 200 || upd["version"] != float64(2) {
			t.Fatalf("update: %d %v", status, upd)
		}
		status, _, m = c.reply(c.send("DeletePatient", "", append(rt, "id", id)...))
		if status != 204 || len(m.Value) != 0 {
			t.Fatalf("delete: %d %q", status, m.Value)
		}
		status, gone, _ := c.reply(c.send("DeletePatient", "", append(rt, "id", id)...))
		if status != 410 || gone["error"] != "gone" {
			t.Fatalf("delete again: %d %v", status, gone)
		}

		// Dead letters: the invalid create, the three undecodable ones and the bad reply-to.
		dls := brokertest.NewReader(t, b.Addr(), patient.TopicCommands+".dlq").Read(5, 10*time.Second)
		reasons := map[string]int{}
		for _, dl := range dls {
			reasons[brokertest.Header(dl, "dlq-error")]++
			// A failed command's body is PHI: the dead letter keeps the reason and origin only.
			if len(dl.Value) != 0 || brokertest.Header(dl, "dlq-redacted") != "body" || brokertest.Header(dl, "dlq-offset") == "" {
				t.Fatalf("dead letter with a body: %q %v", dl.Value, dl.Headers)
			}
		}
		if reasons["decode"] != 4 || reasons["invalid_argument"] != 1 {
			t.Fatalf("dead letter reasons %v", reasons)
		}
		// The commands went through the endpoint middleware, labelled as Kafka.
		if err := testutilHasSeries(s.reg, "pms_patient_request_duration_seconds", `transport="kafka"`); err != nil {
			t.Fatal(err)
		}
		// Create, update and delete each published one event, in order, on the patient topic.
		s.waitPublished(t)
		evs := brokertest.NewReader(t, b.Addr(), patient.TopicEvents).Read(3, 10*time.Second)
		for i, want := range []string{patient.EventCreated, patient.EventUpdated, patient.EventDeleted} {
			var ev eventsv1.PatientEvent
			if err := proto.Unmarshal(evs[i].Value, &ev); err != nil || ev.EventType != want || ev.PatientId != id || ev.Version != int64(i+1) ||
				!shred.IsSealed(ev.Name) || strings.Contains(string(evs[i].Value), "ada@example.org") {
				t.Fatalf("event %d: %v %v", i, &ev, err)
			}
		}
	})
}

func (s *patientStack) waitPublished(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := s.relay.Backlog(context.Background())
		if err == nil && n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox backlog %d (%v)", n, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testutilHasSeries(reg *prometheus.Registry, name, label string) error {
	mfs, err := reg.Gather()
	if err != nil {
		return err
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if strings.Contains(m.String(), strings.Split(label, "=")[1]) {
				return nil
			}
		}
	}
	return fmt.Errorf("no series %s{%s}", name, label)
}

// TestPatientEventsSurviveBrokerOutage: stop the broker, create 500 patients, start it again
// on the same port: every event arrives, and a consumer that deduplicates on event_id (in the
// transaction of its effect) applies each exactly once, even when an event is delivered
// twice. With -short (the race pass) it creates 100 patients, not 500: the same goroutines
// meet, and the race detector makes each create several times slower.
func TestPatientEventsSurviveBrokerOutage(t *testing.T) {
	down := 500
	if testing.Short() {
		down = 100
	}
	dbtest.Each(t, migrations.Patient(), func(t *testing.T, d *db.DB) {
		dir := t.TempDir()
		b := brokertest.Start(t, broker.Options{DataDir: dir})
		addr := b.Addr()
		ensureTopics(t, addr)
		s := newPatientStack(t, d, addr, false)
		ctx := context.Background()

		// The consumer: one effect row per applied event, guarded by MarkProcessed.
		if _, err := d.ExecContext(ctx, `CREATE TABLE applied (event_id TEXT NOT NULL, patient_id TEXT NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		var deliveries atomic.Int64
		apply := func(ctx context.Context, req any) (any, error) {
			ev := req.(*eventsv1.PatientEvent)
			// Counted once its transaction has committed, so the wait below never reads the
			// table while the last effect is still in flight.
			defer deliveries.Add(1)
			return nil, db.InTx(ctx, d, func(tx *sqlx.Tx) error {
				first, err := outbox.MarkProcessed(ctx, tx, d, "test-consumer", ev.EventId)
				if err != nil || !first {
					return err
				}
				_, err = tx.ExecContext(ctx, tx.Rebind(`INSERT INTO applied (event_id, patient_id) VALUES (?, ?)`), ev.EventId, ev.PatientId)
				return db.Classify(err)
			})
		}
		sub := kafkatransport.NewSubscriber(apply, kafkatransport.DecodeEvent(func() *eventsv1.PatientEvent { return new(eventsv1.PatientEvent) }), nil,
			kafkatransport.SubscriberBefore(kafkatransport.AsService("test")), kafkatransport.SubscriberDeadLetter(newProducer(t, addr)))
		startConsumer(t, addr, "test-consumer", sub, patient.TopicEvents)

		create := func(i int) {
			t.Helper()
			if _, err := s.svc.Create(ctx, patient.CreateRequest{Name: "P", Email: fmt.Sprintf("p%d@example.org", i), Address: "x", DateOfBirth: "1990-01-01"}); err != nil {
				t.Fatal(err)
			}
		}
		create(0)
		s.waitPublished(t)
		b.Close()
		for i := 1; i <= down; i++ {
			create(i)
		}
		if n, _ := s.relay.Backlog(ctx); n == 0 {
			t.Fatal("events were published with the broker down")
		}
		b2, err := broker.Start(broker.Options{Addr: addr, DataDir: dir})
		if err != nil {
			t.Fatalf("restart on %s: %v", addr, err)
		}
		t.Cleanup(b2.Close)
		s.waitPublished(t)

		// Deliver one event a second time, as at-least-once delivery may.
		first := brokertest.NewReader(t, addr, patient.TopicEvents).Read(1, 10*time.Second)[0]
		dup := &sarama.ProducerMessage{Topic: patient.TopicEvents, Key: sarama.ByteEncoder(first.Key), Value: sarama.ByteEncoder(first.Value)}
		if _, _, err := newProducer(t, addr).SendMessage(dup); err != nil {
			t.Fatal(err)
		}
		total := brokertest.Count(t, addr, patient.TopicEvents)
		if total < int64(down)+2 {
			t.Fatalf("patient topic holds %d events, want at least %d + the duplicate", total, down+1)
		}
		deadline := time.Now().Add(60 * time.Second)
		for deliveries.Load() < total {
			if time.Now().After(deadline) {
				t.Fatalf("consumer saw %d of %d deliveries", deliveries.Load(), total)
			}
			time.Sleep(20 * time.Millisecond)
		}
		var applied, distinct, patients int
		_ = d.GetContext(ctx, &applied, `SELECT count(*) FROM applied`)
		_ = d.GetContext(ctx, &distinct, `SELECT count(DISTINCT event_id) FROM applied`)
		_ = d.GetContext(ctx, &patients, `SELECT count(DISTINCT patient_id) FROM applied`)
		if applied != down+1 || distinct != down+1 || patients != down+1 {
			t.Fatalf("applied %d (%d distinct events, %d patients), want %d each", applied, distinct, patients, down+1)
		}
	})
}
