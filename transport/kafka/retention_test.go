package kafkatransport_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/pms/pms/pkg/platform/broker"
	"github.com/pms/pms/pkg/platform/broker/brokertest"
	kafkatransport "github.com/pms/pms/transport/kafka"
)

// TestRetentionFor: commands, replies and dead letters (a command topic's dead letters
// included) get their period; event and audit topics keep every record (retention.ms=-1).
func TestRetentionFor(t *testing.T) {
	r := kafkatransport.Retention{Commands: time.Hour, Replies: time.Minute, DLQ: 24 * time.Hour}
	for topic, want := range map[string]string{
		"patient.commands":     "3600000",
		"patient.commands.dlq": "86400000",
		"billing.dlq":          "86400000",
		"operator.replies":     "60000",
		"patient":              "-1",
		"audit":                "-1",
		"patient.commandsx":    "-1",
	} {
		if got := r.Configs(topic)["retention.ms"]; got != want {
			t.Errorf("%s: retention.ms %s, want %s", topic, got, want)
		}
	}
}

// TestRetentionOnBroker: over TCP, topics created by EnsureTopics with WithRetention (and
// the reply topic the broker seeds) lose their records once older than the retention (their
// oldest offset reaches the newest), while the event topic, created alongside and written at
// the same time, keeps every record, and an external broker would be told so: each topic's
// retention.ms is in its config.
func TestRetentionOnBroker(t *testing.T) {
	const retention = 300 * time.Millisecond
	r := kafkatransport.Retention{Commands: retention, Replies: retention, DLQ: retention}
	b := brokertest.Start(t, broker.Options{Partitions: 1, Topics: []string{"operator.replies"}, TopicConfigs: r.Configs,
		RetentionCheck: 50 * time.Millisecond})
	addr := b.Addr()
	transient := []string{"patient.commands", "patient.commands.dlq", "patient.replies", "operator.replies"}
	topics := kafkatransport.WithRetention([]kafkatransport.Topic{
		{Name: "patient", Partitions: 1}, {Name: "patient.commands", Partitions: 1},
		{Name: "patient.commands.dlq", Partitions: 1}, {Name: "patient.replies", Partitions: 1},
	}, r)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafkatransport.EnsureTopics(ctx, []string{addr}, brokertest.Config(), topics); err != nil {
		t.Fatal(err)
	}

	p, err := sarama.NewSyncProducer([]string{addr}, brokertest.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const n = 5
	for _, topic := range append([]string{"patient"}, transient...) {
		for i := range n {
			if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(fmt.Sprint(i))}); err != nil {
				t.Fatalf("produce to %s: %v", topic, err)
			}
		}
	}

	client, err := sarama.NewClient([]string{addr}, brokertest.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	offset := func(topic string, which int64) int64 {
		t.Helper()
		o, err := client.GetOffset(topic, 0, which)
		if err != nil {
			t.Fatalf("offset of %s: %v", topic, err)
		}
		return o
	}
	for _, topic := range transient {
		deadline := time.Now().Add(20 * time.Second)
		for offset(topic, sarama.OffsetOldest) < n {
			if time.Now().After(deadline) {
				t.Fatalf("%s: oldest offset %d after 20s, want %d (retention %s never applied)", topic, offset(topic, sarama.OffsetOldest), n, retention)
			}
			time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
		}
	}
	// Every transient topic was trimmed, so passes ran after the event records were as old.
	if oldest, newest := offset("patient", sarama.OffsetOldest), offset("patient", sarama.OffsetNewest); oldest != 0 || newest != n {
		t.Errorf("event topic patient: offsets %d..%d, want 0..%d (every event kept)", oldest, newest, n)
	}
	if got := len(brokertest.ReadAll(t, addr, "patient")); got != n {
		t.Errorf("event topic patient: read %d records, want %d", got, n)
	}

	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"patient": "-1", "patient.commands": "300", "patient.commands.dlq": "300", "patient.replies": "300", "operator.replies": "300"}
	var resources []*sarama.ConfigResource
	for topic := range want {
		resources = append(resources, &sarama.ConfigResource{Type: sarama.TopicResource, Name: topic, ConfigNames: []string{"retention.ms"}})
	}
	results, err := admin.DescribeConfigs(resources, sarama.DescribeConfigsOptions{})
	if err != nil {
		t.Fatalf("describe configs: %v", err)
	}
	got := map[string]string{}
	for _, res := range results {
		for _, e := range res.Configs {
			if e.Name == "retention.ms" {
				got[res.Name] = e.Value
			}
		}
	}
	for topic, w := range want {
		if got[topic] != w {
			t.Errorf("%s: retention.ms %q, want %q", topic, got[topic], w)
		}
	}
}
