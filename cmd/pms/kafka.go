package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/oklog/run"
	"github.com/pms/pms/pkg/platform/broker"
	"github.com/pms/pms/pkg/platform/outbox"
	"github.com/pms/pms/pkg/platform/privfile"
	kafkatransport "github.com/pms/pms/transport/kafka"
	"github.com/prometheus/client_golang/prometheus"
)

// kafkaFlags are the Kafka settings every command shares.
type kafkaFlags struct {
	brokers                 []string
	addr                    string
	partitions, replication int
	tls                     bool
	credentials             string
	retention               kafkatransport.Retention
	retentionCheck          time.Duration
}

func (k *kafkaFlags) register(f *flags) {
	f.List(&k.brokers, "kafka-brokers", "", "comma-separated Kafka brokers (empty: pms all starts the embedded broker, a single service connects to "+broker.DefaultAddr+")")
	f.String(&k.addr, "kafka-addr", broker.DefaultAddr, "address of the embedded broker (pms broker, and pms all without --kafka-brokers)")
	f.Int(&k.partitions, "kafka-partitions", 3, "partitions of the topics a service creates at start-up when missing").within(1, 1<<20)
	f.Int(&k.replication, "kafka-replication-factor", 1, "replication factor of the topics a service creates at start-up when missing").within(1, 1<<10)
	f.String(&k.credentials, "kafka-credentials", "", "file of the Kafka principals' passwords (\"<principal> <password>\" lines); each service authenticates as the principal of its name (SASL/SCRAM-SHA-512). The embedded broker creates it when missing and enforces its ACLs (empty: <data-dir>/kafka/credentials, which a service without --kafka-brokers also uses when it exists)")
	f.Duration(&k.retention.Commands, "kafka-retention-commands", kafkatransport.DefaultRetention.Commands, "how long the brokers keep a command on a *.commands topic (retention.ms, set when a service creates the topic; event and audit topics keep every record)").positive()
	f.Duration(&k.retention.Replies, "kafka-retention-replies", kafkatransport.DefaultRetention.Replies, "how long the brokers keep a reply on a *.replies topic (retention.ms, set when the topic is created)").positive()
	f.Duration(&k.retention.DLQ, "kafka-retention-dlq", kafkatransport.DefaultRetention.DLQ, "how long the brokers keep a dead letter on a *.dlq topic: long enough for an operator to see and redrive it (retention.ms, set when the topic is created)").positive()
	f.Duration(&k.retentionCheck, "kafka-retention-check", time.Minute, "how often the embedded broker deletes the records older than their topic's retention").positive()
	f.Bool(&k.tls, "kafka-tls", false, "speak TLS to the brokers with --tls-ca (and --tls-cert as client certificate); the embedded broker then serves TLS with --tls-cert")
}

// kafkaSettings is kafkaFlags in the types sarama takes.
type kafkaSettings struct {
	brokers     []string // empty: none configured
	addr        string
	partitions  int32
	replication int16
	// clientTLS and serverTLS secure the brokers' connections with --kafka-tls; nil: plain;
	// caFile is then --tls-ca, for the kcat configuration.
	clientTLS, serverTLS *tls.Config
	caFile               string
	// credentials is --kafka-credentials; creds what the embedded broker of `pms all` made
	// (nil: read credentials when a service starts).
	credentials string
	creds       broker.Credentials
	// retention is what the command, reply and dead-letter topics keep; retentionCheck how
	// often the embedded broker applies it.
	retention      kafkatransport.Retention
	retentionCheck time.Duration
}

// settings converts the checked flags (their ranges fit int32 and int16); an empty
// --kafka-addr is the embedded broker's default.
func (k kafkaFlags) settings() kafkaSettings {
	s := kafkaSettings{brokers: k.brokers, addr: k.addr, partitions: int32(k.partitions), replication: int16(k.replication),
		credentials: k.credentials, retention: k.retention, retentionCheck: k.retentionCheck}
	if s.addr == "" {
		s.addr = broker.DefaultAddr
	}
	return s
}

// brokerList is where services connect: the configured brokers, else the embedded broker's
// default address (API.md: a single service with no brokers configured uses 127.0.0.1:9092).
func (k kafkaSettings) brokerList() []string {
	if len(k.brokers) > 0 {
		return k.brokers
	}
	return kafkatransport.DefaultBrokers
}

