// Package kafkatransport is the Kafka side of every PMS service: a go-kit-style transport on
// IBM/sarama (Subscriber, Publisher and their options, shaped like go-kit's own
// transport/nats and transport/amqp), the consumer-group runner, topic creation, and each
// service's topic bindings (its command topic, served by the same endpoint set as REST and
// gRPC).
//
// What go-kit leaves open, and community Kafka transports got wrong, is settled here
// (DESIGN.md, "Where go-kit leaves gaps"): a message's context comes from the consumer-group
// session; ConsumeClaim never returns a handler error (sarama would tear the session down
// and redeliver forever); transient errors are retried a bounded number of times with
// backoff, then the message is dead-lettered to <topic>.dlq with the reason in a header;
// offsets are marked only after success or dead-lettering; stopping finishes the message in
// hand and leaks no goroutine; consumed, retried and dead-lettered messages and the lag are
// metrics.
package kafkatransport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/pms/pms/pkg/platform/broker"
)

// DefaultBrokers is where a service connects when no brokers are configured: the embedded
// broker of `pms all` / `pms broker` (API.md, "Running it").
var DefaultBrokers = []string{"127.0.0.1:9092"}

// ParseBrokers splits a comma-separated PMS_KAFKA_BROKERS value; empty gives nil.
func ParseBrokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// NewConfig returns the sarama configuration every PMS client starts from: protocol version
// 3.6, client id clientID, short dial and metadata timeouts (so a missing broker is noticed
// in seconds, not minutes), an idempotent producer with acks=all and one request in flight
// per broker (the order of a key survives retries), and consumers that start from the oldest
// offset of a new group (no event is skipped) and commit marked offsets every second.
func NewConfig(clientID string) *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V3_6_0_0
	c.ClientID = clientID
	c.Net.DialTimeout = 3 * time.Second
	c.Net.ReadTimeout = 15 * time.Second
	c.Net.WriteTimeout = 10 * time.Second
	c.Net.MaxOpenRequests = 1
	c.Metadata.Retry.Max = 3
	c.Metadata.Retry.Backoff = 100 * time.Millisecond
	c.Metadata.Timeout = 10 * time.Second

	c.Producer.Idempotent = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.Retry.Max = 5
	c.Producer.Retry.Backoff = 100 * time.Millisecond
	c.Producer.Timeout = 10 * time.Second
	c.Producer.Partitioner = sarama.NewHashPartitioner
	c.Producer.Flush.Frequency = time.Millisecond
	c.Producer.Flush.Messages = 500
	c.Producer.Flush.MaxMessages = 0

	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.AutoCommit.Enable = true
	c.Consumer.Offsets.AutoCommit.Interval = time.Second
	c.Consumer.Return.Errors = true
	c.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange()}
	c.Consumer.Group.Session.Timeout = 10 * time.Second
	c.Consumer.Group.Heartbeat.Interval = 3 * time.Second
	c.Consumer.Fetch.Default = 1 << 20
	c.Consumer.MaxWaitTime = 250 * time.Millisecond
	return c
}

// Topic describes a topic a service needs.
type Topic struct {
	Name              string
	Partitions        int32
	ReplicationFactor int16
	// Configs are topic configs set at creation (retention.ms: WithRetention); a topic that
	// exists already keeps its own.
	Configs map[string]string
}

// EnsureTopics creates the topics that do not exist yet and leaves the others alone (their
// partition counts are an operator's business once they exist). It is safe to run from
// several processes at once: "already exists" is success.
func EnsureTopics(ctx context.Context, brokers []string, cfg *sarama.Config, topics []Topic) error {
	admin, err := sarama.NewClusterAdmin(brokers, cfg)
	if err != nil {
		return fmt.Errorf("kafka: connect to %v: %w", brokers, err)
	}
	defer admin.Close()
	existing, err := admin.ListTopics()
	if err != nil {
		return fmt.Errorf("kafka: list topics: %w", err)
	}
	for _, t := range topics {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, ok := existing[t.Name]; ok {
			continue
		}
		if t.Partitions <= 0 {
			t.Partitions = 1
		}
		if t.ReplicationFactor <= 0 {
			t.ReplicationFactor = 1
		}
		detail := &sarama.TopicDetail{NumPartitions: t.Partitions, ReplicationFactor: t.ReplicationFactor}
		if len(t.Configs) > 0 {
			detail.ConfigEntries = map[string]*string{}
			for k, v := range t.Configs {
				detail.ConfigEntries[k] = &v
			}
		}
		err := admin.CreateTopic(t.Name, detail, false)
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			return fmt.Errorf("kafka: create topic %s: %w", t.Name, err)
		}
	}
	return nil
}

// Ping checks that at least one of brokers answers a metadata request within ctx, for
// readiness checks. It opens and closes its own connection, so it says whether a new client
// could start now.
func Ping(ctx context.Context, brokers []string, sec ...Security) error {
	cfg := sarama.NewConfig()
	if len(sec) > 0 {
		sec[0].Apply(cfg)
	}
	cfg.Version = sarama.V3_6_0_0
	cfg.ClientID = "pms-ping"
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d > 0 {
			cfg.Net.DialTimeout, cfg.Net.ReadTimeout, cfg.Net.WriteTimeout = d, d, d
		}
	}
	cfg.Metadata.Retry.Max = 0
	cfg.Metadata.Full = false
	done := make(chan error, 1)
	go func() {
		var err error
		for _, addr := range brokers {
			b := sarama.NewBroker(addr)
			if err = b.Open(cfg); err != nil {
				continue
			}
			_, err = b.GetMetadata(&sarama.MetadataRequest{Version: 1})
			_ = b.Close()
			if err == nil {
				break
			}
		}
		if len(brokers) == 0 {
			err = errors.New("kafka: no brokers configured")
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Security is how a client proves itself to the brokers: TLS (nil: plain text) and a SASL
// principal (User "": none). SASL is always SCRAM-SHA-512, so the password itself never
// crosses the wire.
type Security struct {
	TLS            *tls.Config
	User, Password string
}

// Apply configures cfg's connections with s and returns cfg.
func (s Security) Apply(cfg *sarama.Config) *sarama.Config {
	if s.TLS != nil {
		cfg.Net.TLS.Enable, cfg.Net.TLS.Config = true, s.TLS
	}
	if s.User != "" {
		broker.Login(cfg, s.User, s.Password)
	}
	return cfg
}
