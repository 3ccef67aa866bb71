package main

import (
	"context"
	"io"
	"time"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/gateway"
	"github.com/pms/pms/pkg/platform/admit"
	"github.com/pms/pms/pkg/platform/outbox"
	kafkatransport "github.com/pms/pms/transport/kafka"
)

// gatewayConfig is the gateway's own settings.
type gatewayConfig struct {
	httpAddr, adminAddr                string
	patientAddr, billingAddr, authAddr string
	analyticsAddr                      string
	clientRate                         float64
	clientBurst                        int
	timeout                            time.Duration
	maxInFlight                        int
	maxHTTPInFlight                    int
	queueWait                          time.Duration
	corsOrigins                        []string
	corsCredentials                    bool
	databaseURL                        string
	// inProcess (`pms all --gateway-in-process`) has the gateway wrap the services' endpoint
	// sets (local, filled in by `pms all`) instead of dialling them.
	inProcess bool
	local     *gateway.Local
}

// register defines the gateway flags; prefix is "" for `pms gateway` and "gateway-" for
// `pms all`, where the upstream addresses are the bound ones and have no flags.
func (c *gatewayConfig) register(f *flags, prefix string) {
	f.String(&c.httpAddr, prefix+"http-addr", "127.0.0.1:4004", "gateway HTTP API address", "PMS_GATEWAY_HTTP_ADDR")
	f.String(&c.adminAddr, prefix+"admin-addr", "127.0.0.1:4104", "gateway admin address (metrics, health; pprof with --pprof)", "PMS_GATEWAY_ADMIN_ADDR")
	f.Float(&c.clientRate, "gateway-client-rate", 100, "requests per second allowed per client (token subject, else address; 0 disables)", "PMS_GATEWAY_CLIENT_RATE").atLeast(0)
	f.Int(&c.clientBurst, "gateway-client-burst", 200, "burst allowed per client", "PMS_GATEWAY_CLIENT_BURST").atLeast(0)
	f.Duration(&c.timeout, "gateway-timeout", 10*time.Second, "deadline of one call to an upstream, retries included", "PMS_GATEWAY_TIMEOUT").positive()
	f.Int(&c.maxInFlight, "gateway-max-in-flight", admit.DefaultLimit, "calls to one upstream in flight at once; more wait in line, then are refused 503 with Retry-After (0 disables)", "PMS_GATEWAY_MAX_IN_FLIGHT").within(0, 100000)
	f.Int(&c.maxHTTPInFlight, "gateway-max-http-in-flight", gateway.DefaultMaxHTTPInFlight, "HTTP requests in flight in the whole gateway; one more is refused 503 with Retry-After on arrival, before its token is checked (0 disables)", "PMS_GATEWAY_MAX_HTTP_IN_FLIGHT").within(0, 1000000)
	f.Duration(&c.queueWait, "gateway-queue-wait", admit.DefaultMaxWait, "longest a call waits in line for one of --gateway-max-in-flight places before it is refused", "PMS_GATEWAY_QUEUE_WAIT").positive()
	f.List(&c.corsOrigins, "gateway-cors-origins", "", "comma-separated origins allowed cross-origin calls (empty: CORS off)", "PMS_GATEWAY_CORS_ORIGINS")
	f.Bool(&c.corsCredentials, "gateway-cors-credentials", false, "allow credentials on cross-origin calls (never with origin *)", "PMS_GATEWAY_CORS_CREDENTIALS")
	f.String(&c.databaseURL, "gateway-database-url", "", "gateway database URL, for its audit log of the calls it refuses (overrides --database-url)", "PMS_GATEWAY_DATABASE_URL")
	if prefix != "" {
		f.Bool(&c.inProcess, "gateway-in-process", false, "the gateway calls the services' endpoints in this process instead of over gRPC (no hop; every middleware of both sides still runs)", "PMS_GATEWAY_IN_PROCESS")
	}
	if prefix == "" {
		// The services' bind addresses' twins double as the gateway's dial targets (a listen
		// address such as ":9000" is dialled on this machine), so one .env serves both.
		f.String(&c.patientAddr, "patient-addr", "127.0.0.1:9000", "patient gRPC address to dial (its twin is also the patient service's bind address)", "PMS_PATIENT_GRPC_ADDR")
		f.String(&c.billingAddr, "billing-addr", "127.0.0.1:9001", "billing gRPC address to dial (its twin is also the billing service's bind address)", "PMS_BILLING_GRPC_ADDR")
		f.String(&c.authAddr, "auth-addr", "127.0.0.1:9005", "auth gRPC address to dial (its twin is also the auth service's bind address)", "PMS_AUTH_GRPC_ADDR")
		f.String(&c.analyticsAddr, "analytics-addr", "127.0.0.1:9002", "analytics gRPC address to dial (its twin is also the analytics service's bind address)", "PMS_ANALYTICS_GRPC_ADDR")
	}
}

// buildGateway wires the gateway: its database and audit log (the calls it refuses itself,
// published on the audit topic through its outbox like every service's entries), the
// upstream connections and middleware (pkg/gateway), the public HTTP server (no /metrics,
// pprof or reflection there) and the admin server.
func buildGateway(ctx context.Context, s settings, c gatewayConfig) (*module, error) {
	u, err := newUnit(ctx, s, unitSpec{name: "gateway", databaseURL: c.databaseURL, migrations: migrations.Gateway(),
		topics: kafkatransport.GatewayTopics(s.kafka.partitions, s.kafka.replication)})
	if err != nil {
		return nil, err
	}
	writer, err := u.audit(gateway.AuditTable, outbox.New(u.db, outbox.Options{}))
	if err != nil {
		return u.fail(err)
	}
	verifier := s.verifier(ctx)
	verifier.Revocations().RegisterMetrics(u.reg, u.name)
	gw, err := gateway.New(gateway.Config{
		PatientAddr: c.patientAddr, BillingAddr: c.billingAddr, AuthAddr: c.authAddr, AnalyticsAddr: c.analyticsAddr,
		Verifier: verifier, Logger: u.logger, Registerer: u.reg, TrustedProxies: s.trustedProxies,
		ClientLimit: limit(c.clientRate, c.clientBurst), Timeout: c.timeout, MaxInFlight: inFlight(c.maxInFlight), MaxHTTPInFlight: inFlight(c.maxHTTPInFlight), MaxQueueWait: c.queueWait,
		CORS: gateway.CORS{AllowedOrigins: c.corsOrigins, AllowCredentials: c.corsCredentials}, TLS: s.clientTLS,
		Audit: writer, AuditDB: u.db, AuditTopic: u.auditTopicCheck(), InProcess: c.local,
	})
	if err != nil {
		return u.fail(err)
	}
	u.m.closers.add(func(context.Context) error { return gw.Close() })
	return u.serve(ctx, listenAddrs{http: c.httpAddr, admin: c.adminAddr}, gw, nil)
}

// runGateway is `pms gateway`.
func runGateway(ctx context.Context, args []string, _, stderr io.Writer) error {
	return runService[gatewayConfig](ctx, "gateway", args, stderr, buildGateway)
}

// inFlight maps --gateway-max-in-flight to gateway.Config.MaxInFlight: 0 there turns
// admission control off.
func inFlight(n int) int {
	if n == 0 {
		return -1
	}
	return n
}
