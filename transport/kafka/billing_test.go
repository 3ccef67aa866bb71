package kafkatransport_test

import (
	"context"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/google/uuid"
	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/broker/brokertest"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/idempotency"
	"github.com/pms/pms/pkg/platform/observe"
	"github.com/pms/pms/pkg/platform/outbox"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
	kafkatransport "github.com/pms/pms/transport/kafka"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
)

// billingStack is the billing service as cmd/pms wires it, minus HTTP and gRPC: store,
// audit writer into the outbox, endpoint set behind the guard, relay, the billing.commands
// consumer and the consumer of the patient topic.
type billingStack struct {
	d     *db.DB
	svc   billing.Service
	relay *outbox.Relay
	reg   *prometheus.Registry
}

func newBillingStack(t *testing.T, d *db.DB, addr string) *billingStack {
	t.Helper()
	reg := prometheus.NewRegistry()
	store := billing.NewStore(d)
	w := audit.NewWriter(d, audit.Options{Table: billing.AuditTable, AfterBatch: audit.OutboxHook(store.Outbox(), "billing"), AfterCommit: store.Outbox().Wake})
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	svc := billing.NewService(store, w, billing.Options{})
	set := billing.NewEndpoints(svc, billing.EndpointOptions{Metrics: observe.NewRequestMetrics(reg, "billing"),
		Guard: authz.NewGuard(testIssuer.Verifier(), billing.Roles, billing.DeniedAuditor(w))})
	cfg := kafkatransport.NewConfig("billing-test")
	relay := startRelay(t, store.Outbox(), outbox.RelayOptions{
		NewProducer: func() (sarama.SyncProducer, error) { return sarama.NewSyncProducer([]string{addr}, cfg) },
		MaxBackoff:  200 * time.Millisecond,
	})
	metrics := kafkatransport.NewMetrics(reg, "billing")
	cmds := kafkatransport.NewCommandSubscriber(kafkatransport.BillingCommands(set), kafkatransport.CommandOptions{
		Producer: newProducer(t, addr), Replies: idempotency.NewReplies(d), Verifier: testIssuer.Verifier(), Metrics: metrics, Group: "billing",
	})
	startConsumer(t, addr, "billing", cmds, billing.TopicCommands)
	startConsumer(t, addr, kafkatransport.BillingPatientGroup,
		kafkatransport.NewBillingPatientSubscriber(svc, store, newProducer(t, addr), metrics, nil), patient.TopicEvents)
	return &billingStack{d: d, svc: svc, relay: relay, reg: reg}
}

func (s *billingStack) waitPublished(t *testing.T) {
	t.Helper()
	(&patientStack{relay: s.relay}).waitPublished(t)
}

func ensureBillingTopics(t *testing.T, addr string) {
	t.Helper()
	if err := kafkatransport.EnsureTopics(context.Background(), []string{addr}, kafkatransport.NewConfig("t"),
		append(kafkatransport.BillingTopics(3, 1), kafkatransport.Topic{Name: "test.replies", Partitions: 1})); err != nil {
		t.Fatal(err)
	}
}

