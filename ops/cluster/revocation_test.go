package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/google/uuid"
	"github.com/pms/pms/ops/cluster"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/broker/brokertest"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/tlsconf"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
	grpctransport "github.com/pms/pms/transport/grpc"
	kafkatransport "github.com/pms/pms/transport/kafka"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// revocationWorld reaches one token's verifiers in every separately running process: the
// gateway, the patient and billing services' own HTTP and gRPC ports, and patient.commands.
type revocationWorld struct {
	t        *testing.T
	c        *cluster.Cluster
	admin    string
	patients patient.Set
	billing  billing.Set
	producer sarama.SyncProducer
	replies  chan *sarama.ConsumerMessage
}

// readReplies reads every partition of the operator's reply topic, as the broker's admin
// over the cluster's TLS, into a channel until the test ends.
func readReplies(t *testing.T, c *cluster.Cluster) chan *sarama.ConsumerMessage {
	consumer, err := sarama.NewConsumer([]string{c.Addr("broker/kafka")}, c.KafkaConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = consumer.Close() })
	topic := kafkatransport.RepliesOf(kafkatransport.PrincipalOperator)
	parts, err := consumer.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *sarama.ConsumerMessage, 64)
	for _, p := range parts {
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for m := range pc.Messages() {
				ch <- m
			}
		}()
	}
	return ch
}

// status answers each way in with the HTTP status (gRPC and Kafka mapped to it) a token gets
// for a read the clinician role may do.
func (w *revocationWorld) status(token string) map[string]int {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := map[string]int{}
	httpStatus := func(name, url string) {
		code, b, err := cluster.DoURL(ctx, token, "GET", url, nil)
		if err != nil {
			w.t.Fatalf("%s: %v", name, err)
		}
		if code >= 500 {
			w.t.Fatalf("%s: %d %s", name, code, b)
		}
		out[name] = code
	}
	httpStatus("gateway", w.c.Gateway()+"/api/patients?limit=1")
	httpStatus("patient/http", w.c.URL("patient/http")+"/patients?limit=1")
	httpStatus("billing/http", w.c.URL("billing/http")+"/accounts?patientId="+noSuchPatient)
	tctx := authz.WithToken(ctx, token)
	_, err := w.patients.ListEndpoint(tctx, patient.ListQuery{Limit: 1})
	out["patient/grpc"] = kindStatus(w.t, "patient/grpc", err)
	_, err = w.billing.ListAccountsEndpoint(tctx, billing.AccountQuery{PatientID: noSuchPatient})
	out["billing/grpc"] = kindStatus(w.t, "billing/grpc", err)
	out["patient.commands"] = w.command(token)
	return out
}

func kindStatus(t *testing.T, name string, err error) int {
	switch errs.KindOf(err) {
	case "":
		return http.StatusOK
	case errs.Unauthenticated:
		return http.StatusUnauthorized
	case errs.PermissionDenied:
		return http.StatusForbidden
	}
	t.Fatalf("%s: %v", name, err)
	return 0
}

// noSuchPatient is a well-formed id no patient has: reads answer empty, a delete 404.
const noSuchPatient = "00000000-0000-4000-8000-000000000001"

// command sends a DeletePatient command (of noSuchPatient: the commands topic serves writes
// only) with token on patient.commands and returns its reply's status: 404 with a token
// that may delete, 403 with one that may not, 401 with a revoked one.
func (w *revocationWorld) command(token string) int {
	w.t.Helper()
	id := uuid.NewString()
	replies := kafkatransport.RepliesOf(kafkatransport.PrincipalOperator)
	msg := &sarama.ProducerMessage{Topic: patient.TopicCommands, Value: sarama.StringEncoder("")}
	for _, h := range [][2]string{{"endpoint", patient.MethodDelete}, {"id", noSuchPatient}, {"authorization", "Bearer " + token}, {"reply-to", replies},
		{"correlation-id", id}, {"x-request-id", id}} {
		msg.Headers = append(msg.Headers, sarama.RecordHeader{Key: []byte(h[0]), Value: []byte(h[1])})
	}
	if _, _, err := w.producer.SendMessage(msg); err != nil {
		w.t.Fatal(err)
	}
	deadline := time.After(30 * time.Second)
	for {
		var m *sarama.ConsumerMessage
		select {
		case m = <-w.replies:
		case <-deadline:
			w.t.Fatalf("no reply to %s", id)
		}
		if brokertest.Header(m, "correlation-id") != id {
			continue
		}
		var status int
		_, _ = fmt.Sscan(brokertest.Header(m, "status"), &status)
		return status
	}
}

