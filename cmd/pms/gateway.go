package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/pms/pms/pkg/gateway"
	"github.com/pms/pms/pkg/platform/ratelimit"
)

// gatewayConfig is the gateway's own settings.
type gatewayConfig struct {
	httpAddr, adminAddr                string
	patientAddr, billingAddr, authAddr string
	analyticsAddr                      string
	clientRate, clientBurst, timeout   string
	corsOrigins, corsCredentials       string
}

// register defines the gateway flags; prefix is "" for `pms gateway` and "gateway-" for
// `pms all`, where the upstream addresses are the bound ones and have no flags.
func (c *gatewayConfig) register(f *flags, prefix string) {
	f.String(&c.httpAddr, prefix+"http-addr", ":4004", "gateway HTTP API address", "PMS_GATEWAY_HTTP_ADDR")
	f.String(&c.adminAddr, prefix+"admin-addr", ":4104", "gateway admin address (metrics, health, pprof)", "PMS_GATEWAY_ADMIN_ADDR")
	f.String(&c.clientRate, "gateway-client-rate", "100", "requests per second allowed per client (token subject, else address; 0 disables)", "PMS_GATEWAY_CLIENT_RATE")
	f.String(&c.clientBurst, "gateway-client-burst", "200", "burst allowed per client", "PMS_GATEWAY_CLIENT_BURST")
	f.String(&c.timeout, "gateway-timeout", "10s", "deadline of one call to an upstream, retries included", "PMS_GATEWAY_TIMEOUT")
	f.String(&c.corsOrigins, "gateway-cors-origins", "", "comma-separated origins allowed cross-origin calls (empty: CORS off)", "PMS_GATEWAY_CORS_ORIGINS")
	f.String(&c.corsCredentials, "gateway-cors-credentials", "false", "allow credentials on cross-origin calls (never with origin *)", "PMS_GATEWAY_CORS_CREDENTIALS")
	if prefix == "" {
		f.String(&c.patientAddr, "patient-addr", "127.0.0.1:9000", "patient gRPC address", "PMS_PATIENT_GRPC_ADDR")
		f.String(&c.billingAddr, "billing-addr", "127.0.0.1:9001", "billing gRPC address", "PMS_BILLING_GRPC_ADDR")
		f.String(&c.authAddr, "auth-addr", "127.0.0.1:9005", "auth gRPC address", "PMS_AUTH_GRPC_ADDR")
		f.String(&c.analyticsAddr, "analytics-addr", "127.0.0.1:9002", "analytics gRPC address", "PMS_ANALYTICS_GRPC_ADDR")
	}
}

// buildGateway wires the gateway: the upstream connections and middleware (pkg/gateway),
// the public HTTP server (no /metrics, pprof or reflection there) and the admin server.
func buildGateway(ctx context.Context, s settings, c gatewayConfig) (*module, error) {
	rate, err := strconv.ParseFloat(c.clientRate, 64)
	if err != nil || rate < 0 {
		return nil, fmt.Errorf("--gateway-client-rate: want a number ≥ 0, got %q", c.clientRate)
	}
	burst, err := strconv.Atoi(c.clientBurst)
	if err != nil || burst < 0 {
		return nil, fmt.Errorf("--gateway-client-burst: want an integer ≥ 0, got %q", c.clientBurst)
	}
	if rate == 0 {
		rate = -1
	}
	timeout, err := time.ParseDuration(c.timeout)
	if err != nil || timeout <= 0 {
		return nil, fmt.Errorf("--gateway-timeout: want a positive duration, got %q", c.timeout)
	}
	creds, err := strconv.ParseBool(c.corsCredentials)
	if err != nil {
		return nil, fmt.Errorf("--gateway-cors-credentials: %w", err)
	}
	var origins []string
	for _, o := range strings.Split(c.corsOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			origins = append(origins, o)
		}
	}
	u, err := newUnit(ctx, s, unitSpec{name: "gateway"})
	if err != nil {
		return nil, err
	}
	gw, err := gateway.New(gateway.Config{
		PatientAddr: c.patientAddr, BillingAddr: c.billingAddr, AuthAddr: c.authAddr, AnalyticsAddr: c.analyticsAddr,
		Verifier: s.verifier(), Logger: u.logger, Registerer: u.reg, TrustedProxies: s.trustedProxies,
		ClientLimit: ratelimit.Config{Rate: rate, Burst: burst}, Timeout: timeout,
		CORS: gateway.CORS{AllowedOrigins: origins, AllowCredentials: creds},
	})
	if err != nil {
		return nil, err
	}
	u.m.closers.add(func(context.Context) error { return gw.Close() })
	return u.serve(ctx, listenAddrs{http: c.httpAddr, admin: c.adminAddr}, gw, nil)
}

// runGateway is `pms gateway`.
func runGateway(ctx context.Context, args []string, _, stderr io.Writer) error {
	return runService[gatewayConfig](ctx, "gateway", args, stderr, buildGateway)
}
