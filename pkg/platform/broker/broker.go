// Package broker runs the embedded Kafka-protocol broker of the development defaults
// (DESIGN.md): github.com/twmb/franz-go/pkg/kfake, one broker on a loopback TCP address, so
// that every producer and consumer of the platform talks sarama over TCP exactly as it would
// to a real cluster. It is for `make run`, `pms broker` and tests; production uses a real
// Kafka cluster (PMS_KAFKA_BROKERS).
package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
)

// DefaultAddr is where the embedded broker listens unless told otherwise (API.md's 9092).
const DefaultAddr = "127.0.0.1:9092"

// Options configure Start. The zero value starts an in-memory broker on DefaultAddr.
type Options struct {
	// Addr is the TCP address to listen on; "" means DefaultAddr, port 0 any free port. It
	// should be a loopback address: the broker advertises the address it bound.
	Addr string
	// DataDir, when set, keeps topics, records, committed offsets and producer state in this
	// folder, so that a restart on the same folder finds them again. "" keeps everything in
	// memory: a restart starts empty.
	DataDir string
	// Partitions is the partition count of topics created implicitly; default 3. The
	// services create their topics themselves (with their own counts) at start-up.
	Partitions int
	// Logger receives the broker's warnings and errors. Nil discards them.
	Logger log.Logger
	// TLS, when set, is the listener's TLS (clients then need kafkatransport.Security).
	TLS *tls.Config
	// Users, when set, turn on SASL (SCRAM-SHA-512) and ACLs: only these principals connect,
	// and each may do only what it is granted. Empty: no authentication (tests only).
	Users []User
	// Topics are created at start (with Partitions), for topics no service creates: the
	// reply topics of principals that are not services.
	Topics []string
	// TopicConfigs, when set, are the configs each of Topics is created with (its
	// retention.ms: kafkatransport.Retention.Configs).
	TopicConfigs func(topic string) map[string]string
	// RetentionCheck is how often the broker deletes the records older than their topic's
	// retention.ms (or beyond its retention.bytes); default DefaultRetentionCheck. A topic
	// without either keeps every record: the broker's own default is unlimited, not Kafka's
	// week, because the event topics must keep every event.
	RetentionCheck time.Duration
}

// DefaultRetentionCheck is how often the broker applies retention unless told otherwise.
const DefaultRetentionCheck = time.Minute

// Broker is a running embedded broker.
type Broker struct {
	cluster   *kfake.Cluster
	addr      string
	persisted bool
	closeOnce sync.Once
	stop      chan struct{}
	done      chan struct{}
}

// Start starts a broker. It fails when the address cannot be bound or the data folder holds
// state the broker cannot load.
func Start(o Options) (*Broker, error) {
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	if o.Partitions <= 0 {
		o.Partitions = 3
	}
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	if o.RetentionCheck <= 0 {
		o.RetentionCheck = DefaultRetentionCheck
	}
	var ln net.Listener
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ClusterID("pms-embedded"),
		kfake.DefaultNumPartitions(o.Partitions),
		kfake.WithLogger(kfakeLogger{o.Logger}),
		// Topics without retention configs (the event and audit topics) keep every record;
		// kfake's default would be Kafka's week once any topic has a retention config.
		kfake.BrokerConfigs(map[string]string{"log.retention.ms": "-1", "log.retention.bytes": "-1"}),
		// kfake binds 127.0.0.1:<port>; ours binds exactly the address configured, and the
		// broker advertises whatever was bound.
		// With principals, TLS is ours too: the SASL shim (compat.go) must see the plain bytes.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			l, err := net.Listen(network, o.Addr)
			if err != nil {
				return nil, err
			}
			ln = l
			if len(o.Users) == 0 {
				return l, nil
			}
			if o.TLS != nil {
				l = tls.NewListener(l, o.TLS)
			}
			return saslCompatListener{l}, nil
		}),
	}
	if o.DataDir != "" {
		// The records hold patient data and the broker library writes its files 0644: the
		// folder (made earlier, perhaps more open) is the owner's alone (issue 17).
		if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("broker: data folder: %w", err)
		}
		if err := os.Chmod(o.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("broker: data folder: %w", err)
		}
		opts = append(opts, kfake.DataDir(o.DataDir))
	}
	if o.TLS != nil && len(o.Users) == 0 {
		opts = append(opts, kfake.TLS(o.TLS))
	}
	opts = append(opts, kfakeOpts(o.Users)...)
	if len(o.Topics) > 0 && o.TopicConfigs == nil {
		opts = append(opts, kfake.SeedTopics(int32(o.Partitions), o.Topics...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		if ln != nil {
			_ = ln.Close()
		}
		return nil, fmt.Errorf("broker: start on %s: %w", o.Addr, err)
	}
	addrs := c.ListenAddrs()
	if len(addrs) != 1 {
		c.Close()
		return nil, errors.New("broker: expected exactly one listener")
	}
	if o.TopicConfigs != nil {
		for _, t := range o.Topics {
			// A topic loaded from the data folder keeps the configs it has.
			if err := c.CreateTopic(t, int32(o.Partitions), o.TopicConfigs(t)); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
				c.Close()
				return nil, fmt.Errorf("broker: create topic %s: %w", t, err)
			}
		}
	}
	b := &Broker{cluster: c, addr: addrs[0], persisted: o.DataDir != "", stop: make(chan struct{}), done: make(chan struct{})}
	go b.retain(o.RetentionCheck)
	if b.persisted {
		_ = level.Info(o.Logger).Log("msg", "embedded Kafka-protocol broker started (development use)", "addr", b.addr, "data_dir", o.DataDir)
	} else {
		_ = level.Warn(o.Logger).Log("msg", "embedded Kafka-protocol broker started IN MEMORY, for development and tests only: its topics are lost when it stops",
			"addr", b.addr)
	}
	return b, nil
}

// retain applies retention every period until Close: kfake's own pass runs on
// log.cleaner.backoff.ms (an hour) and only once a topic with a retention config was created
// or altered since the start, not for topics loaded from the data folder.
func (b *Broker) retain(period time.Duration) {
	defer close(b.done)
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-tick.C:
			b.cluster.ApplyRetention()
		}
	}
}

// ApplyRetention deletes now the records older than their topic's retention, as the periodic
// pass would.
func (b *Broker) ApplyRetention() { b.cluster.ApplyRetention() }

// Addr returns the host:port the broker listens on, for PMS_KAFKA_BROKERS.
func (b *Broker) Addr() string { return b.addr }

// Persisted reports whether the broker keeps its data on disk.
func (b *Broker) Persisted() bool { return b.persisted }

// Close stops the broker: it closes the listener and every client connection and, with a
// data folder, writes its state there. Calling it again does nothing.
func (b *Broker) Close() {
	b.closeOnce.Do(func() {
		close(b.stop)
		<-b.done
		b.cluster.Close()
	})
}

// kfakeLogger passes kfake's warnings and errors to a go-kit logger. Its messages are about
// the protocol (requests, groups, files), never record contents.
type kfakeLogger struct{ l log.Logger }

func (k kfakeLogger) Logf(lvl kfake.LogLevel, msg string, args ...any) {
	text := fmt.Sprintf(msg, args...)
	switch lvl {
	case kfake.LogLevelError:
		_ = level.Error(k.l).Log("component", "broker", "msg", text)
	case kfake.LogLevelWarn:
		_ = level.Warn(k.l).Log("component", "broker", "msg", text)
	}
}
