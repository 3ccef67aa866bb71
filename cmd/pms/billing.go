package main

import (
	"context"
	"io"

	"github.com/IBM/sarama"
	"github.com/go-kit/log"
	"github.com/oklog/run"
	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/observe"
	"github.com/pms/pms/pkg/platform/outbox"
	grpctransport "github.com/pms/pms/transport/grpc"
	httptransport "github.com/pms/pms/transport/http"
	kafkatransport "github.com/pms/pms/transport/kafka"
	"google.golang.org/grpc/health"
)

// billingConfig is the billing service's own settings.
type billingConfig struct {
	httpAddr, grpcAddr, adminAddr, databaseURL string
}

// register defines the billing flags; prefix is "" for `pms billing` and "billing-" for
// `pms all`. The environment twins are the same either way.
func (c *billingConfig) register(f *flags, prefix string) {
	f.String(&c.httpAddr, prefix+"http-addr", ":4001", "billing HTTP API address", "PMS_BILLING_HTTP_ADDR")
	f.String(&c.grpcAddr, prefix+"grpc-addr", ":9001", "billing gRPC address", "PMS_BILLING_GRPC_ADDR")
	f.String(&c.adminAddr, prefix+"admin-addr", ":4101", "billing admin address (metrics, health, pprof)", "PMS_BILLING_ADMIN_ADDR")
	f.String(&c.databaseURL, "billing-database-url", "", "billing database URL (overrides --database-url)", "PMS_BILLING_DATABASE_URL")
}

// openBillingDB opens and migrates the billing database (schema "billing" on PostgreSQL).
func openBillingDB(ctx context.Context, s settings, c billingConfig) (*db.DB, error) {
	return openServiceDB(ctx, s, "billing", c.databaseURL, migrations.Billing())
}

// buildBilling wires the billing service: database, audit writer, service and its
// middleware, the endpoint set, the HTTP, gRPC (v1 and the earlier package-less API) and
// admin servers on bound listeners, and its Kafka side: the outbox relay (billing and audit
// events), the billing.commands consumer and the consumer of the patient topic that opens
// the account of every new patient.
func buildBilling(ctx context.Context, s settings, c billingConfig) (*module, error) {
	logger := log.With(s.logger, "service", "billing")
	m := &module{name: "billing"}
	d, err := openBillingDB(ctx, s, c)
	if err != nil {
		return nil, err
	}
	m.closers.add(func(context.Context) error { return d.Close() })
	reg := observe.NewRegistry()
	store := billing.NewStore(d)
	// Closers run in reverse: the audit writer flushes (its entries are outbox rows too),
	// then the relay publishes what is pending, then the database closes.
	kafka := newServiceKafka("billing", s, logger, reg, kafkatransport.BillingTopics(s.kafka.partitions, s.kafka.replication))
	startRelay := kafka.addRelay(m, store.Outbox(), reg)
	writer := audit.NewWriter(d, audit.Options{Table: billing.AuditTable, Service: "billing", Registerer: reg, Logger: logger,
		AfterBatch: outbox.AuditHook(store.Outbox(), "billing"), AfterCommit: store.Outbox().Wake})
	m.closers.add(writer.Close)

	var svc billing.Service = billing.NewService(store, writer, billing.Options{Logger: logger})
	svc = billing.NewMetrics(reg).Instrumenting()(svc)
	verifier := s.verifier()
	set := billing.NewEndpoints(svc, billing.EndpointOptions{
		Guard:  authz.NewGuard(verifier, billing.Roles, billing.DeniedAuditor(writer)),
		Logger: logger, Metrics: observe.NewRequestMetrics(reg, "billing"), DefaultLimit: s.limit,
	})

	ls, err := listeners(ctx, logger, "billing", c.httpAddr, c.grpcAddr, c.adminAddr)
	if err != nil {
		m.closers.closeAll(s.shutdownTimeout, logger)
		return nil, err
	}
	httpL, grpcL, adminL := ls[0], ls[1], ls[2]
	m.grpcAddr = grpcL.Addr().String()
	httpH := httptransport.NewBillingHandler(set, httptransport.Options{Logger: logger, TrustedProxies: s.trustedProxies})
	healthS := health.NewServer()
	grpcS := grpctransport.NewServer(grpctransport.ServerOptions{Logger: logger, TrustedProxies: s.trustedProxies, Health: healthS})
	grpctransport.RegisterBillingServer(grpcS, set)
	adminH := observe.AdminHandler(reg, observe.Check{Name: "database", Check: d.PingContext}, observe.Check{Name: "kafka", Check: kafka.check})
	replies := outbox.NewReplies(d)
	m.servers = func(g *run.Group) {
		addHTTP(g, httpL, httpH, s.shutdownTimeout)
		addGRPC(g, grpcL, grpcS, healthS, s.shutdownTimeout)
		addHTTP(g, adminL, adminH, s.shutdownTimeout)
		kafka.addConsumer(g, "billing", []string{billing.TopicCommands}, func(p sarama.SyncProducer) *kafkatransport.Subscriber {
			return kafkatransport.NewCommandSubscriber(kafkatransport.BillingCommands(set), kafkatransport.CommandOptions{
				Producer: p, Replies: replies, Verifier: verifier, Metrics: kafka.metrics, Group: "billing", Logger: logger,
			})
		})
		kafka.addConsumer(g, kafkatransport.BillingPatientGroup, []string{patient.TopicEvents}, func(p sarama.SyncProducer) *kafkatransport.Subscriber {
			return kafkatransport.NewBillingPatientSubscriber(svc, p, kafka.metrics, logger)
		})
		startRelay()
	}
	return m, nil
}

// runBilling is `pms billing`.
func runBilling(ctx context.Context, args []string, _, stderr io.Writer) error {
	return runService[billingConfig](ctx, "billing", args, stderr, buildBilling)
}
