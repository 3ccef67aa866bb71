package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/oklog/run"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/idempotency"
	"github.com/pms/pms/pkg/platform/observe"
	"github.com/pms/pms/pkg/platform/op"
	"github.com/pms/pms/pkg/platform/outbox"
	"github.com/pms/pms/pkg/platform/seqmark"
	"github.com/pms/pms/pkg/platform/stack"
	"github.com/pms/pms/pkg/platform/tlsconf"
	grpctransport "github.com/pms/pms/transport/grpc"
	kafkatransport "github.com/pms/pms/transport/kafka"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
)

// module is one service's servers and what to release when they have stopped.
type module struct {
	name    string
	servers func(g *run.Group)
	closers closers
	// grpcAddr is the address its gRPC listener bound, for modules built after it to dial.
	grpcAddr string
	// reg is the registry its admin port serves (nil for a module without one).
	reg *prometheus.Registry
	// endpoints is the service's endpoint set (patient.Set, …), for the gateway of
	// `pms all --gateway-in-process` to wrap.
	endpoints any
}

// unit is one service being built. Every service — the gateway included — is assembled by the
// same steps in the same order (database and migrations, Kafka side, outbox relay, audit
// writer, listeners, servers, consumers, admin server), so a build function holds only what
// is the service's own: its store, its service and its handlers. Closers run in reverse
// order of the steps: the audit writer flushes (its entries are outbox rows too), then the
// relay publishes what is pending, then the database closes.
type unit struct {
	s      settings
	name   string
	logger log.Logger
	reg    *prometheus.Registry
	m      *module
	// db is the service's database; nil for a service without one.
	db *db.DB
	// kafka is the service's side of Kafka; nil for a service that uses none.
	kafka *serviceKafka
	// writer is the audit writer (audit).
	writer     *audit.Writer
	startRelay func()
	// auditWire, when set before audit, adds to the writer's options (the patient service's
	// disclosures: its AfterBatch hook and the entry columns, patient.Disclosures.Wire).
	auditWire func(o *audit.Options)
	consumers []func(g *run.Group)
	// sharedDB is whether the database is the shared --database-url's (on PostgreSQL, one
	// cluster with the other services' schemas, recovered with them to one point).
	sharedDB bool
}

// unitSpec is what differs between services in the shared steps.
type unitSpec struct {
	name string
	// databaseURL is the service's own database flag (empty: the shared one, else SQLite);
	// migrations nil means the service has no database.
	databaseURL string
	migrations  db.Sets
	// dbOptions configure the service's database pool (patient.DatabaseOptions).
	dbOptions []db.Option
	// topics are created at start-up; nil means the service uses no Kafka.
	topics []kafkatransport.Topic
}

// newUnit starts building a service: its logger, metrics registry, database (opened in its
// own schema and migrated) and Kafka side.
func newUnit(ctx context.Context, s settings, spec unitSpec) (*unit, error) {
	u := &unit{s: s, name: spec.name, logger: log.With(s.logger, "service", spec.name), reg: observe.NewRegistry(),
		m: &module{name: spec.name}}
	u.m.reg = u.reg
	if s.serverTLS != nil {
		u.reg.MustRegister(tlsconf.ExpiryGauge(spec.name, s.serverTLS))
	}
	if spec.topics != nil {
		k, err := newServiceKafka(spec.name, s, u.logger, u.reg, spec.topics)
		if err != nil {
			return nil, err
		}
		u.kafka = k
	}
	if spec.migrations != nil {
		d, err := openServiceDB(ctx, s, spec.name, spec.databaseURL, spec.migrations, spec.dbOptions...)
		if err != nil {
			return nil, err
		}
		u.db, u.sharedDB = d, spec.databaseURL == ""
		u.m.closers.add(func(context.Context) error { return d.Close() })
	}
	return u, nil
}

