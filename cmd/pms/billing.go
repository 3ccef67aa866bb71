package main

import (
	"context"
	"io"

	"github.com/IBM/sarama"
	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/idempotency"
	"github.com/pms/pms/pkg/platform/outbox"
	grpctransport "github.com/pms/pms/transport/grpc"
	httptransport "github.com/pms/pms/transport/http"
	kafkatransport "github.com/pms/pms/transport/kafka"
	"google.golang.org/grpc"
)

// billingConfig is the billing service's own settings.
type billingConfig struct {
	httpAddr, grpcAddr, adminAddr, databaseURL string
}

// register defines the billing flags; prefix is "" for `pms billing` and "billing-" for
// `pms all`. The environment twins are the same either way.
func (c *billingConfig) register(f *flags, prefix string) {
	f.String(&c.httpAddr, prefix+"http-addr", "127.0.0.1:4001", "billing HTTP API address", "PMS_BILLING_HTTP_ADDR")
	f.String(&c.grpcAddr, prefix+"grpc-addr", "127.0.0.1:9001", "billing gRPC address (its twin is also the address pms patient and pms gateway dial)", "PMS_BILLING_GRPC_ADDR")
	f.String(&c.adminAddr, prefix+"admin-addr", "127.0.0.1:4101", "billing admin address (metrics, health; pprof with --pprof)", "PMS_BILLING_ADMIN_ADDR")
	f.String(&c.databaseURL, "billing-database-url", "", "billing database URL (overrides --database-url)", "PMS_BILLING_DATABASE_URL")
}

// buildBilling wires the billing service (unit): its store, audit writer and outbox, the
// service and its middleware, the endpoint set, its HTTP and gRPC servers, the
// billing.commands consumer and the consumer of the patient topic that opens the account of
// every new patient and moves the invoices of merged ones.
func buildBilling(ctx context.Context, s settings, c billingConfig) (*module, error) {
	u, err := newUnit(ctx, s, unitSpec{name: "billing", databaseURL: c.databaseURL, migrations: migrations.Billing(),
		topics: kafkatransport.BillingTopics(s.kafka.partitions, s.kafka.replication)})
	if err != nil {
		return nil, err
	}
	store := billing.NewStore(u.db)
	writer, err := u.audit(billing.AuditTable, store.Outbox())
	if err != nil {
		return u.fail(err)
	}
	var svc billing.Service = billing.NewService(store, writer, billing.Options{Logger: u.logger, AuditTopic: u.auditTopicCheck()})
	svc = billing.NewMetrics(u.reg).Instrumenting()(svc)
	verifier := s.verifier(ctx)
	set := billing.NewEndpoints(svc, u.endpoints(verifier, billing.Ops, billing.DeniedAuditor(writer)))
	u.commands(billing.TopicCommands, kafkatransport.BillingCommands(set), verifier)
	u.retain(ctx, idempotency.RepliesTable, billing.IdempotencyTable)
	u.retainProcessed(ctx, billing.ConsumerPatientEvents)
	if err := u.fenceRecovery(ctx, []string{patient.TopicEvents}); err != nil {
		return u.fail(err)
	}
	u.consume(kafkatransport.BillingPatientGroup, []string{patient.TopicEvents}, func(p sarama.SyncProducer) *kafkatransport.Subscriber {
		// Resume from the offsets billing's database has applied (outbox.MarkApplied keeps
		// them in the transaction that opens the account), not from the group's committed
		// offsets, which run ahead of a restored database (docs/operations.md).
		return kafkatransport.NewBillingPatientSubscriber(svc, store, p, u.kafka.metrics, u.logger,
			kafkatransport.SubscriberResume(func(ctx context.Context) (map[string]map[int32]int64, error) {
				return outbox.ConsumerOffsets(ctx, u.db, billing.ConsumerPatientEvents)
			}),
			// and skips the patient events a restore fenced: registrations it took away.
			kafkatransport.SubscriberFences(func(ctx context.Context) ([]outbox.Fence, error) { return outbox.Fences(ctx, u.db) }),
			kafkatransport.SubscriberSkipped(func(ctx context.Context, p outbox.Position) error {
				return outbox.SkipOffset(ctx, u.db, billing.ConsumerPatientEvents, p)
			}),
			// and moves a merged patient's invoices (PATIENT_MERGED, PATIENT_UNMERGED).
			kafkatransport.SubscriberWrap(kafkatransport.BillingMerges(store)))
	})
	u.m.endpoints = set
	return u.serve(ctx, listenAddrs{c.httpAddr, c.grpcAddr, c.adminAddr},
		httptransport.NewBillingHandler(set, httptransport.Options{Logger: u.logger, TrustedProxies: s.trustedProxies}),
		func(g *grpc.Server) { grpctransport.RegisterBillingServer(g, set) })
}

// runBilling is `pms billing`.
func runBilling(ctx context.Context, args []string, _, stderr io.Writer) error {
	return runService[billingConfig](ctx, "billing", args, stderr, buildBilling)
}
