package kafkatransport_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/auth"
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

// TestAuthCommands drives auth.commands end to end on both databases, as cmd/pms wires auth
// (audit entries into the outbox, relayed to the audit topic): CreateUser (an invite: the
// reply carries the set-password token, which then works) and DisableUser round trips for
// an admin, an idempotency-key repeat (its stored reply without the token), a CreateUser
// carrying a password refused with 400 and no user created, 401 without a token and 403 for
// another role, a duplicate email refused (answered only), invalid and undecodable commands
// answered and dead-lettered without any credential, and the audit entries on the audit
// topic.
func TestAuthCommands(t *testing.T) {
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		b := brokertest.Start(t)
		addr := b.Addr()
		if err := kafkatransport.EnsureTopics(context.Background(), []string{addr}, kafkatransport.NewConfig("t"),
			append(kafkatransport.AuthTopics(3, 1), kafkatransport.Topic{Name: "test.replies", Partitions: 1})); err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		ob := outbox.New(d, outbox.Options{})
		w := audit.NewWriter(d, audit.Options{Table: auth.AuditTable, AfterBatch: audit.OutboxHook(ob, "auth"), AfterCommit: ob.Wake})
		t.Cleanup(func() { _ = w.Close(context.Background()) })
		keys, _, err := auth.OpenKeyRing(filepath.Join(t.TempDir(), auth.KeyFileName), auth.KeyRingOptions{})
		if err != nil {
			t.Fatal(err)
		}
		svc, err := auth.NewService(context.Background(), auth.NewStore(d), keys, w, auth.Options{
			Hasher: auth.NewArgon2id(auth.Argon2idParams{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}, 0)})
		if err != nil {
			t.Fatal(err)
		}
		set := auth.NewEndpoints(svc, auth.EndpointOptions{Metrics: observe.NewRequestMetrics(reg, "auth"),
			Guard: authz.NewGuard(testIssuer.Verifier(), auth.Roles, auth.DeniedAuditor(w))})
		cfg := kafkatransport.NewConfig("auth-test")
		relay := startRelay(t, ob, outbox.RelayOptions{
			NewProducer: func() (sarama.SyncProducer, error) { return sarama.NewSyncProducer([]string{addr}, cfg) },
			MaxBackoff:  200 * time.Millisecond,
		})
		sub := kafkatransport.NewCommandSubscriber(kafkatransport.AuthCommands(set), kafkatransport.CommandOptions{
			Producer: newProducer(t, addr), Replies: idempotency.NewReplies(d), Verifier: testIssuer.Verifier(), Metrics: kafkatransport.NewMetrics(reg, "auth"), Group: "auth",
		})
		startConsumer(t, addr, "auth", sub, auth.TopicCommands)

		c := &commander{t: t, p: newProducer(t, addr), replies: brokertest.NewReader(t, addr, "test.replies"),
			topic: auth.TopicCommands, role: authz.RoleAdmin, key: "nurse@example.org"}
		rt := []string{"reply-to", "test.replies"}
		// CreateUser carries no password: the user is invited, and the reply (to the
		// caller's reply topic) carries its one-time set-password token.
		body := `{"email":"nurse@example.org","role":"clinician"}`
		status, u, m := c.reply(c.send("CreateUser", body, append(rt, "idempotency-key", "u1", "x-request-id", "req-a1")...))
		token, _ := u["inviteToken"].(string)
		if status != 201 || u["email"] != "nurse@example.org" || u["role"] != "clinician" || u["disabled"] != false || len(token) != 43 ||
			u["inviteExpiresAt"] == nil || brokertest.Header(m, "x-request-id") != "req-a1" {
			t.Fatalf("create: %d %v", status, u)
		}
		id := u["id"].(string)
		// A repeat gets the stored reply, which keeps no credential: the token is shown once.
		if status, again, _ := c.reply(c.send("CreateUser", body, append(rt, "idempotency-key", "u1")...)); status != 201 || again["id"] != id ||
			again["inviteToken"] != "[redacted]" {
			t.Fatalf("repeat: %d %v", status, again)
		}
		var stored [][]byte
		if err := d.SelectContext(context.Background(), &stored, `SELECT body FROM command_replies`); err != nil || len(stored) != 1 ||
			strings.Contains(string(stored[0]), token) {
			t.Fatalf("stored replies %q %v", stored, err)
		}
		if status, e, _ := c.reply(c.send("CreateUser", body, rt...)); status != 409 || e["error"] != "conflict" {
			t.Fatalf("duplicate: %d %v", status, e)
		}
		// The token sets the password (over HTTPS in production: here the service itself),
		// and the user logs in.
		if err := svc.SetPassword(context.Background(), auth.SetPasswordRequest{Token: token, NewPassword: "correct horse battery staple"}); err != nil {
			t.Fatalf("set password with the invite token: %v", err)
		}
		if _, err := svc.Login(context.Background(), auth.LoginRequest{Email: "nurse@example.org", Password: "correct horse battery staple"}); err != nil {
			t.Fatalf("login of the invited user: %v", err)
		}

		// A password on Kafka is refused, before anything is stored: 400 naming the field,
		// dead-lettered with the password redacted, no user. Without a token it is the
		// guard's 401 first, as every refusal.
		withPassword := `{"email":"pw@example.org","password":"correct horse battery staple","role":"clinician"}`
		status, e, _ := c.reply(c.send("CreateUser", withPassword, append(rt, "idempotency-key", "pw1")...))
		if fields, _ := e["fields"].(map[string]any); status != 400 || e["error"] != "invalid_argument" ||
			fields["password"] != "must not be sent over Kafka: omit it to invite the user" {
			t.Fatalf("password over Kafka: %d %v", status, e)
		}
		if status, e, _ := c.reply(c.sendAs("", "CreateUser", withPassword, rt...)); status != 401 || e["error"] != "unauthenticated" {
			t.Fatalf("password over Kafka without a token: %d %v", status, e)
		}
		users, err := svc.ListUsers(context.Background())
		if err != nil || len(users) != 1 || users[0].ID != id {
			t.Fatalf("users after the refusals: %+v %v", users, err)
		}

		if status, e, _ := c.reply(c.sendAs("", "DisableUser", "", append(rt, "id", id)...)); status != 401 || e["error"] != "unauthenticated" {
			t.Fatalf("no token: %d %v", status, e)
		}
		billingClerk := "Bearer " + testIssuer.Token(t, "clerk-9", authz.RoleBilling)
		if status, e, _ := c.reply(c.sendAs(billingClerk, "CreateUser", body, rt...)); status != 403 || e["error"] != "permission_denied" {
			t.Fatalf("billing role: %d %v", status, e)
		}
		status, dis, _ := c.reply(c.send("DisableUser", `{"disabled":true}`, append(rt, "id", id)...))
		if status != 200 || dis["disabled"] != true || dis["id"] != id {
			t.Fatalf("disable: %d %v", status, dis)
		}
		if status, dis, _ := c.reply(c.send("DisableUser", "", append(rt, "id", id)...)); status != 200 || dis["disabled"] != true {
			t.Fatalf("disable again: %d %v", status, dis)
		}
		// Invalid: a bad email and role (400 with fields), dead-lettered.
		status, e, _ = c.reply(c.send("CreateUser", `{"email":"x@","role":"wizard"}`, rt...))
		if fields, _ := e["fields"].(map[string]any); status != 400 || fields["email"] == nil || fields["role"] == nil {
			t.Fatalf("invalid: %d %v", status, e)
		}
		// Undecodable: not JSON, unknown field (a token sent along included), re-enabling
		// through DisableUser, no id.
		for _, bad := range [][]string{{"CreateUser", `{"email":`}, {"CreateUser", `{"email":"a@b.c","inviteToken":"chosen-secret"}`},
			{"DisableUser", `{"disabled":false}`, "id", id}, {"DisableUser", ``}} {
			status, e, _ := c.reply(c.send(bad[0], bad[1], append(rt, bad[2:]...)...))
			if status != 400 || e["error"] != "invalid_argument" {
				t.Fatalf("%v: %d %v", bad, status, e)
			}
		}
		dls := brokertest.NewReader(t, addr, auth.TopicCommands+".dlq").Read(6, 10*time.Second)
		reasons := map[string]int{}
		for _, dl := range dls {
			reasons[brokertest.Header(dl, "dlq-error")]++
		}
		// The four undecodable ones (decode errors, however raised), the invalid create and
		// the create with a password.
		if reasons["decode"] != 4 || reasons["invalid_argument"] != 2 {
			t.Fatalf("dead letter reasons %v", reasons)
		}
		// No credential reaches a dead-letter topic: no token (its subject instead), no
		// password, no invite token.
		for _, dl := range dls {
			if brokertest.Header(dl, "authorization") != "" || brokertest.Header(dl, "dlq-token-subject") == "" ||
				strings.Contains(string(dl.Value), "correct horse") || strings.Contains(string(dl.Value), "chosen-secret") {
				t.Fatalf("dead letter carries a credential: headers %v value %s", dl.Headers, dl.Value)
			}
		}

		// Auth's audit entries (create, the refusals, disable...) reached the audit topic.
		deadline := time.Now().Add(30 * time.Second)
		for {
			n, err := relay.Backlog(context.Background())
			if err == nil && n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("outbox backlog %d (%v)", n, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		n := brokertest.Count(t, addr, audit.Topic)
		evs := brokertest.NewReader(t, addr, audit.Topic).Read(int(n), 10*time.Second)
		actions := map[string]int{}
		for _, m := range evs {
			var ev eventsv1.AuditEvent
			if err := proto.Unmarshal(m.Value, &ev); err != nil || ev.Service != "auth" {
				t.Fatalf("audit event %v %v", &ev, err)
			}
			actions[ev.Action+"/"+ev.Outcome]++
		}
		if actions[auth.ActionUserCreate+"/success"] != 1 || actions[auth.ActionUserUpdate+"/success"] != 2 ||
			actions[auth.ActionPasswordSet+"/success"] != 1 {
			t.Fatalf("audit actions %v", actions)
		}
	})
}