// TestBillingCommands drives billing.commands end to end on both databases: create (with an
// idempotency-key repeat), issue, pay and void round trips with the REST statuses and
// bodies; 401 without a token and 403 for a role that may not; refusals answered only;
// undecodable and invalid commands answered and dead-lettered; and every change's
// BillingEvent on the billing topic, keyed by patient id.
func TestBillingCommands(t *testing.T) {
	dbtest.Each(t, migrations.Billing(), func(t *testing.T, d *db.DB) {
		b := brokertest.Start(t)
		ensureBillingTopics(t, b.Addr())
		s := newBillingStack(t, d, b.Addr())
		pid := uuid.NewString()
		if _, err := s.svc.CreateAccount(authz.Service(context.Background(), "test"), billing.CreateAccountRequest{PatientID: pid}); err != nil {
			t.Fatal(err)
		}
		c := &commander{t: t, p: newProducer(t, b.Addr()), replies: brokertest.NewReader(t, b.Addr(), "test.replies"),
			topic: billing.TopicCommands, role: authz.RoleBilling, key: pid}
		rt := []string{"reply-to", "test.replies"}

		body := `{"patientId":"` + pid + `","currency":"USD","dueDate":"2026-12-31","lines":[{"description":"Consultation","quantity":2,"unitAmount":7550}]}`
		status, inv, m := c.reply(c.send("CreateInvoice", body, append(rt, "idempotency-key", "k1", "x-request-id", "req-b1")...))
		if status != 201 || inv["status"] != "draft" || inv["subtotal"] != float64(15100) || brokertest.Header(m, "x-request-id") != "req-b1" {
			t.Fatalf("create: %d %v", status, inv)
		}
		id := inv["id"].(string)
		if status, again, _ := c.reply(c.send("CreateInvoice", body, append(rt, "idempotency-key", "k1")...)); status != 201 || again["id"] != id {
			t.Fatalf("repeat: %d %v", status, again)
		}
		if status, e, _ := c.reply(c.sendAs("", "CreateInvoice", body, rt...)); status != 401 || e["error"] != "unauthenticated" {
			t.Fatalf("no token: %d %v", status, e)
		}
		clinician := "Bearer " + testIssuer.Token(t, "doc-1", authz.RoleClinician)
		if status, e, _ := c.reply(c.sendAs(clinician, "IssueInvoice", "", append(rt, "id", id)...)); status != 403 || e["error"] != "permission_denied" {
			t.Fatalf("clinician: %d %v", status, e)
		}
		if status, e, _ := c.reply(c.send("IssueInvoice", "{}", append(rt, "id", id)...)); status != 200 || e["status"] != "open" {
			t.Fatalf("issue: %d %v", status, e)
		}
		// Refusals: issuing again (conflict), paying an unknown invoice (not found).
		if status, e, _ := c.reply(c.send("IssueInvoice", "", append(rt, "id", id)...)); status != 409 {
			t.Fatalf("issue again: %d %v", status, e)
		}
		if status, e, _ := c.reply(c.send("RecordPayment", `{"amount":1,"method":"card"}`, append(rt, "id", uuid.NewString())...)); status != 404 {
			t.Fatalf("pay unknown: %d %v", status, e)
		}
		status, paid, _ := c.reply(c.send("RecordPayment", `{"amount":15100,"method":"card","currency":"USD"}`, append(rt, "id", id, "idempotency-key", "p1")...))
		if status != 200 || paid["status"] != "paid" || paid["amountPaid"] != float64(15100) {
			t.Fatalf("pay: %d %v", status, paid)
		}
		// Invalid: 400 with fields, dead-lettered.
		status, e, _ := c.reply(c.send("RecordPayment", `{"amount":-5,"method":"barter"}`, append(rt, "id", id)...))
		if fields, _ := e["fields"].(map[string]any); status != 400 || fields["amount"] == nil || fields["method"] == nil {
			t.Fatalf("invalid payment: %d %v", status, e)
		}
		// Undecodable: not JSON, an unknown field, a body on void, no id: 400, dead-lettered.
		for _, bad := range [][]string{{"CreateInvoice", `{"patientId":`}, {"CreateInvoice", `{"nope":1}`},
			{"VoidInvoice", `{"reason":"x"}`, "id", id}, {"VoidInvoice", ``}} {
			status, e, _ := c.reply(c.send(bad[0], bad[1], append(rt, bad[2:]...)...))
			if status != 400 || e["error"] != "invalid_argument" {
				t.Fatalf("%v: %d %v", bad, status, e)
			}
		}
		// A second invoice, voided once issued.
		_, inv2, _ := c.reply(c.send("CreateInvoice", body, rt...))
		id2 := inv2["id"].(string)
		c.reply(c.send("IssueInvoice", "", append(rt, "id", id2)...))
		if status, v, _ := c.reply(c.send("VoidInvoice", "", append(rt, "id", id2)...)); status != 200 || v["status"] != "void" || v["amountDue"] != float64(0) {
			t.Fatalf("void: %d %v", status, v)
		}

		dls := brokertest.NewReader(t, b.Addr(), billing.TopicCommands+".dlq").Read(5, 10*time.Second)
		reasons := map[string]int{}
		for _, dl := range dls {
			reasons[brokertest.Header(dl, "dlq-error")]++
		}
		if reasons["decode"] != 4 || reasons["invalid_argument"] != 1 {
			t.Fatalf("dead letter reasons %v", reasons)
		}
		if err := testutilHasSeries(s.reg, "pms_billing_request_duration_seconds", `transport="kafka"`); err != nil {
			t.Fatal(err)
		}

		s.waitPublished(t)
		want := []string{billing.EventAccountCreated, billing.EventInvoiceCreated, billing.EventInvoiceIssued,
			billing.EventPaymentRecorded, billing.EventInvoicePaid, billing.EventInvoiceCreated, billing.EventInvoiceIssued, billing.EventInvoiceVoided}
		evs := brokertest.NewReader(t, b.Addr(), billing.TopicEvents).Read(len(want), 10*time.Second)
		for i, w := range want {
			var ev eventsv1.BillingEvent
			if err := proto.Unmarshal(evs[i].Value, &ev); err != nil || ev.EventType != w || ev.PatientId != pid || string(evs[i].Key) != pid ||
				brokertest.Header(evs[i], "event-type") != w || brokertest.Header(evs[i], "event-id") != ev.EventId {
				t.Fatalf("event %d: %v %v, want %s", i, &ev, err, w)
			}
		}
		if n := brokertest.Count(t, b.Addr(), billing.TopicEvents); n != int64(len(want)) {
			t.Fatalf("%d billing events, want %d", n, len(want))
		}
		// Billing's audit entries went to the audit topic too.
		if n := brokertest.Count(t, b.Addr(), audit.Topic); n == 0 {
			t.Fatal("no audit events")
		}
	})
}

