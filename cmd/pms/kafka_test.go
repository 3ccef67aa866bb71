package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/google/uuid"
	"github.com/pms/pms/pkg/auth"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/broker/brokertest"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/shred"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
	kafkatransport "github.com/pms/pms/transport/kafka"
	"google.golang.org/protobuf/proto"
)

// allAddrs are the listeners `pms all` binds: the broker and every service's three.
var allAddrs = append([]string{"broker/kafka", "gateway/http", "gateway/admin"}, append(append(append(append([]string{}, authAddrs...), patientAddrs...), billingAddrs...), analyticsAddrs...)...)

// allAdminEmail is the bootstrap admin of every `pms all` test (password adminPassword).
const allAdminEmail = "admin@example.org"

// allArgs runs `pms all` on :0 ports (broker included) against dbURL ("" = SQLite files),
// with a bootstrap admin whose password the test knows. Tokens come from its auth service:
// see allToken.
func allArgs(t testing.TB, dbURL string, extra ...string) []string {
	t.Setenv(bootstrapPasswordEnv, adminPassword)
	return append([]string{"all", "--kafka-addr=127.0.0.1:0", "--auth-http-addr=127.0.0.1:0", "--auth-grpc-addr=127.0.0.1:0",
		"--auth-admin-addr=127.0.0.1:0", "--bootstrap-admin-email=" + allAdminEmail, "--patient-http-addr=127.0.0.1:0", "--patient-grpc-addr=127.0.0.1:0",
		"--patient-admin-addr=127.0.0.1:0", "--billing-http-addr=127.0.0.1:0", "--billing-grpc-addr=127.0.0.1:0",
		"--billing-admin-addr=127.0.0.1:0", "--gateway-http-addr=127.0.0.1:0", "--gateway-admin-addr=127.0.0.1:0",
		"--analytics-http-addr=127.0.0.1:0", "--analytics-grpc-addr=127.0.0.1:0",
		"--analytics-admin-addr=127.0.0.1:0", "--data-dir=" + t.TempDir(), "--database-url=" + dbURL,
		"--log-format=logfmt", "--log-level=warn", "--shutdown-timeout=20s"}, extra...)
}

// TestAllEmbeddedBroker runs `pms all` with no brokers configured: it starts the embedded
// broker itself, creates the topics, and a REST create shows up as a PatientEvent on the
// patient topic (read over TCP by sarama, and by kcat as an independent client, headers
// included); the audit entry of the create shows up on the audit topic; billing's and
// auth's command topics work (allBillingKafka, allAuthKafka).
func TestAllEmbeddedBroker(t *testing.T) {
	for _, tc := range []struct{ name string }{{"postgres"}, {"sqlite"}} {
		t.Run(tc.name, func(t *testing.T) {
			url := ""
			if tc.name == "postgres" {
				url = dbtest.PostgresDatabase(t)
			}
			args := allArgs(t, url)
			a, stop := startPMS(t, allAddrs, args...)
			broker := a["broker/kafka"]

			body := `{"name":"Ada Lovelace","email":"ada@example.org","address":"1 Main St","dateOfBirth":"1990-12-10"}`
			req, _ := http.NewRequest(http.MethodPost, "http://"+a["patient/http"]+"/patients", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Request-ID", "req-all-1")
			req.Header.Set("Authorization", "Bearer "+allToken(t, a))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 201 {
				t.Fatalf("create: %d %s", resp.StatusCode, b)
			}
			m := brokertest.NewReader(t, broker, patient.TopicEvents).Read(1, 30*time.Second)[0]
			var ev eventsv1.PatientEvent
			if err := proto.Unmarshal(m.Value, &ev); err != nil {
				t.Fatal(err)
			}
			// The e-mail travels sealed with the patient's data key (docs/api.md, "Erasure").
			if ev.EventType != patient.EventCreated || !shred.IsSealed(ev.Email) || strings.Contains(string(m.Value), "ada@example.org") || ev.RequestId != "req-all-1" ||
				ev.Patient.GetMrn() == "" || string(m.Key) != ev.PatientId || !strings.Contains(string(b), ev.PatientId) {
				t.Fatalf("event %v key %q", &ev, m.Key)
			}
			for h, want := range map[string]string{"content-type": "application/x-protobuf", "event-type": "PATIENT_CREATED",
				"event-id": ev.EventId, "x-request-id": "req-all-1"} {
				if got := brokertest.Header(m, h); got != want {
					t.Fatalf("header %s = %q, want %q", h, got, want)
				}
			}
			// The audit topic holds every service's entries (auth's bootstrap and logins,
			// billing's account...): the patient create's is among them.
			auditR := brokertest.NewReader(t, broker, kafkatransport.TopicAudit)
			readUntil(t, auditR, func(m *sarama.ConsumerMessage) bool {
				if brokertest.Header(m, "event-type") == audit.CheckpointEventType {
					return false // a service's signed chain head (docs/audit.md)
				}
				var ae eventsv1.AuditEvent
				if err := proto.Unmarshal(m.Value, &ae); err != nil {
					t.Fatalf("audit event: %v", err)
				}
				return ae.Service == "patient" && ae.Action == "create" && ae.SubjectId == ev.PatientId
			})
			allBillingKafka(t, a, ev.PatientId, auditR)
			allAuthKafka(t, a)
			if tc.name == "sqlite" {
				kcatInterop(t, kcatConf(args), ev.PatientId, ev.EventId)
			}
			checkReady(t, a["patient/admin"])
			for _, svc := range []string{"billing", "auth"} {
				resp, err := http.Get("http://" + a[svc+"/admin"] + "/readyz")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("%s /readyz = %d", svc, resp.StatusCode)
				}
			}
			if err := stop(); err != nil {
				t.Fatalf("graceful stop: %v", err)
			}
		})
	}
}

