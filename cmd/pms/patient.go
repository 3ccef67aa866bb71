package main

import (
	"context"
	"io"

	"github.com/IBM/sarama"
	"github.com/go-kit/log"
	"github.com/oklog/run"
	"github.com/pms/pms/migrations"
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

// patientConfig is the patient service's own settings.
type patientConfig struct {
	httpAddr, grpcAddr, adminAddr, databaseURL string
	// billingAddr is billing's gRPC address: a flag of `pms patient`, the bound address of
	// billing's listener in `pms all`; empty runs without billing (its routes answer 503).
	billingAddr string
}

// register defines the patient flags; prefix is "" for `pms patient` and "patient-" for
// `pms all`. The environment twins are the same either way.
func (c *patientConfig) register(f *flags, prefix string) {
	f.String(&c.httpAddr, prefix+"http-addr", ":4000", "patient HTTP API address", "PMS_PATIENT_HTTP_ADDR")
	f.String(&c.grpcAddr, prefix+"grpc-addr", ":9000", "patient gRPC address", "PMS_PATIENT_GRPC_ADDR")
	f.String(&c.adminAddr, prefix+"admin-addr", ":4100", "patient admin address (metrics, health, pprof)", "PMS_PATIENT_ADMIN_ADDR")
	f.String(&c.databaseURL, "patient-database-url", "", "patient database URL (overrides --database-url)", "PMS_PATIENT_DATABASE_URL")
	if prefix == "" {
		f.String(&c.billingAddr, "billing-addr", "127.0.0.1:9001", "billing gRPC address the patient service calls (empty: no billing)", "PMS_BILLING_GRPC_ADDR")
	}
}

// module is one service's servers and what to release when they have stopped.
type module struct {
	name    string
	servers func(g *run.Group)
	closers closers
	// grpcAddr is the address its gRPC listener bound, for modules built after it to dial.
	grpcAddr string
}

// openPatientDB opens and migrates the patient database.
func openPatientDB(ctx context.Context, s settings, c patientConfig) (*db.DB, error) {
	return openServiceDB(ctx, s, "patient", c.databaseURL, migrations.Patient())
}

// buildPatient wires the patient service: database, audit writer, service and its
// middleware, the endpoint set, and the HTTP, gRPC and admin servers on bound listeners.
func buildPatient(ctx context.Context, s settings, c patientConfig) (*module, error) {
	logger := log.With(s.logger, "service", "patient")
	m := &module{name: "patient"}
	d, err := openPatientDB(ctx, s, c)
	if err != nil {
		return nil, err
	}
	m.closers.add(func(context.Context) error { return d.Close() })
	reg := observe.NewRegistry()
	store := patient.NewStore(d)
	// Closers run in reverse: the audit writer flushes (its entries are outbox rows too),
	// then the relay publishes what is pending, then the database closes.
	kafka := newServiceKafka("patient", s, logger, reg, kafkatransport.PatientTopics(s.kafka.partitions, s.kafka.replication))
	startRelay := kafka.addRelay(m, store.Outbox(), reg)
	writer := audit.NewWriter(d, audit.Options{Table: patient.AuditTable, Service: "patient", Registerer: reg, Logger: logger,
		AfterBatch: outbox.AuditHook(store.Outbox(), "patient"), AfterCommit: store.Outbox().Wake})
	m.closers.add(writer.Close)

	metrics := patient.NewMetrics(reg)
	var bill patient.Billing
	if c.billingAddr != "" {
		b, closeConn, err := dialBilling(c.billingAddr, logger, reg)
		if err != nil {
			m.closers.closeAll(s.shutdownTimeout, logger)
			return nil, err
		}
		m.closers.add(closeConn)
		bill = metrics.Billing(b)
	}
	var svc patient.Service = patient.NewService(store, writer, patient.Options{Logger: logger, Billing: bill})
	svc = metrics.Instrumenting()(svc)
	verifier := s.verifier()
	set := patient.NewEndpoints(svc, patient.EndpointOptions{
		Guard:  authz.NewGuard(verifier, patient.Roles, patient.DeniedAuditor(writer)),
		Logger: logger, Metrics: observe.NewRequestMetrics(reg, "patient"), DefaultLimit: s.limit,
	})

	httpL, err := listen(ctx, logger, "patient", "http", c.httpAddr)
	if err != nil {
		m.closers.closeAll(s.shutdownTimeout, logger)
		return nil, err
	}
	grpcL, err := listen(ctx, logger, "patient", "grpc", c.grpcAddr)
	if err != nil {
		_ = httpL.Close()
		m.closers.closeAll(s.shutdownTimeout, logger)
		return nil, err
	}
	adminL, err := listen(ctx, logger, "patient", "admin", c.adminAddr)
	if err != nil {
		_ = httpL.Close()
		_ = grpcL.Close()
		m.closers.closeAll(s.shutdownTimeout, logger)
		return nil, err
	}
	m.grpcAddr = grpcL.Addr().String()
	httpH := httptransport.NewPatientHandler(set, httptransport.Options{Logger: logger, TrustedProxies: s.trustedProxies})
	healthS := health.NewServer()
	grpcS := grpctransport.NewServer(grpctransport.ServerOptions{Logger: logger, TrustedProxies: s.trustedProxies, Health: healthS})
	grpctransport.RegisterPatientServer(grpcS, set)
	adminH := observe.AdminHandler(reg, observe.Check{Name: "database", Check: d.PingContext}, observe.Check{Name: "kafka", Check: kafka.check})
	replies := outbox.NewReplies(d)
	m.servers = func(g *run.Group) {
		addHTTP(g, httpL, httpH, s.shutdownTimeout)
		addGRPC(g, grpcL, grpcS, healthS, s.shutdownTimeout)
		addHTTP(g, adminL, adminH, s.shutdownTimeout)
		kafka.addConsumer(g, "patient", []string{patient.TopicCommands}, func(p sarama.SyncProducer) *kafkatransport.Subscriber {
			return kafkatransport.NewCommandSubscriber(kafkatransport.PatientCommands(set), kafkatransport.CommandOptions{
				Producer: p, Replies: replies, Verifier: verifier, Metrics: kafka.metrics, Group: "patient", Logger: logger,
			})
		})
		startRelay()
	}
	return m, nil
}

// runPatient is `pms patient`.
func runPatient(ctx context.Context, args []string, _, stderr io.Writer) error {
	return runService[patientConfig](ctx, "patient", args, stderr, buildPatient)
}
