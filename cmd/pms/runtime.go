package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"

	"path/filepath"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/oklog/run"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/idempotency"
	"github.com/pms/pms/pkg/platform/observe"
	"github.com/pms/pms/pkg/platform/outbox"
	"github.com/pms/pms/pkg/platform/ratelimit"
	"github.com/pms/pms/pkg/platform/tlsconf"
	grpctransport "github.com/pms/pms/transport/grpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
)

// common holds the settings every service shares, as their flags parsed them.
type common struct {
	dataDir         string
	databaseURL     string
	databaseConns   int
	logFormat       string
	logLevel        string
	trustedProxies  []netip.Prefix
	rateLimit       float64
	rateBurst       int
	shutdownTimeout time.Duration
	jwtIssuer       string
	jwtAudience     string
	jwksURL         string
	jwksRefresh     time.Duration
	revocations     string
	revocationStale time.Duration
	retention       time.Duration
	// processedRetention is how long consumers keep applied event ids (outbox.PruneProcessed).
	processedRetention time.Duration
	insecure           bool
	pprof              bool
	tls                tlsconf.Files
	kafka              kafkaFlags
	checkpointEvery    int
	checkpointEach     time.Duration
	auditKeyDir        string
}

func (c *common) register(f *flags) {
	f.String(&c.jwtIssuer, "jwt-issuer", authz.DefaultIssuer, "the iss every access token must carry")
	f.String(&c.jwtAudience, "jwt-audience", authz.DefaultAudience, "the aud every access token must carry")
	f.String(&c.jwksURL, "auth-jwks-url", "http://127.0.0.1:4005/.well-known/jwks.json", "where services fetch the auth service's public keys (pms all uses its own auth service)")
	f.Duration(&c.jwksRefresh, "auth-jwks-refresh", authz.DefaultJWKSRefresh, "how often the public keys are fetched again: a key the auth service stops listing stops verifying within it")
	f.String(&c.revocations, "auth-revocations-addr", "127.0.0.1:9005", "the auth service's gRPC address, whose revocation stream every verifier follows (pms all follows its own auth service)")
	f.Duration(&c.revocationStale, "revocations-stale-after", authz.DefaultRevocationStaleAfter, "how long a verifier may lose the revocation stream before it refuses writes (reads go on)").positive()
	f.Duration(&c.retention, "idempotency-retention", idempotency.DefaultRetention, "how long stored command replies and idempotency records are kept (a repeat after that is a new request)").positive()
	f.Duration(&c.processedRetention, "processed-events-retention", outbox.DefaultProcessedRetention, "how long a consumer keeps the ids of the events it applied, counted back from its newest (a copy of an event older than that would apply again; at least a day)").atLeast(24 * time.Hour)
	f.String(&c.dataDir, "data-dir", "./data", "folder for SQLite files and keys")
	f.String(&c.databaseURL, "database-url", "", "database for every service: postgres://... or sqlite://path (default: one SQLite file per service under --data-dir)")
	f.Int(&c.databaseConns, "database-max-conns", db.DefaultMaxConns, "PostgreSQL connections each service's pool may hold, 1..1000 (the services of one platform hold up to their number times this; keep it under the server's max_connections)").within(1, 1000)
	f.String(&c.logFormat, "log-format", observe.DefaultLogFormat(), "log format: json or logfmt")
	f.String(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.Prefixes(&c.trustedProxies, "trusted-proxies", "127.0.0.0/8,::1/128", "comma-separated CIDRs whose X-Forwarded-For is believed")
	f.Float(&c.rateLimit, "rate-limit", 2000, "requests per second allowed per endpoint (0 disables)").atLeast(0)
	f.Int(&c.rateBurst, "rate-burst", 4000, "burst allowed per endpoint").atLeast(0)
	f.Duration(&c.shutdownTimeout, "shutdown-timeout", 20*time.Second, "how long SIGTERM waits for in-flight work").positive()
	f.Bool(&c.insecure, "insecure-plaintext", false, "allow listeners off loopback and a JWKS URL off loopback without TLS (logged, and counted in pms_insecure_plaintext_listeners)")
	f.String(&c.tls.Cert, "tls-cert", "", "PEM certificate every listener serves (with --tls-key; re-read when the file changes); empty: plain text")
	f.String(&c.tls.Key, "tls-key", "", "PEM private key of --tls-cert")
	f.String(&c.tls.CA, "tls-ca", "", "PEM CA the platform's certificates are signed by: clients verify servers with it, servers verify client certificates")
	f.Bool(&c.pprof, "pprof", false, "serve /debug/pprof/ on the admin ports (its cmdline shows every flag)")
	f.Int(&c.checkpointEvery, "audit-checkpoint-every", 1000, "entries after which a service signs its audit chain's head and publishes it on the audit topic (docs/audit.md)").within(1, 1<<30)
	f.String(&c.auditKeyDir, "audit-key-dir", "", "folder of the services' audit checkpoint key rings, audit-checkpoint-<service>.json (default --data-dir); the replicas of a service must share it, and pms audit verify and rotate-key read it")
	f.Duration(&c.checkpointEach, "audit-checkpoint-interval", 10*time.Second, "time after which a service whose audit chain grew signs its head and publishes it, whatever the count").positive()
	c.kafka.register(f)
}

// settings is common with what it implies (the logger, the rate limit, the TLS configs).
type settings struct {
	dataDir         string
	databaseURL     string
	databaseConns   int
	logger          log.Logger
	trustedProxies  []netip.Prefix
	limit           ratelimit.Config
	shutdownTimeout time.Duration
	jwtIssuer       string
	jwtAudience     string
	jwksURL         string
	jwksRefresh     time.Duration
	// insecure allows plain-text listeners and JWKS off loopback (--insecure-plaintext).
	insecure bool
	// pprof serves /debug/pprof/ on the admin ports.
	pprof bool
	// serverTLS secures every listener and clientTLS every connection to another service and
	// the JWKS fetch; both nil in plain text.
	serverTLS, clientTLS *tls.Config
	// tlsCA is --tls-ca, for a service of `pms all` given a certificate of its own.
	tlsCA string
	kafka kafkaSettings
	// keys, when set, is the in-process auth service's key ring (`pms all`): services then
	// verify with it directly instead of fetching the JWKS over HTTP.
	keys authz.KeySource
	// revocationsAddr is where the auth service's revocation stream is dialled from a
	// separate process; revocations, when set, is the in-process auth service's table
	// (`pms all`), which every verifier then shares.
	revocationsAddr  string
	revocationsStale time.Duration
	revocations      *authz.DenyTable
	// retention is how long stored command replies and idempotency records are kept.
	retention time.Duration
	// processedRetention is how long consumers keep the ids of the events they applied.
	processedRetention time.Duration
	// checkpointEvery and checkpointInterval pace the signed audit checkpoints.
	checkpointEvery    int64
	checkpointInterval time.Duration
	// auditKeyDir holds the checkpoint key rings (--audit-key-dir, else the data folder).
	auditKeyDir string
}

// checkpointKeyFile is service's audit checkpoint key ring.
func (s settings) checkpointKeyFile(service string) string {
	dir := s.auditKeyDir
	if dir == "" {
		dir = s.dataDir
	}
	return audit.CheckpointKeyFile(dir, service)
}

// verifier returns the token verifier services use: keys from the auth service's JWKS,
// cached, refetched at most every 5 s when an unknown kid appears; in `pms all`, the auth
// service's own key ring. Either way it obeys the revocation stream (denyTable).
func (s settings) verifier(ctx context.Context) *authz.Verifier {
	if s.keys != nil {
		return authz.NewVerifier(s.keys, s.jwtIssuer, s.jwtAudience).WithRevocations(s.denyTable(ctx))
	}
	client := &http.Client{Timeout: 5 * time.Second}
	if s.clientTLS != nil {
		client.Transport = &http.Transport{TLSClientConfig: s.clientTLS}
	}
	src := authz.NewJWKSSource(s.jwksURL, client, min(5*time.Second, s.jwksRefresh)).Refresh(s.jwksRefresh)
	return authz.NewVerifier(src, s.jwtIssuer, s.jwtAudience).WithRevocations(s.denyTable(ctx))
}

// denyTable is the revocation table a verifier of this process obeys: in `pms all` the
// auth service's own; otherwise one fed by a WatchRevocations stream to
// --auth-revocations-addr (with this process's client certificate), followed until ctx
// ends. A stream that cannot be had leaves the table stale: writes are refused.
func (s settings) denyTable(ctx context.Context) *authz.DenyTable {
	if s.revocations != nil {
		return s.revocations
	}
	table := authz.NewDenyTable(s.revocationsStale)
	conn, err := grpctransport.Dial(s.revocationsAddr, s.clientTLS)
	if err != nil {
		_ = level.Error(s.logger).Log("msg", "cannot dial the revocation stream; writes will be refused", "addr", s.revocationsAddr, "err", err)
		table.Follow()
		return table
	}
	go func() {
		defer conn.Close()
		grpctransport.FollowRevocations(ctx, conn, table, s.logger)
	}()
	return table
}

// parse turns the parsed and range-checked flags into settings: the logger, the rate
// limit, the TLS configurations (reading their files) and the JWKS URL's check.
func (c *common) parse(stderr io.Writer) (settings, error) {
	s := settings{dataDir: c.dataDir, databaseURL: c.databaseURL, databaseConns: c.databaseConns, trustedProxies: c.trustedProxies,
		limit: limit(c.rateLimit, c.rateBurst), jwtIssuer: c.jwtIssuer, jwtAudience: c.jwtAudience, jwksURL: c.jwksURL,
		jwksRefresh: c.jwksRefresh, revocationsAddr: c.revocations, revocationsStale: c.revocationStale, retention: c.retention, processedRetention: c.processedRetention, shutdownTimeout: c.shutdownTimeout, insecure: c.insecure, pprof: c.pprof,
		tlsCA: c.tls.CA, kafka: c.kafka.settings(), checkpointEvery: int64(c.checkpointEvery), checkpointInterval: c.checkpointEach,
		auditKeyDir: c.auditKeyDir}
	s.logger = observe.NewLogger(stderr, c.logFormat, c.logLevel)
	if c.tls.Enabled() {
		var err error
		if s.serverTLS, err = tlsconf.Server(c.tls); err != nil {
			return s, fmt.Errorf("--tls-cert/--tls-key/--tls-ca: %w", err)
		}
	}
	if c.tls.Enabled() || c.tls.CA != "" {
		var err error
		if s.clientTLS, err = tlsconf.Client(c.tls); err != nil {
			return s, fmt.Errorf("--tls-cert/--tls-key/--tls-ca: %w", err)
		}
	}
	if s.jwksRefresh <= 0 {
		s.jwksRefresh = authz.DefaultJWKSRefresh
	}
	if err := checkJWKSURL(c.jwksURL, c.insecure); err != nil {
		return s, err
	}
	if c.kafka.tls {
		if s.clientTLS == nil {
			return s, errors.New("--kafka-tls needs --tls-ca (and --tls-cert/--tls-key for the embedded broker)")
		}
		s.kafka.clientTLS, s.kafka.serverTLS, s.kafka.caFile = s.clientTLS, s.serverTLS, c.tls.CA
	}
	return s, nil
}

// withOwnTLS is s for a service of `pms all` with a certificate of its own (own.Cert and
// own.Key, --<service>-tls-cert/-key): its listeners serve it and its clients (gRPC, JWKS,
// Kafka with --kafka-tls) present it, so the service's identity on the wire (its
// spiffe://pms/<name>) is its own rather than `all`'s. The CA stays --tls-ca. Without own.Cert
// s is returned as it is.
func (s settings) withOwnTLS(service string, own tlsconf.Files) (settings, error) {
	if own.Cert == "" && own.Key == "" {
		return s, nil
	}
	if own.Cert == "" || own.Key == "" || s.tlsCA == "" {
		return s, fmt.Errorf("--%s-tls-cert and --%s-tls-key go together, with --tls-ca", service, service)
	}
	own.CA = s.tlsCA
	server, err := tlsconf.Server(own)
	if err != nil {
		return s, fmt.Errorf("--%s-tls-cert/--%s-tls-key: %w", service, service, err)
	}
	client, err := tlsconf.Client(own)
	if err != nil {
		return s, fmt.Errorf("--%s-tls-cert/--%s-tls-key: %w", service, service, err)
	}
	s.serverTLS, s.clientTLS = server, client
	if s.kafka.clientTLS != nil {
		s.kafka.clientTLS = client
	}
	return s, nil
}

// limit is a rate limit as its flags give it: a rate of 0 disables it (ratelimit.Config
// reads 0 as "the default", so disabled is -1).
func limit(rate float64, burst int) ratelimit.Config {
	if rate == 0 {
		rate = -1
	}
	return ratelimit.Config{Rate: rate, Burst: burst}
}

// dbURL picks a service's database: its own PMS_<SERVICE>_DATABASE_URL flag, else the shared
// one, else a SQLite file of its own under the data folder. A shared sqlite:// URL still
// gives each service a file of its own beside it (pms.db → pms-auth.db, pms-patient.db):
// SQLite has no schemas, and services sharing one file would share goose's version table.
func (s settings) dbURL(own, service string) string {
	if own != "" {
		return own
	}
	if path, ok := strings.CutPrefix(s.databaseURL, "sqlite://"); ok && path != ":memory:" {
		ext := filepath.Ext(path)
		return "sqlite://" + strings.TrimSuffix(path, ext) + "-" + service + ext
	}
	if s.databaseURL != "" {
		return s.databaseURL
	}
	return "sqlite://" + filepath.Join(s.dataDir, service+".db")
}

// listenHook learns every address a server bound; tests put one in the context given to
// dispatch, so several processes can run in one test binary, each reporting to its own test.
type listenHook func(service, kind, addr string)

type listenHookKey struct{}

// withListenHook returns ctx carrying hook.
func withListenHook(ctx context.Context, hook listenHook) context.Context {
	return context.WithValue(ctx, listenHookKey{}, hook)
}

// listen binds addr and reports it.
func listen(ctx context.Context, logger log.Logger, service, kind, addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s %s listener on %s: %w", service, kind, addr, err)
	}
	_ = level.Info(logger).Log("msg", "listening", "service", service, "kind", kind, "addr", l.Addr().String())
	if hook, ok := ctx.Value(listenHookKey{}).(listenHook); ok {
		hook(service, kind, l.Addr().String())
	}
	return l, nil
}