// patientEventValue is a PatientEvent as the patient service publishes it.
func patientEventValue(t *testing.T, typ, eventID, patientID string) string {
	t.Helper()
	b, err := proto.Marshal(&eventsv1.PatientEvent{EventType: typ, EventId: eventID, PatientId: patientID, Name: "N", Email: "n@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestBillingConsumesPatientEvents: PatientEvents put straight onto the patient topic (as
// if the patient service's gRPC call to billing had failed) open accounts as svc:billing; a
// redelivered event creates nothing twice; other event types change nothing; a poison
// message and an invalid event go to patient.dlq and do not block the partition.
func TestBillingConsumesPatientEvents(t *testing.T) {
	dbtest.Each(t, migrations.Billing(), func(t *testing.T, d *db.DB) {
		b := brokertest.Start(t)
		ensureBillingTopics(t, b.Addr())
		s := newBillingStack(t, d, b.Addr())
		p := newProducer(t, b.Addr())
		pid, pid2, other := uuid.NewString(), uuid.NewString(), uuid.NewString()
		e1 := uuid.NewString()
		// One key, so one partition, in this order; the last one is the sentinel.
		send(t, p, patient.TopicEvents, pid, patientEventValue(t, patient.EventCreated, e1, pid), "x-request-id", "req-p1")
		send(t, p, patient.TopicEvents, pid, patientEventValue(t, patient.EventCreated, e1, pid))
		send(t, p, patient.TopicEvents, pid, "\xff\xff not protobuf")
		send(t, p, patient.TopicEvents, pid, patientEventValue(t, patient.EventCreated, uuid.NewString(), "not-a-uuid"))
		send(t, p, patient.TopicEvents, pid, patientEventValue(t, patient.EventCreated, "", other))
		send(t, p, patient.TopicEvents, pid, patientEventValue(t, patient.EventUpdated, uuid.NewString(), other))
		send(t, p, patient.TopicEvents, pid, patientEventValue(t, patient.EventCreated, uuid.NewString(), pid2))

		ctx := context.Background()
		deadline := time.Now().Add(30 * time.Second)
		for {
			var n int
			if err := d.GetContext(ctx, &n, d.Rebind(`SELECT count(*) FROM accounts WHERE patient_id = ?`), pid2); err == nil && n == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no account for the sentinel patient")
			}
			time.Sleep(10 * time.Millisecond)
		}
		var accounts, processed int
		_ = d.GetContext(ctx, &accounts, `SELECT count(*) FROM accounts`)
		_ = d.GetContext(ctx, &processed, `SELECT count(*) FROM processed_events`)
		if accounts != 2 || processed != 2 {
			t.Fatalf("%d accounts, %d processed events; want 2 and 2", accounts, processed)
		}
		dls := brokertest.NewReader(t, b.Addr(), patient.TopicEvents+".dlq").Read(3, 10*time.Second)
		reasons := map[string]int{}
		for _, dl := range dls {
			reasons[brokertest.Header(dl, "dlq-error")]++
			if brokertest.Header(dl, "dlq-group") != kafkatransport.BillingPatientGroup {
				t.Fatalf("dead letter group %q", brokertest.Header(dl, "dlq-group"))
			}
		}
		if reasons["decode"] != 1 || reasons["invalid_argument"] != 2 {
			t.Fatalf("dead letter reasons %v", reasons)
		}
		// Each account published one BILLING_ACCOUNT_CREATED, acting as svc:billing, with the
		// patient event's request id.
		s.waitPublished(t)
		evs := brokertest.NewReader(t, b.Addr(), billing.TopicEvents).Read(2, 10*time.Second)
		byPatient := map[string]*eventsv1.BillingEvent{}
		for _, m := range evs {
			ev := new(eventsv1.BillingEvent)
			if err := proto.Unmarshal(m.Value, ev); err != nil || ev.EventType != billing.EventAccountCreated || ev.Actor != "svc:billing" {
				t.Fatalf("event %v %v", ev, err)
			}
			byPatient[ev.PatientId] = ev
		}
		if byPatient[pid] == nil || byPatient[pid2] == nil || byPatient[pid].RequestId != "req-p1" {
			t.Fatalf("account events %v", byPatient)
		}
		if n := brokertest.Count(t, b.Addr(), billing.TopicEvents); n != 2 {
			t.Fatalf("%d billing events, want 2", n)
		}
	})
}
