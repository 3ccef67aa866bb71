package main

import (
	"context"
	"fmt"
	"io"

	"github.com/IBM/sarama"
	"github.com/go-kit/log/level"
	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/analytics"
	"github.com/pms/pms/pkg/platform/outbox"
	grpctransport "github.com/pms/pms/transport/grpc"
	httptransport "github.com/pms/pms/transport/http"
	kafkatransport "github.com/pms/pms/transport/kafka"
	"google.golang.org/grpc"
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
	f.String(&c.httpAddr, prefix+"http-addr", "127.0.0.1:4002", "analytics HTTP API address", "PMS_ANALYTICS_HTTP_ADDR")
	f.String(&c.grpcAddr, prefix+"grpc-addr", "127.0.0.1:9002", "analytics gRPC address (its twin is also the address pms gateway dials)", "PMS_ANALYTICS_GRPC_ADDR")
	f.String(&c.adminAddr, prefix+"admin-addr", "127.0.0.1:4102", "analytics admin address (metrics, health; pprof with --pprof)", "PMS_ANALYTICS_ADMIN_ADDR")
	f.String(&c.databaseURL, "analytics-database-url", "", "analytics database URL (overrides --database-url)", "PMS_ANALYTICS_DATABASE_URL")
	f.Bool(&c.rebuild, prefix+"rebuild", false, "empty the analytics figures and replay the topics from the earliest offset", "PMS_ANALYTICS_REBUILD")
}

// buildAnalytics wires the analytics service (unit): the figures' generation (a new one, so
// a replay from the earliest offset, on --rebuild or an empty database), its audit writer
// (no outbox: analytics publishes nothing), the service, the endpoint set, its HTTP and gRPC
// servers and the consumer of the event topics.
func buildAnalytics(ctx context.Context, s settings, c analyticsConfig) (*module, error) {
	u, err := newUnit(ctx, s, unitSpec{name: "analytics", databaseURL: c.databaseURL, migrations: migrations.Analytics(),
		topics: kafkatransport.AnalyticsTopics(s.kafka.partitions, s.kafka.replication)})
	if err != nil {
		return nil, err
	}
	marks := kafkatransport.NewWatermarks(u.kafka.brokers, u.kafka.config("pms-analytics-lag"))
	u.m.closers.add(func(context.Context) error { return marks.Close() })
	writer, err := u.audit(analytics.AuditTable, nil)
	if err != nil {
		return u.fail(err)
	}
	var svc *analytics.Analytics
	metrics := analytics.NewMetrics(u.reg, func(ctx context.Context) (analytics.Summary, error) { return svc.MetricsSource(ctx) })
	store := analytics.NewStore(u.db)
	svc = analytics.NewService(store, analytics.Options{Watermarks: marks.Get, Folded: metrics.Folded, Audit: writer, Logger: u.logger})
	gen, fresh, err := svc.Generation(ctx)
	if err == nil && c.rebuild {
		gen, err = svc.Reset(ctx)
		fresh = true
	}
	if err != nil {
		return u.fail(fmt.Errorf("analytics: %w", err))
	}
	group := kafkatransport.AnalyticsGroupPrefix + gen
	if fresh {
		_ = level.Info(u.logger).Log("msg", "replaying the event topics from the earliest offset", "group", group, "rebuild", c.rebuild)
	}
	set := analytics.NewEndpoints(svc, u.endpoints(s.verifier(ctx), analytics.Ops, analytics.DeniedAuditor(writer)))
	if err := u.fenceRecovery(ctx, analytics.Topics); err != nil {
		return u.fail(err)
	}
	u.retainProcessed(ctx, analytics.Consumer)
	u.consume(group, analytics.Topics, func(p sarama.SyncProducer) *kafkatransport.Subscriber {
		return kafkatransport.NewAnalyticsSubscriber(svc, kafkatransport.AnalyticsOptions{
			Producer: p, Metrics: u.kafka.metrics, Group: group, Logger: u.logger,
			// Resume from what the database has folded, not from the group's committed
			// offsets, which run ahead of a restored database (docs/operations.md).
			Resume: func(ctx context.Context) (map[string]map[int32]int64, error) {
				next, err := store.NextOffsets(ctx)
				out := map[string]map[int32]int64{}
				for p, off := range next {
					if out[p.Topic] == nil {
						out[p.Topic] = map[int32]int64{}
					}
					out[p.Topic][p.Partition] = off
				}
				return out, err
			},
			Fences: func(ctx context.Context) ([]outbox.Fence, error) { return outbox.Fences(ctx, u.db) },
			Skipped: func(ctx context.Context, p outbox.Position) error {
				return store.SkipTo(ctx, analytics.Partition{Topic: p.Topic, Partition: p.Partition}, p.Offset+1)
			},
		})
	})
	u.m.endpoints = set
	return u.serve(ctx, listenAddrs{c.httpAddr, c.grpcAddr, c.adminAddr},
		httptransport.NewAnalyticsHandler(set, httptransport.Options{Logger: u.logger, TrustedProxies: s.trustedProxies}),
		func(g *grpc.Server) { grpctransport.RegisterAnalyticsServer(g, set) })
}

// runAnalytics is `pms analytics`.
func runAnalytics(ctx context.Context, args []string, _, stderr io.Writer) error {
	return runService[analyticsConfig](ctx, "analytics", args, stderr, buildAnalytics)
}