// fenceRecovery fences the consumer's database off the events on topics that a PostgreSQL
// point-in-time recovery took away from their sources (outbox.FenceRecovery), before any
// consumer starts. Only a database on the shared URL is fenced: the services' schemas then
// live in one cluster, recovered to one point. A service on a database of its own may have
// been restored alone, while its sources kept every change: their events in the interval are
// real, and it must apply them (docs/operations.md, "Events").
func (u *unit) fenceRecovery(ctx context.Context, topics []string) error {
	if u.db == nil || !u.sharedDB {
		return nil
	}
	r, fenced, err := outbox.FenceRecovery(ctx, u.db, topics)
	if err != nil {
		return fmt.Errorf("%s: fencing the events of a recovery: %w", u.name, err)
	}
	if fenced {
		_ = level.Warn(u.logger).Log("msg", "the database was recovered to an earlier point: skipping the events published after it on the old server",
			"last_commit", r.LastCommit.Format(time.RFC3339Nano), "server_start", r.ServerStart.Format(time.RFC3339Nano), "topics", strings.Join(topics, ","))
	}
	return nil
}

// retain deletes, at start and every hour until ctx ends, the rows of tables (stored command
// replies, idempotency records) older than --idempotency-retention (issue 17: a stored
// answer may carry a patient's record; it must not outlive its use).
func (u *unit) retain(ctx context.Context, tables ...string) {
	hourly(ctx, func() {
		n, err := idempotency.Prune(ctx, u.db, time.Now().Add(-u.s.retention), tables...)
		if err != nil && ctx.Err() == nil {
			_ = level.Warn(u.logger).Log("msg", "retention: pruning stored replies failed", "err", err)
		} else if n > 0 {
			_ = level.Info(u.logger).Log("msg", "retention: pruned stored replies and idempotency records", "rows", n)
		}
	})
}

// retainProcessed deletes, at start and every hour until ctx ends, the ids of the events
// consumers applied more than --processed-events-retention before their newest
// (outbox.PruneProcessed): processed_events would otherwise grow by a row for every event,
// and every audited read is one for analytics. At start and every day it also deletes the
// old random ids (outbox.PruneRandomProcessed: those of a database from before issue 20),
// whose pass reads every random id, young or old.
func (u *unit) retainProcessed(ctx context.Context, consumers ...string) {
	passes := 0
	hourly(ctx, func() {
		random := passes%24 == 0
		passes++
		for _, c := range consumers {
			n, err := outbox.PruneProcessed(ctx, u.db, c, u.s.processedRetention, time.Now())
			if random && err == nil {
				var k int64
				k, err = outbox.PruneRandomProcessed(ctx, u.db, c, u.s.processedRetention, time.Now())
				n += k
			}
			if err != nil && ctx.Err() == nil {
				_ = level.Warn(u.logger).Log("msg", "retention: pruning applied event ids failed", "consumer", c, "err", err)
			} else if n > 0 {
				_ = level.Info(u.logger).Log("msg", "retention: pruned applied event ids", "consumer", c, "rows", n)
			}
		}
	})
}

