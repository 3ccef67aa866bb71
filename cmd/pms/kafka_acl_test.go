package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/broker"
	"github.com/pms/pms/pkg/platform/broker/brokertest"
	kafkatransport "github.com/pms/pms/transport/kafka"
)

// kcat runs Debian's kcat (an independent librdkafka client) with args, for at most 30 s.
func kcat(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return kcatIn(t, "", args...)
}

// kcatIn is kcat with stdin as its standard input (what -P produces, a message a line).
func kcatIn(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	if _, err := exec.LookPath("kcat"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("kcat is required under CI=true (.ci/run installs it)")
		}
		t.Skip("kcat not installed (apt-get install kcat; .ci/run installs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, "kcat", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// kcatConf is the kcat configuration `pms all <args>` wrote for the operator principal.
func kcatConf(args []string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--data-dir="); ok {
			return filepath.Join(v, "kcat.conf")
		}
	}
	return filepath.Join("data", "kcat.conf")
}

// TestKafkaLockedDown: the embedded broker of `pms all` authenticates every client
// (SASL/SCRAM-SHA-512) and enforces the platform's ACLs, seen from kcat, an independent
// client: no credentials → refused; a wrong password → refused; analytics may not write the
// patient topic; the operator (data/kcat.conf, mode 0600) sends a command and reads its reply
// on operator.replies but may not read another principal's replies; a reply-to naming no
// principal's reply topic is dead-lettered, never answered, and the dead letter carries no
// token.
func TestKafkaLockedDown(t *testing.T) {
	args := allArgs(t, "")
	a, _ := startPMS(t, allAddrs, args...)
	addr := a["broker/kafka"]
	conf := kcatConf(args)
	if fi, err := os.Stat(conf); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("kcat.conf: %v %v", fi, err)
	}
	creds := brokerCredentials(t, args)
	sasl := func(user, password string) []string {
		return []string{"-b", addr, "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=SCRAM-SHA-512",
			"-X", "sasl.username=" + user, "-X", "sasl.password=" + password}
	}

	if out, errOut, err := kcat(t, "-b", addr, "-L", "-m", "3"); err == nil {
		t.Fatalf("kcat without credentials listed the topics:\n%s", out)
	} else if strings.Contains(out, `topic "patient"`) {
		t.Fatalf("kcat without credentials: %s", errOut)
	}
	if out, _, err := kcat(t, append(sasl("operator", "not-the-password"), "-L", "-m", "3")...); err == nil {
		t.Fatalf("kcat with a wrong password listed the topics:\n%s", out)
	}
	_, errOut, _ := kcatIn(t, "forged\n", append(sasl("analytics", creds["analytics"]), "-P", "-t", patient.TopicEvents, "-k", "forged")...)
	if !strings.Contains(errOut, "authorization failed") {
		t.Fatalf("analytics producing to patient: %q", errOut)
	}
	if n := brokertest.Count(t, addr, patient.TopicEvents); n != 0 {
		t.Fatalf("the patient topic holds %d records after a forged write", n)
	}
	if _, errOut, _ := kcat(t, "-F", conf, "-C", "-t", "patient.replies", "-e"); !strings.Contains(errOut, "authorization failed") {
		t.Fatalf("the operator reading patient.replies: %q", errOut)
	}

	token := allToken(t, a)
	send := func(replyTo, corr string) {
		t.Helper()
		_, errOut, err := kcatIn(t, `{"name":"Ada Lovelace","email":"ada@example.org","address":"1 Main St","dateOfBirth":"1990-12-10"}`,
			"-F", conf, "-P", "-t", patient.TopicCommands, "-H", "authorization=Bearer "+token,
			"-H", "endpoint=CreatePatient", "-H", "reply-to="+replyTo, "-H", "correlation-id="+corr)
		if err != nil {
			t.Fatalf("kcat -P: %v\n%s", err, errOut)
		}
	}
	send("nobody.replies", "c-stranger")
	send(kafkatransport.RepliesOf(kafkatransport.PrincipalOperator), "c-own")

	dlq := readUntil(t, brokertest.NewReader(t, addr, patient.TopicCommands+kafkatransport.DLQSuffix), func(m *sarama.ConsumerMessage) bool {
		return brokertest.Header(m, kafkatransport.HeaderCorrelationID) == "c-stranger"
	})
	if got := brokertest.Header(dlq, "authorization"); got != "" {
		t.Fatalf("the dead letter carries the token: %q", got)
	}
	if got := brokertest.Header(dlq, kafkatransport.HeaderDLQKind); got != "decode" {
		t.Fatalf("dead letter kind %q", got)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, errOut, err := kcat(t, "-F", conf, "-C", "-t", kafkatransport.RepliesOf(kafkatransport.PrincipalOperator), "-e", "-q", "-f", "%h %s\n")
		if err != nil {
			t.Fatalf("kcat -C operator.replies: %v\n%s", err, errOut)
		}
		if strings.Contains(out, "c-stranger") {
			t.Fatalf("a command with a stranger's reply-to was answered:\n%s", out)
		}
		if strings.Contains(out, "correlation-id=c-own,status=201") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no 201 reply on operator.replies:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestKafkaSetup: `pms kafka setup` prepares a cluster that knows only its admin principal
// (SASL and ACLs on, as a production cluster is set up): it declares the principals, the ACLs
// and the topics, twice without harm, and then `pms all` against that cluster (each service
// its own principal from the same credentials file) registers a patient whose event reaches
// billing and analytics, while analytics still may not write the patient topic.
func TestKafkaSetup(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials")
	b := brokertest.Start(t, broker.Options{Users: []broker.User{{Name: "admin", Password: "the-admin-password", Super: true}}})
	setup := []string{"kafka", "setup", "--kafka-brokers=" + b.Addr(), "--kafka-credentials=" + creds, "--log-level=warn"}
	if err := dispatch(context.Background(), setup, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "admin") {
		t.Fatalf("setup without the admin's password: %v", err)
	}
	// First with the admin's password given (compose: the one Kafka was formatted with), then
	// again from the file alone: nothing changes.
	for _, extra := range []string{"--kafka-admin-password=the-admin-password", "--log-level=warn"} {
		var out bytes.Buffer
		if err := dispatch(context.Background(), append(setup, extra), &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(out.String(), "kafka setup: 6 principals, ") {
			t.Fatalf("setup said %q", out.String())
		}
	}
	passwords, err := broker.ReadCredentials(creds)
	if err != nil || len(passwords) != len(kafkatransport.Principals()) || passwords["admin"] != "the-admin-password" {
		t.Fatalf("credentials after setup: %d principals, %v", len(passwords), err)
	}
	own, err := broker.ReadCredentials(creds + ".patient")
	if fi, _ := os.Stat(creds + ".patient"); err != nil || len(own) != 1 || own["patient"] != passwords["patient"] || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials.patient: %v %v", own, err)
	}

	args := allArgs(t, "", "--kafka-brokers="+b.Addr(), "--kafka-credentials="+creds)
	a, _ := startPMS(t, allAddrs[1:], args...)
	token := allToken(t, a)
	if resp, body := call(t, "POST", "http://"+a["patient/http"]+"/patients", token,
		`{"name":"Ada Lovelace","email":"ada@example.org","address":"1 St","dateOfBirth":"1990-01-01"}`); resp.StatusCode != 201 {
		t.Fatalf("register: %d %s", resp.StatusCode, body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, body := call(t, "GET", "http://"+a["analytics/http"]+"/summary", token, "")
		var s struct{ Patients struct{ Registered int } }
		if resp.StatusCode == 200 && json.Unmarshal(body, &s) == nil && s.Patients.Registered == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the register never reached analytics through the set-up cluster: %d %s", resp.StatusCode, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cfg := kafkatransport.Security{User: "analytics", Password: passwords["analytics"]}.Apply(kafkatransport.NewConfig("t"))
	cfg.Producer.Idempotent, cfg.Net.MaxOpenRequests, cfg.Producer.Retry.Max = false, 5, 0
	p, err := sarama.NewSyncProducer([]string{b.Addr()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: patient.TopicEvents, Value: sarama.StringEncoder("forged")}); !errors.Is(err, sarama.ErrTopicAuthorizationFailed) {
		t.Fatalf("analytics writing the patient topic: %v", err)
	}
}
