package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/IBM/sarama"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/oklog/run"
	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/analytics"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/observe"
	grpctransport "github.com/pms/pms/transport/grpc"
	httptransport "github.com/pms/pms/transport/http"
	kafkatransport "github.com/pms/pms/transport/kafka"
	"google.golang.org/grpc/health"
)

// The analytics command registers itself here rather than in main.go's table, whose
// alignment a longer name would rewrite line by line (a merge conflict with every branch).
func init() {
	commands["analytics"] = command{"run the analytics service (--rebuild: replay the topics from the earliest offset)", runAnalytics}
}

// analyticsConfig is the analytics service's own settings.
type analyticsConfig struct {
	httpAddr, grpcAddr, adminAddr, databaseURL string
	rebuild                                    bool
}

// register defines the analytics flags; prefix is "" for `pms analytics` and "analytics-"
// for `pms all`. The environment twins are the same either way.
func (c *analyticsConfig) register(f *flags, prefix string) {
	f.String(&c.httpAddr, prefix+"http-addr", ":4002", "analytics HTTP API address", "PMS_ANALYTICS_HTTP_ADDR")
	f.String(&c.grpcAddr, prefix+"grpc-addr", ":9002", "analytics gRPC address", "PMS_ANALYTICS_GRPC_ADDR")
	f.String(&c.adminAddr, prefix+"admin-addr", ":4102", "analytics admin address (metrics, health, pprof)", "PMS_ANALYTICS_ADMIN_ADDR")
	f.String(&c.databaseURL, "analytics-database-url", "", "analytics database URL (overrides --database-url)", "PMS_ANALYTICS_DATABASE_URL")
	def, _ := strconv.ParseBool(envDefault("false", "PMS_ANALYTICS_REBUILD"))
	f.BoolVar(&c.rebuild, prefix+"rebuild", def, "empty the analytics figures and replay the topics from the earliest offset (env PMS_ANALYTICS_REBUILD)")
}

// openAnalyticsDB opens and migrates the analytics database (schema "analytics" on PostgreSQL).
func openAnalyticsDB(ctx context.Context, s settings, c analyticsConfig) (*db.DB, error) {
	return openServiceDB(ctx, s, "analytics", c.databaseURL, migrations.Analytics())
}

// buildAnalytics wires the analytics service: database, the figures' generation (a new one,
// so a replay from the earliest offset, on --rebuild or an empty database), service, the
// endpoint set, HTTP, gRPC and admin servers, and the consumer of the event topics.
func buildAnalytics(ctx context.Context, s settings, c analyticsConfig) (*module, error) {
	logger := log.With(s.logger, "service", "analytics")
	m := &module{name: "analytics"}
	d, err := openAnalyticsDB(ctx, s, c)
	if err != nil {
		return nil, err
	}
	m.closers.add(func(context.Context) error { return d.Close() })
	reg := observe.NewRegistry()
	kafka := newServiceKafka("analytics", s, logger, reg, kafkatransport.AnalyticsTopics(s.kafka.partitions, s.kafka.replication))
	marks := kafkatransport.NewWatermarks(kafka.brokers, kafkatransport.NewConfig("pms-analytics-lag"))
	m.closers.add(func(context.Context) error { return marks.Close() })

	writer := audit.NewWriter(d, audit.Options{Table: analytics.AuditTable, Service: "analytics", Registerer: reg, Logger: logger})
	m.closers.add(writer.Close)

	var svc *analytics.Analytics
	metrics := analytics.NewMetrics(reg, func(ctx context.Context) (analytics.Summary, error) { return svc.MetricsSource(ctx) })
	svc = analytics.NewService(analytics.NewStore(d), analytics.Options{Watermarks: marks.Get, Folded: metrics.Folded, Audit: writer, Logger: logger})
	gen, fresh, err := svc.Generation(ctx)
	if err == nil && c.rebuild {
		gen, err = svc.Reset(ctx)
		fresh = true
	}
	if err != nil {
		m.closers.closeAll(s.shutdownTimeout, logger)
		return nil, fmt.Errorf("analytics: %w", err)
	}
	group := "analytics-" + gen
	if fresh {
		_ = level.Info(logger).Log("msg", "replaying the event topics from the earliest offset", "group", group, "rebuild", c.rebuild)
	}
	set := analytics.NewEndpoints(svc, analytics.EndpointOptions{
		Guard:  authz.NewGuard(s.verifier(), analytics.Roles, analytics.DeniedAuditor(writer)),
		Logger: logger, Metrics: observe.NewRequestMetrics(reg, "analytics"), DefaultLimit: s.limit,
	})

	ls, err := listeners(ctx, logger, "analytics", c.httpAddr, c.grpcAddr, c.adminAddr)
	if err != nil {
		m.closers.closeAll(s.shutdownTimeout, logger)
		return nil, err
	}
	httpL, grpcL, adminL := ls[0], ls[1], ls[2]
	m.grpcAddr = grpcL.Addr().String()
	httpH := httptransport.NewAnalyticsHandler(set, httptransport.Options{Logger: logger, TrustedProxies: s.trustedProxies})
	healthS := health.NewServer()
	grpcS := grpctransport.NewServer(grpctransport.ServerOptions{Logger: logger, TrustedProxies: s.trustedProxies, Health: healthS})
	grpctransport.RegisterAnalyticsServer(grpcS, set)
	adminH := observe.AdminHandler(reg, observe.Check{Name: "database", Check: d.PingContext}, observe.Check{Name: "kafka", Check: kafka.check})
	m.servers = func(g *run.Group) {
		addHTTP(g, httpL, httpH, s.shutdownTimeout)
		addGRPC(g, grpcL, grpcS, healthS, s.shutdownTimeout)
		addHTTP(g, adminL, adminH, s.shutdownTimeout)
		kafka.addConsumer(g, group, analytics.Topics, func(p sarama.SyncProducer) *kafkatransport.Subscriber {
			return kafkatransport.NewAnalyticsSubscriber(svc, kafkatransport.AnalyticsOptions{
				Producer: p, Metrics: kafka.metrics, Group: group, Logger: logger,
			})
		})
	}
	return m, nil
}

// runAnalytics is `pms analytics`.
func runAnalytics(ctx context.Context, args []string, _, stderr io.Writer) error {
	return runService[analyticsConfig](ctx, "analytics", args, stderr, buildAnalytics)
}