// hourly runs fn at once and then every hour until ctx ends, on a goroutine of its own.
func hourly(ctx context.Context, fn func()) {
	go func() {
		t := time.NewTicker(time.Hour)
		defer t.Stop()
		for {
			fn()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// fail releases what the unit opened so far and returns err.
func (u *unit) fail(err error) (*module, error) {
	u.m.closers.closeAll(u.s.shutdownTimeout, u.logger)
	return nil, err
}

// audit gives the service its audit writer on table. With ob, the service's outbox, the
// relay publishes ob from the moment the servers start, and every audit entry is also an
// outbox row for the audit topic.
//
// The audit topic also gets the service's signed checkpoints (docs/audit.md): every
// --audit-checkpoint-every entries or --audit-checkpoint-interval the writer signs the chain's
// head with the service's checkpoint key (<audit-key-dir>/audit-checkpoint-<service>.json, created
// on first start, rotated by `pms audit rotate-key`).
func (u *unit) audit(table string, ob *outbox.Outbox) (*audit.Writer, error) {
	o := audit.Options{Table: table, Service: u.name, Registerer: u.reg, Logger: u.logger,
		CheckpointEvery: u.s.checkpointEvery, CheckpointInterval: u.s.checkpointInterval}
	if ob != nil {
		// The relay publishes the entries from the table itself (audit.Tail): no outbox row
		// per entry. A committed batch is handed to the tail, so the relay need not read it
		// back, and wakes the relay.
		tail := audit.NewTail(u.db, table, u.name)
		tail.RegisterMetrics(u.reg)
		u.startRelay = u.kafka.addRelay(u.m, ob, u.reg, tail)
		o.Committed, o.AfterCommit = tail.Remember, ob.Wake
		keys, created, err := audit.OpenCheckpointKeys(u.s.checkpointKeyFile(u.name))
		if err != nil {
			return nil, err
		}
		if created {
			_ = level.Info(u.logger).Log("msg", "created the audit checkpoint key", "file", u.s.checkpointKeyFile(u.name))
		}
		o.Checkpoint = audit.CheckpointHook(ob, u.name, keys)
	}
	if u.auditWire != nil {
		u.auditWire(&o)
	}
	u.writer = audit.NewWriter(u.db, o)
	u.m.closers.add(u.writer.Close)
	return u.writer, nil
}

// endpoints are the options of the service's endpoint middleware (pkg/platform/stack): the
// guard over the roles of ops with verifier (refusing ops' writes while its revocation table
// is stale), refusals audited by denied; logging, request metrics and the configured rate limit.
func (u *unit) endpoints(verifier *authz.Verifier, ops op.Table, denied authz.DeniedFunc) stack.Options {
	if t := verifier.Revocations(); t != nil {
		t.RegisterMetrics(u.reg, u.name)
	}
	return stack.Options{Guard: authz.NewGuard(verifier, ops.Roles(), denied).WithReads(ops.Reads()), Logger: u.logger,
		Metrics: observe.NewRequestMetrics(u.reg, u.name), DefaultLimit: u.s.limit}
}

// consume runs, with the servers, a consumer of topics in group (serviceKafka.addConsumer).
func (u *unit) consume(group string, topics []string, newSub func(p sarama.SyncProducer) *kafkatransport.Subscriber) {
	u.consumers = append(u.consumers, func(g *run.Group) { u.kafka.addConsumer(g, group, topics, newSub) })
}

// commands runs, with the servers, the consumer of the service's command topic: each command
// calls the endpoint it names in handlers, as the token it carries, and its reply is stored
// (a redelivered command gets the same reply, not a second change).
func (u *unit) commands(topic string, handlers map[string]kafkatransport.Command, verifier *authz.Verifier, opts ...kafkatransport.SubscriberOption) {
	replies := idempotency.NewReplies(u.db)
	u.consume(u.name, []string{topic}, func(p sarama.SyncProducer) *kafkatransport.Subscriber {
		return kafkatransport.NewCommandSubscriber(handlers, kafkatransport.CommandOptions{
			Producer: p, Replies: replies, Verifier: verifier, ReplyPrincipals: u.kafka.principals,
			Metrics: u.kafka.metrics, Group: u.name, Logger: u.logger, Options: opts,
		})
	})
}

// listenAddrs are a service's listen addresses; an empty grpc means no gRPC server.
type listenAddrs struct{ http, grpc, admin string }

// serve binds the listeners (all or none) and returns the finished module: the HTTP handler,
// the gRPC server with the services register puts on it (and the health service), the admin
// server (metrics, health with the database and Kafka checks, pprof), the consumers, and the
// outbox relay started with them. The module's grpcAddr is what its gRPC listener bound.
func (u *unit) serve(ctx context.Context, a listenAddrs, httpH http.Handler, register func(*grpc.Server)) (*module, error) {
	kinds := []string{"http", "grpc", "admin"}
	ls := map[string]net.Listener{}
	plain := 0
	for i, addr := range []string{a.http, a.grpc, a.admin} {
		if addr == "" && kinds[i] == "grpc" {
			continue
		}
		exposed, err := checkListenAddr(u.name, kinds[i], addr, u.s.insecure || u.s.serverTLS != nil)
		if exposed && err == nil && u.s.serverTLS == nil {
			plain++
			_ = level.Warn(u.logger).Log("msg", "plain-text listener off loopback (--insecure-plaintext)", "kind", kinds[i], "addr", addr)
		}
		var l net.Listener
		if err == nil {
			l, err = listen(ctx, u.logger, u.name, kinds[i], addr)
		}
		if err != nil {
			for _, l := range ls {
				_ = l.Close()
			}
			return u.fail(err)
		}
		ls[kinds[i]] = l
	}
	var checks []observe.Check
	if u.db != nil {
		checks = append(checks, observe.Check{Name: "database", Check: u.db.PingContext})
	}
	if u.kafka != nil {
		checks = append(checks, observe.Check{Name: "kafka", Check: u.kafka.check})
	}
	insecure := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "pms", Name: "insecure_plaintext_listeners",
		Help: "Listeners of this service serving plain text off loopback (--insecure-plaintext); 0 when closed by default."})
	insecure.Set(float64(plain))
	u.reg.MustRegister(insecure)
	adminH := observe.AdminHandler(u.reg, u.s.pprof, checks...)
	var grpcS *grpc.Server
	healthS := health.NewServer()
	if l := ls["grpc"]; l != nil {
		u.m.grpcAddr = l.Addr().String()
		o := grpctransport.ServerOptions{Logger: u.logger, TrustedProxies: u.s.trustedProxies, Health: healthS}
		if u.s.serverTLS != nil {
			// gRPC is spoken only between the platform's processes: every caller proves which
			// one it is with a client certificate (mutual TLS), which the guard checks
			// against a service identity (authz.PeerService).
			cfg := u.s.serverTLS.Clone()
			if cfg.ClientCAs != nil {
				cfg.ClientAuth = tls.RequireAndVerifyClientCert
			}
			o.Options = append(o.Options, grpc.Creds(credentials.NewTLS(cfg)))
		}
		grpcS = grpctransport.NewServer(o)
		register(grpcS)
	}
	u.m.servers = func(g *run.Group) {
		addHTTP(g, ls["http"], httpH, u.s.shutdownTimeout, u.s.serverTLS)
		if grpcS != nil {
			addGRPC(g, ls["grpc"], grpcS, healthS, u.s.shutdownTimeout)
		}
		addHTTP(g, ls["admin"], adminH, u.s.shutdownTimeout, u.s.serverTLS)
		for _, c := range u.consumers {
			c(g)
		}
		if u.startRelay != nil {
			u.startRelay()
		}
	}
	return u.m, nil
}

// openServiceDB opens a service's database (its own URL, else the shared one, else its
// SQLite file; on PostgreSQL its own schema, named after it, and a pool of --database-max-conns)
// and applies its migrations.
func openServiceDB(ctx context.Context, s settings, service, ownURL string, migrations db.Sets, opts ...db.Option) (*db.DB, error) {
	d, err := db.Open(ctx, s.dbURL(ownURL, service), service, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", service, err)
	}
	d.SetPoolSize(s.databaseConns)
	if _, err := db.Migrate(ctx, d, migrations); err != nil {
		_ = d.Close()
		return nil, fmt.Errorf("%s: %w", service, err)
	}
	// The counters start above every number handed out from this data folder, even when the
	// database was brought back to an earlier point: a `pms restore`, or a point-in-time
	// recovery of PostgreSQL (docs/operations.md). Each replica keeps its own marks: give a
	// service's replicas one shared data folder, or the first to start after a recovery
	// raises the counters to its own marks only.
	marks, err := seqmark.Open(seqmark.File(s.dataDir, service))
	if err == nil {
		err = db.RaiseSequences(ctx, d, marks.Current())
	}
	if err != nil {
		_ = d.Close()
		return nil, fmt.Errorf("%s: %w", service, err)
	}
	d.OnIssue = marks.Issued
	return d, nil
}