// startBroker starts the embedded broker on --kafka-addr, keeping its data under
// <data-dir>/kafka, and reports its address like any listener. It serves SASL/SCRAM with the
// platform's ACLs (kafkatransport.Grants) to the principals of --kafka-credentials, creating
// the file when missing, and writes <data-dir>/kcat.conf for the operator principal. It
// returns the credentials, for the services of `pms all`.
func startBroker(ctx context.Context, s settings) (*broker.Broker, broker.Credentials, error) {
	if exposed, err := checkListenAddr("broker", "kafka", s.kafka.addr, s.insecure || s.kafka.serverTLS != nil); err != nil {
		return nil, nil, err
	} else if exposed && s.kafka.serverTLS == nil {
		_ = level.Warn(s.logger).Log("msg", "plain-text listener off loopback (--insecure-plaintext)", "service", "broker", "addr", s.kafka.addr)
	}
	creds, err := broker.EnsureCredentials(s.kafka.credentialsFile(s.dataDir), kafkatransport.Principals())
	if err != nil {
		return nil, nil, fmt.Errorf("--kafka-credentials: %w", err)
	}
	b, err := broker.Start(broker.Options{
		Addr: s.kafka.addr, DataDir: filepath.Join(s.dataDir, "kafka"), Partitions: int(s.kafka.partitions), TLS: s.kafka.serverTLS,
		Logger: log.With(s.logger, "service", "broker"), Users: brokerUsers(creds),
		Topics: replyTopics(kafkatransport.Principals()), TopicConfigs: s.kafka.retention.Configs,
		RetentionCheck: s.kafka.retentionCheck,
	})
	if err != nil {
		return nil, nil, err
	}
	op := kafkatransport.PrincipalOperator
	if err := privfile.Write(filepath.Join(s.dataDir, "kcat.conf"), kcatConfig(b.Addr(), op, creds[op], s.kafka.caFile), false); err != nil {
		b.Close()
		return nil, nil, fmt.Errorf("broker: kcat.conf: %w", err)
	}
	if hook, ok := ctx.Value(listenHookKey{}).(listenHook); ok {
		hook("broker", "kafka", b.Addr())
	}
	return b, creds, nil
}

// replyTopics are the reply topics of principals (kafkatransport.RepliesOf): the broker
// creates them, so any principal's reply topic a command may name exists.
func replyTopics(principals []string) []string {
	out := make([]string, len(principals))
	for i, p := range principals {
		out[i] = kafkatransport.RepliesOf(p)
	}
	return out
}

// credentialsFile is --kafka-credentials, else the embedded broker's default beside its data.
func (k kafkaSettings) credentialsFile(dataDir string) string {
	if k.credentials != "" {
		return k.credentials
	}
	return filepath.Join(dataDir, "kafka", "credentials")
}

// security is how service connects to the brokers: TLS with --kafka-tls, and as the
// principal of its name when there are credentials (those of the embedded broker of `pms
// all`, --kafka-credentials, or with no --kafka-brokers the embedded broker's default file
// when it exists). It also returns the principals whose reply topics commands may name: the
// platform's (nil without credentials: any "*.replies"). A service's file may hold its own
// line only.
func (k kafkaSettings) security(service, dataDir string) (kafkatransport.Security, []string, error) {
	sec := kafkatransport.Security{TLS: k.clientTLS}
	creds, path := k.creds, k.credentialsFile(dataDir)
	if creds == nil {
		if _, err := os.Stat(path); k.credentials == "" && (len(k.brokers) > 0 || err != nil) {
			return sec, nil, nil
		}
		var err error
		if creds, err = broker.ReadCredentials(path); err != nil {
			return sec, nil, fmt.Errorf("--kafka-credentials: %w", err)
		}
	}
	if creds[service] == "" {
		return sec, nil, fmt.Errorf("--kafka-credentials %s: no password for the principal %q", path, service)
	}
	sec.User, sec.Password = service, creds[service]
	return sec, kafkatransport.Principals(), nil
}

// withEmbeddedBroker is how `pms all` starts: with no brokers configured it starts the
// embedded broker first and points every service at it; the broker is a module of its own,
// built first and so closed last, after every relay has flushed into it.
func withEmbeddedBroker(ctx context.Context, s *settings) (*module, error) {
	if len(s.kafka.brokers) > 0 {
		return nil, nil
	}
	b, creds, err := startBroker(ctx, *s)
	if err != nil {
		return nil, err
	}
	s.kafka.brokers, s.kafka.creds = []string{b.Addr()}, creds
	m := &module{name: "broker", servers: func(*run.Group) {}}
	m.closers.add(func(context.Context) error { b.Close(); return nil })
	return m, nil
}

// runBroker is `pms broker`: the embedded broker alone, until SIGTERM.
func runBroker(ctx context.Context, args []string, _, stderr io.Writer) error {
	s, err := parseCommand("broker", args, stderr, nil)
	if err != nil {
		return err
	}
	b, _, err := startBroker(ctx, s)
	if err != nil {
		return err
	}
	<-ctx.Done()
	b.Close()
	_ = level.Info(s.logger).Log("msg", "broker stopped")
	return nil
}

// serviceKafka is one service's side of Kafka: its brokers, topics and metrics.
type serviceKafka struct {
	service string
	brokers []string
	topics  []kafkatransport.Topic
	logger  log.Logger
	metrics *kafkatransport.Metrics
	timeout time.Duration
	sec     kafkatransport.Security
	// principals are those whose reply topics a command may name (nil: any "*.replies").
	principals []string
}