// allToken logs the bootstrap admin in to the auth service of a `pms all` started with
// allArgs and returns the access token.
func allToken(t *testing.T, a map[string]string) string {
	t.Helper()
	resp, b := call(t, "POST", "http://"+a["auth/http"]+"/login", "", `{"email":"`+allAdminEmail+`","password":"`+adminPassword+`"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("login: %d %s", resp.StatusCode, b)
	}
	var p struct{ Token string }
	if err := json.Unmarshal(b, &p); err != nil || p.Token == "" {
		t.Fatalf("login answer %s: %v", b, err)
	}
	return p.Token
}

func checkReady(t *testing.T, admin string) {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/readyz = %d", resp.StatusCode)
	}
	resp, err = http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"pms_patient_outbox_published_total", "pms_patient_outbox_backlog"} {
		if !strings.Contains(string(b), want) {
			t.Fatalf("/metrics lacks %s", want)
		}
	}
}

// kcatInterop: kcat, an independent Kafka client, with the configuration `pms all` wrote
// for the operator (conf), lists the topics it may see and reads the patient topic with its
// headers.
func kcatInterop(t *testing.T, conf, patientID, eventID string) {
	t.Helper()
	run := func(args ...string) string {
		t.Helper()
		out, errOut, err := kcat(t, append([]string{"-F", conf}, args...)...)
		if err != nil {
			t.Fatalf("kcat %v: %v\n%s", args, err, errOut)
		}
		return out
	}
	list := run("-L")
	for _, topic := range []string{`topic "patient"`, `topic "patient.commands"`, `topic "operator.replies"`, `topic "audit"`} {
		if !strings.Contains(list, topic) {
			t.Fatalf("kcat -L lacks %s:\n%s", topic, list)
		}
	}
	// -e: exit at the end of every partition; -f: key and headers of each message.
	got := run("-C", "-t", "patient", "-e", "-q", "-f", "%k|%h\n")
	want := fmt.Sprintf("%s|", patientID)
	if !strings.Contains(got, want) || !strings.Contains(got, "event-type=PATIENT_CREATED") || !strings.Contains(got, "event-id="+eventID) {
		t.Fatalf("kcat read of patient:\n%s", got)
	}
}

// TestBrokerCommand: `pms broker` runs the embedded broker alone, reachable over TCP, and
// stops on SIGTERM.
func TestBrokerCommand(t *testing.T) {
	args := []string{"broker", "--kafka-addr=127.0.0.1:0", "--data-dir=" + t.TempDir(), "--log-level=warn"}
	a, stop := startPMS(t, []string{"broker/kafka"}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	creds := brokerCredentials(t, args)
	if err := kafkatransport.Ping(ctx, []string{a["broker/kafka"]}, kafkatransport.Security{User: "patient", Password: creds["patient"]}); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := kafkatransport.Ping(ctx, []string{a["broker/kafka"]}); err == nil {
		t.Fatal("broker still answers after stop")
	}
}

// TestDrainFlushesTheOutbox: SIGTERM right after a burst of creates still publishes every
// event and every audit entry before the process exits (servers stop, the audit writer
// flushes into the outbox, the relay flushes the outbox, then the database closes).
func TestDrainFlushesTheOutbox(t *testing.T) {
	b := brokertest.Start(t)
	args := patientArgs(t, "sqlite://"+filepath.Join(t.TempDir(), "p.db"))
	args = append(args[:len(args)-1], "--kafka-brokers="+b.Addr(), "--rate-limit=0")
	a, stop := startPMS(t, patientAddrs, args...)
	const n = 100
	for i := range n {
		body := fmt.Sprintf(`{"name":"P","email":"p%d@example.org","address":"x","dateOfBirth":"1990-01-01"}`, i)
		req, _ := http.NewRequest(http.MethodPost, "http://"+a["patient/http"]+"/patients", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+testIssuer.Token(t, "clin-1", authz.RoleClinician))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 201 {
			t.Fatalf("create %d: %d", i, resp.StatusCode)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := brokertest.Count(t, b.Addr(), patient.TopicEvents); got != n {
		t.Fatalf("patient topic holds %d events after the drain, want %d", got, n)
	}
	// The audit topic holds the entries and the signed checkpoints of the chain (issue 17):
	// every entry must be there.
	total := brokertest.Count(t, b.Addr(), kafkatransport.TopicAudit)
	entries := 0
	for _, m := range brokertest.NewReader(t, b.Addr(), kafkatransport.TopicAudit).Read(int(total), 30*time.Second) {
		if brokertest.Header(m, "event-type") == audit.EventType {
			entries++
		}
	}
	if entries != n {
		t.Fatalf("audit topic holds %d entries after the drain (%d records), want %d", entries, total, n)
	}
}

// readUntil reads r until a message satisfies match, failing after 30 s.
func readUntil(t *testing.T, r *brokertest.Reader, match func(*sarama.ConsumerMessage) bool) *sarama.ConsumerMessage {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatal("no matching message within 30s")
		}
		if m := r.Read(1, left)[0]; match(m) {
			return m
		}
	}
}

// allBillingKafka is billing's Kafka side in `pms all`: a PatientEvent put straight onto the
// patient topic (as if patient's gRPC call to billing had failed) opens the patient's
// account through billing's consumer; a REST invoice create and issue for the patient
// patientID (registered over REST) publish INVOICE_CREATED and INVOICE_ISSUED on the billing
// topic, keyed by patient id with the subtotal; billing's audit entries reach the audit topic.
func allBillingKafka(t *testing.T, a map[string]string, patientID string, auditR *brokertest.Reader) {
	t.Helper()
	broker := a["broker/kafka"]
	token := allToken(t, a)

	orphan := uuid.NewString()
	v, err := proto.Marshal(&eventsv1.PatientEvent{EventType: patient.EventCreated, EventId: uuid.NewString(), PatientId: orphan, Name: "N", Email: "n@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := sarama.NewSyncProducer([]string{broker}, brokertest.ConfigFor(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: patient.TopicEvents, Key: sarama.StringEncoder(orphan), Value: sarama.ByteEncoder(v)}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var accounts []map[string]any
		if code := doJSONAs(t, token, "GET", "http://"+a["billing/http"]+"/accounts?patientId="+orphan, nil, &accounts); code == 200 && len(accounts) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no billing account for the patient event")
		}
		time.Sleep(20 * time.Millisecond)
	}

	var inv map[string]any
	body := map[string]any{"patientId": patientID, "currency": "EUR", "dueDate": "2026-12-31",
		"lines": []map[string]any{{"description": "Consultation", "quantity": 1, "unitAmount": 4200}}}
	if code := doJSONAs(t, token, "POST", "http://"+a["billing/http"]+"/invoices", body, &inv); code != 201 {
		t.Fatalf("create invoice: %d %v", code, inv)
	}
	id, _ := inv["id"].(string)
	if code := doJSONAs(t, token, "POST", "http://"+a["billing/http"]+"/invoices/"+id+"/issue", nil, &inv); code != 200 {
		t.Fatalf("issue: %d %v", code, inv)
	}
	billingR := brokertest.NewReader(t, broker, "billing")
	m := readUntil(t, billingR, func(m *sarama.ConsumerMessage) bool {
		var ev eventsv1.BillingEvent
		if err := proto.Unmarshal(m.Value, &ev); err != nil {
			t.Fatalf("billing event: %v", err)
		}
		return ev.EventType == "INVOICE_ISSUED" && ev.InvoiceId == id
	})
	var ev eventsv1.BillingEvent
	_ = proto.Unmarshal(m.Value, &ev)
	if ev.PatientId != patientID || string(m.Key) != patientID || ev.Subtotal != 4200 || ev.Currency != "EUR" || ev.Status != "open" ||
		brokertest.Header(m, "event-type") != "INVOICE_ISSUED" {
		t.Fatalf("issued event %v key %q", &ev, m.Key)
	}
	readUntil(t, auditR, func(m *sarama.ConsumerMessage) bool {
		var ae eventsv1.AuditEvent
		_ = proto.Unmarshal(m.Value, &ae)
		return ae.Service == "billing" && ae.Action == "issue_invoice" && ae.SubjectId == id
	})
}

// allAuthKafka: on auth.commands of `pms all`, a CreateUser without a password invites the
// user (the reply carries its one-time token, which sets the password over HTTP, after
// which the user logs in), and a CreateUser carrying a password is refused with 400 naming
// the field, and creates nobody.
func allAuthKafka(t *testing.T, a map[string]string) {
	t.Helper()
	broker, token := a["broker/kafka"], allToken(t, a)
	p, err := sarama.NewSyncProducer([]string{broker}, brokertest.ConfigFor(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	replyTo := kafkatransport.RepliesOf(kafkatransport.PrincipalOperator)
	send := func(corr, email, body string) {
		t.Helper()
		m := &sarama.ProducerMessage{Topic: auth.TopicCommands, Key: sarama.StringEncoder(email), Value: sarama.StringEncoder(body)}
		for _, h := range [][2]string{{"endpoint", "CreateUser"}, {"reply-to", replyTo}, {"correlation-id", corr}, {"authorization", "Bearer " + token}} {
			kafkatransport.SetHeader(m, h[0], h[1])
		}
		if _, _, err := p.SendMessage(m); err != nil {
			t.Fatal(err)
		}
	}
	send("invite-1", "kafka-invite@example.org", `{"email":"kafka-invite@example.org","role":"analyst"}`)
	send("password-1", "kafka-pw@example.org", `{"email":"kafka-pw@example.org","password":"`+matrixPassword+`","role":"analyst"}`)
	replies := map[string]*sarama.ConsumerMessage{}
	for _, m := range brokertest.NewReader(t, broker, replyTo).Read(2, 30*time.Second) {
		replies[brokertest.Header(m, "correlation-id")] = m
	}
	var invited struct{ InviteToken, InviteExpiresAt string }
	if m := replies["invite-1"]; m == nil || brokertest.Header(m, "status") != "201" || json.Unmarshal(m.Value, &invited) != nil ||
		len(invited.InviteToken) != 43 || invited.InviteExpiresAt == "" {
		t.Fatalf("invite over Kafka: %v", m)
	}
	var refused struct {
		Error  string
		Fields map[string]string
	}
	if m := replies["password-1"]; m == nil || brokertest.Header(m, "status") != "400" || json.Unmarshal(m.Value, &refused) != nil ||
		refused.Error != "invalid_argument" || refused.Fields["password"] == "" {
		t.Fatalf("password over Kafka: %v", m)
	}
	base := "http://" + a["auth/http"]
	if resp, b := call(t, "POST", base+"/password/set", "", `{"token":"`+invited.InviteToken+`","newPassword":"`+matrixPassword+`"}`); resp.StatusCode != 204 {
		t.Fatalf("set the invited user's password: %d %s", resp.StatusCode, b)
	}
	if resp, b := call(t, "POST", base+"/login", "", `{"email":"kafka-invite@example.org","password":"`+matrixPassword+`"}`); resp.StatusCode != 200 {
		t.Fatalf("login of the user invited over Kafka: %d %s", resp.StatusCode, b)
	}
	resp, b := call(t, "GET", base+"/users", token, "")
	if resp.StatusCode != 200 || !strings.Contains(string(b), "kafka-invite@example.org") || strings.Contains(string(b), "kafka-pw@example.org") {
		t.Fatalf("users after the Kafka commands: %d %s", resp.StatusCode, b)
	}
}