// until polls status(token) until every way in answers as ok says, with a generous
// deadline.
func (w *revocationWorld) until(token string, ok func(code int) bool, what string) {
	w.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := w.status(token)
		all := true
		for _, code := range got {
			all = all && ok(code)
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("%s: got %v", what, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The answers until waits for: a token that works (a read's 200, or the 404 of a delete of
// no patient), a revoked token's 401, a role's refusal.
func works(code int) bool   { return code == http.StatusOK || code == http.StatusNotFound }
func revoked(code int) bool { return code == http.StatusUnauthorized }
func refused(code int) bool { return code == http.StatusForbidden }

// signIn creates a user of role through the gateway and logs it in, returning its id and
// token pair.
func (w *revocationWorld) signIn(email, role string) (id, token, refresh string) {
	w.t.Helper()
	ctx := context.Background()
	code, b, err := w.c.Do(ctx, w.admin, "POST", "/api/users", map[string]string{"email": email, "password": "a long enough password 1", "role": role})
	if err != nil || code != http.StatusCreated {
		w.t.Fatalf("create %s: %d %s %v", email, code, b, err)
	}
	var u struct{ ID string }
	_ = json.Unmarshal(b, &u)
	code, b, err = w.c.Do(ctx, "", "POST", "/auth/login", map[string]string{"email": email, "password": "a long enough password 1"})
	var pair struct{ Token, RefreshToken string }
	if err != nil || code != http.StatusOK || json.Unmarshal(b, &pair) != nil {
		w.t.Fatalf("login %s: %d %s %v", email, code, b, err)
	}
	return u.ID, pair.Token, pair.RefreshToken
}

// TestRevocationReachesEveryProcess runs every service as its own process (TLS + mTLS) and
// ends a clinician's access token four ways — the admin disables the user, the admin
// changes the user's role, the user logs out, the user logs out everywhere — each time polling (deadline 30 s) until the
// very token gets 401 at the gateway, directly at the patient and billing HTTP and gRPC
// ports, and as a 401 reply on patient.commands: every verifier follows auth's
// WatchRevocations stream. After the role change the refreshed token carries the new role
// and gets 403 for the lost right. Every revocation is also an event on the auth topic.
func TestRevocationReachesEveryProcess(t *testing.T) {
	tail := cluster.NewTail(200)
	c := cluster.Start(t, cluster.Options{DatabaseURL: dbtest.PostgresDatabase(t), Logs: tail})
	defer func() {
		if t.Failed() {
			t.Logf("logs:\n%s", tail.String())
		}
	}()
	admin, err := c.Login(context.Background(), cluster.AdminEmail, cluster.AdminPassword)
	if err != nil {
		t.Fatal(err)
	}
	// The gRPC ports take callers with a certificate of the CA: the gateway's, whose calls
	// these are (the token still decides who acts).
	certs := cluster.Certs(t)
	tlsCfg, err := tlsconf.Client(tlsconf.Files{CA: filepath.Join(certs, "ca.pem"), Cert: filepath.Join(certs, "gateway.pem"),
		Key: filepath.Join(certs, "gateway-key.pem")})
	if err != nil {
		t.Fatal(err)
	}
	dial := func(key string) *grpc.ClientConn {
		conn, err := grpctransport.Dial(c.Addr(key), tlsCfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return conn
	}
	producer, err := sarama.NewSyncProducer([]string{c.Addr("broker/kafka")}, c.KafkaConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = producer.Close() })
	w := &revocationWorld{t: t, c: c, admin: admin, patients: grpctransport.NewPatientClient(dial("patient/grpc")),
		billing: grpctransport.NewBillingClient(dial("billing/grpc")), producer: producer,
		replies: readReplies(t, c)}
	ctx := context.Background()

	// 1. Disabled by an admin.
	id, token, _ := w.signIn("disabled@cluster.test", authz.RoleClinician)
	w.until(token, works, "a fresh clinician token")
	if code, b, err := c.Do(ctx, admin, "PATCH", "/api/users/"+id, map[string]any{"disabled": true}); err != nil || code != http.StatusOK {
		t.Fatalf("disable: %d %s %v", code, b, err)
	}
	w.until(token, revoked, "after the user was disabled")

	// 2. A role change: the old token ends; a refresh gets the new role, refused the lost right.
	id, token, refresh := w.signIn("demoted@cluster.test", authz.RoleClinician)
	w.until(token, works, "a fresh clinician token")
	if code, b, err := c.Do(ctx, admin, "PATCH", "/api/users/"+id, map[string]any{"role": authz.RoleAnalyst}); err != nil || code != http.StatusOK {
		t.Fatalf("demote: %d %s %v", code, b, err)
	}
	w.until(token, revoked, "the old role's token after a role change")
	code, b, err := c.Do(ctx, "", "POST", "/auth/refresh", map[string]string{"refreshToken": refresh})
	var pair struct{ Token string }
	if err != nil || code != http.StatusOK || json.Unmarshal(b, &pair) != nil {
		t.Fatalf("refresh after the role change: %d %s %v", code, b, err)
	}
	w.until(pair.Token, refused, "the new role's token")

	// 3. The user logs out: that session's access token ends everywhere.
	_, token, refresh = w.signIn("leaving@cluster.test", authz.RoleClinician)
	w.until(token, works, "a fresh clinician token")
	if code, b, err := c.Do(ctx, "", "POST", "/auth/logout", map[string]string{"refreshToken": refresh}); err != nil || code/100 != 2 {
		t.Fatalf("logout: %d %s %v", code, b, err)
	}
	w.until(token, revoked, "after logout")

	// 4. Logout everywhere (DELETE /auth/sessions) ends every session's access token.
	_, token, _ = w.signIn("everywhere@cluster.test", authz.RoleClinician)
	code, b, err = c.Do(ctx, "", "POST", "/auth/login", map[string]string{"email": "everywhere@cluster.test", "password": "a long enough password 1"})
	var second struct{ Token string }
	if err != nil || code != http.StatusOK || json.Unmarshal(b, &second) != nil {
		t.Fatalf("second login: %d %s %v", code, b, err)
	}
	w.until(token, works, "the first session's token")
	w.until(second.Token, works, "the second session's token")
	if code, b, err := c.Do(ctx, second.Token, "DELETE", "/auth/sessions", nil); err != nil || code != http.StatusNoContent {
		t.Fatalf("logout everywhere: %d %s %v", code, b, err)
	}
	w.until(token, revoked, "the first session's token after logout everywhere")
	w.until(second.Token, revoked, "the second session's token after logout everywhere")
	// Each revocation also reached the auth topic (auth's outbox), as a Revocation event keyed
	// by its user: at least the disable, the role change, the logout and the logout
	// everywhere.
	deadline := time.Now().Add(30 * time.Second)
	for {
		reasons := map[string]bool{}
		for _, m := range c.Records(t, "auth", 30*time.Second) {
			var ev eventsv1.Revocation
			if brokertest.Header(m, "event-type") == "REVOCATION" && proto.Unmarshal(m.Value, &ev) == nil && string(m.Key) == ev.GetUserId() {
				reasons[ev.GetReason()] = true
			}
		}
		if reasons["disabled"] && reasons["role_changed"] && reasons["logout"] && reasons["logout_all"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("revocation events on the auth topic: %v", reasons)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Every process exports where its table stands: the same sequence everywhere, not stale.
	var seqs []float64
	for _, name := range []string{"gateway", "patient", "billing", "analytics"} {
		seq, err := cluster.Gauge(c.URL(name+"/admin"), "pms_"+name+"_revocations_seq")
		stale, err2 := cluster.Gauge(c.URL(name+"/admin"), "pms_"+name+"_revocations_stale")
		if err != nil || err2 != nil || seq < 4 || stale != 0 {
			t.Fatalf("%s: revocations_seq %v stale %v (%v %v)", name, seq, stale, err, err2)
		}
		seqs = append(seqs, seq)
	}
	t.Logf("revocation sequence per process (gateway, patient, billing, analytics): %v", seqs)
	if strings.Contains(tail.String(), "panic") {
		t.Fatalf("a process panicked:\n%s", tail.String())
	}
}