// addHTTP runs h on l in g; interrupting it shuts down gracefully, letting in-flight
// requests finish within timeout. Connections close lingering (linger.go), so an answer to a
// request whose body was not read reaches the client whole.
func addHTTP(g *run.Group, l net.Listener, h http.Handler, timeout time.Duration, tlsCfg *tls.Config) {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	g.Add(func() error {
		var ln net.Listener = lingerListener{l}
		if tlsCfg != nil {
			ln = tls.NewListener(ln, tlsCfg)
		}
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}, func(error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
}

// addGRPC runs srv on l in g; interrupting it stops gracefully, then hard after timeout.
// The health service reports NOT_SERVING first, so balancers stop sending new calls.
func addGRPC(g *run.Group, l net.Listener, srv *grpc.Server, hs *health.Server, timeout time.Duration) {
	g.Add(func() error { return srv.Serve(l) }, func(error) {
		hs.Shutdown()
		done := make(chan struct{})
		go func() { srv.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(timeout):
			srv.Stop()
		}
	})
}

// addContext ends the group when ctx is done (SIGINT/SIGTERM): a normal, clean exit.
func addContext(g *run.Group, ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	g.Add(func() error { <-ctx.Done(); return nil }, func(error) { cancel() })
}

// closer is something to release after the servers stopped, in reverse order of opening.
type closers []func(context.Context) error

func (c *closers) add(f func(context.Context) error) { *c = append(*c, f) }

func (c closers) closeAll(timeout time.Duration, logger log.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for i := len(c) - 1; i >= 0; i-- {
		if err := c[i](ctx); err != nil {
			_ = level.Warn(logger).Log("msg", "shutdown step failed", "err", err)
		}
	}
}

// serviceConfig is a service's own settings: a pointer to them can register its flags.
type serviceConfig[C any] interface {
	*C
	register(f *flags, prefix string)
}

// runService is `pms <name>`: parse the common and the service's flags, build the one
// module, and serve it until ctx ends.
func runService[C any, PC serviceConfig[C]](ctx context.Context, name string, args []string, stderr io.Writer,
	build func(context.Context, settings, C) (*module, error)) error {
	var c C
	s, err := parseCommand(name, args, stderr, func(f *flags) { PC(&c).register(f, "") })
	if err != nil {
		return err
	}
	return serve(ctx, s, func(ctx context.Context) ([]*module, error) {
		m, err := build(ctx, s, c)
		if err != nil {
			return nil, err
		}
		return []*module{m}, nil
	})
}

// parseCommand parses the flags of command name: the common ones and those register defines
// (nil: none), environment twins included, and returns the common settings.
func parseCommand(name string, args []string, stderr io.Writer, register func(f *flags)) (settings, error) {
	f := newFlags(name, stderr)
	var cm common
	cm.register(f)
	if register != nil {
		register(f)
	}
	if err := f.parse(args); err != nil {
		return settings{}, err
	}
	return cm.parse(stderr)
}

// checkJWKSURL refuses a JWKS fetched in plain text from another machine: whoever can answer
// that request could mint admin tokens. http:// stays allowed on loopback, and anywhere with
// --insecure-plaintext.
func checkJWKSURL(raw string, insecure bool) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--auth-jwks-url: want an http(s) URL, got %q", raw)
	}
	if u.Scheme == "http" && !insecure && !loopbackHost(u.Hostname()) {
		return fmt.Errorf("--auth-jwks-url %s: plain http off loopback; use https:// (or --insecure-plaintext)", raw)
	}
	return nil
}

// loopbackHost reports whether host (a name or an IP, no port) is this machine only.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// checkListenAddr refuses a plain-text listener off loopback (an empty or unspecified host
// means every interface) unless insecure; it reports whether addr is off loopback.
func checkListenAddr(service, kind, addr string, insecure bool) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("%s %s address %q: %w", service, kind, addr, err)
	}
	if loopbackHost(host) {
		return false, nil
	}
	if !insecure {
		return true, fmt.Errorf("%s %s listener on %s is off loopback without TLS; bind 127.0.0.1, or pass --insecure-plaintext", service, kind, addr)
	}
	return true, nil
}