func newServiceKafka(service string, s settings, logger log.Logger, reg prometheus.Registerer, topics []kafkatransport.Topic) (*serviceKafka, error) {
	sec, principals, err := s.kafka.security(service, s.dataDir)
	if err != nil {
		return nil, err
	}
	return &serviceKafka{
		service: service, brokers: s.kafka.brokerList(), topics: kafkatransport.WithRetention(topics, s.kafka.retention), logger: logger,
		metrics: kafkatransport.NewMetrics(reg, service), timeout: s.shutdownTimeout, sec: sec, principals: principals,
	}, nil
}

// check is the readiness check of the brokers: reachable now, not "a group has formed".
func (k *serviceKafka) check(ctx context.Context) error {
	return kafkatransport.Ping(ctx, k.brokers, k.sec)
}

// config is a client configuration of the service's, as its principal and over TLS when the
// brokers want them.
func (k *serviceKafka) config(clientID string) *sarama.Config {
	return k.sec.Apply(kafkatransport.NewConfig(clientID))
}

// addRelay runs the relay of ob, and of tails, from the moment the module's servers start
// until the module's closers reach it: after the servers and consumers have stopped and the
// audit writer has flushed (its last entries are published from its tail), so the flush
// publishes everything, and before the database closes. Add it to the closers right after
// the database, before the audit writer.
func (k *serviceKafka) addRelay(m *module, ob *outbox.Outbox, reg prometheus.Registerer, tails ...outbox.Tail) (start func()) {
	cfg := k.config("pms-" + k.service + "-relay")
	r := outbox.NewRelay(ob, outbox.RelayOptions{
		NewProducer: func() (sarama.SyncProducer, error) { return sarama.NewSyncProducer(k.brokers, cfg) },
		Service:     k.service, Registerer: reg, Logger: k.logger, Tails: tails,
	})
	done := make(chan struct{})
	var started atomic.Bool
	m.closers.add(func(ctx context.Context) error {
		err := r.Stop(ctx) // before Run: makes a later Run a no-op
		if started.Load() {
			<-done
		}
		return err
	})
	return func() {
		started.Store(true)
		go func() {
			defer close(done)
			if err := r.Run(); err != nil {
				_ = level.Error(k.logger).Log("msg", "outbox relay", "err", err)
			}
		}()
	}
}

// addConsumer adds to g an actor consuming topics in group with the subscriber newSub makes
// (given a producer for replies and dead letters). It first creates the service's topics and
// connects, retrying while the broker is unreachable, so the service starts and is ready
// without waiting for Kafka. Interrupting it lets the message in hand finish.
func (k *serviceKafka) addConsumer(g *run.Group, group string, topics []string, newSub func(p sarama.SyncProducer) *kafkatransport.Subscriber) {
	var (
		mu       sync.Mutex
		consumer *kafkatransport.Consumer
		producer sarama.SyncProducer
		stop     = make(chan struct{})
	)
	g.Add(func() error {
		if !k.ensureTopics(stop) {
			return nil
		}
		// Replies and dead letters need no idempotence, and a producer without it never
		// trips over a broker that forgot its producer ids.
		cfg := k.config("pms-" + k.service + "-replies")
		cfg.Producer.Idempotent = false
		cfg.Net.MaxOpenRequests = 5
		p, ok := k.retry(stop, func() (sarama.SyncProducer, error) { return sarama.NewSyncProducer(k.brokers, cfg) })
		if !ok {
			return nil
		}
		mu.Lock()
		select {
		case <-stop:
			mu.Unlock()
			_ = p.Close()
			return nil
		default:
		}
		producer = p
		consumer = kafkatransport.NewConsumer(k.brokers, group, topics, k.config("pms-"+k.service), newSub(p), k.logger)
		mu.Unlock()
		return consumer.Run()
	}, func(error) {
		mu.Lock()
		close(stop)
		c, p := consumer, producer
		mu.Unlock()
		if c != nil {
			ctx, cancel := context.WithTimeout(context.Background(), k.timeout)
			if err := c.Stop(ctx); err != nil {
				_ = level.Warn(k.logger).Log("msg", "consumer did not stop in time", "group", group, "err", err)
			}
			cancel()
		}
		if p != nil {
			_ = p.Close()
		}
	})
}

// retry calls f with backoff until it succeeds or stop is closed.
func (k *serviceKafka) retry(stop <-chan struct{}, f func() (sarama.SyncProducer, error)) (sarama.SyncProducer, bool) {
	backoff := 100 * time.Millisecond
	for {
		p, err := f()
		if err == nil {
			return p, true
		}
		_ = level.Warn(k.logger).Log("msg", "cannot reach the brokers yet; retrying", "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-stop:
			t.Stop()
			return nil, false
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// ensureTopics creates the service's topics, retrying with backoff until it succeeds or stop
// is closed; it reports whether the topics exist.
func (k *serviceKafka) ensureTopics(stop <-chan struct{}) bool {
	backoff := 100 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		err := kafkatransport.EnsureTopics(ctx, k.brokers, k.config("pms-"+k.service+"-admin"), k.topics)
		cancel()
		if err == nil {
			return true
		}
		_ = level.Warn(k.logger).Log("msg", "cannot create topics yet; retrying", "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-stop:
			t.Stop()
			return false
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}
