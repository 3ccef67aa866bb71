// Package gateway is the API gateway (API.md, "Gateway routing"): for each upstream service
// one gRPC connection and its go-kit client endpoint set, every endpoint wrapped in the
// gateway's middleware (metrics, logging, JWT verification, per-client rate limit, timeout,
// bounded retry for reads, circuit breaker), served through the services' own HTTP handlers
// under the contract's prefixes. The gateway's REST API is therefore the services' API, and
// headers holding paths carry the path the client used.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/go-kit/kit/endpoint"
	"github.com/go-kit/log"
	"github.com/pms/pms/pkg/analytics"
	"github.com/pms/pms/pkg/auth"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/gateway/console"
	"github.com/pms/pms/pkg/gateway/openapi"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/admit"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/breaker"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
	"github.com/pms/pms/pkg/platform/op"
	"github.com/pms/pms/pkg/platform/ratelimit"
	"github.com/pms/pms/pkg/platform/retry"
	"github.com/pms/pms/pkg/platform/typed"
	grpctransport "github.com/pms/pms/transport/grpc"
	httptransport "github.com/pms/pms/transport/http"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
)

// Defaults of Config.
const (
	DefaultTimeout      = 10 * time.Second
	DefaultReadAttempts = 3
	DefaultOpenFor      = 5 * time.Second
	DefaultMaxClients   = 100000
)

// DefaultClientLimit is the per-client rate limit: well above what a person at a screen
// sends, well below what a runaway script does.
var DefaultClientLimit = ratelimit.Config{Rate: 100, Burst: 200}

// Config configures a Gateway.
type Config struct {
	// PatientAddr, BillingAddr, AuthAddr and AnalyticsAddr are the upstreams' gRPC addresses.
	PatientAddr, BillingAddr, AuthAddr, AnalyticsAddr string
	// Verifier checks tokens (keys from the auth service's JWKS). Required.
	Verifier *authz.Verifier
	Logger   log.Logger
	// Registerer receives the gateway's metrics; nil means none.
	Registerer prometheus.Registerer
	// TrustedProxies are the peers whose X-Forwarded-For is believed (nil: loopback).
	TrustedProxies []netip.Prefix
	// ClientLimit is the token bucket of each client (token subject, else address); a zero
	// Rate means DefaultClientLimit, a negative one disables it.
	ClientLimit ratelimit.Config
	// MaxClients bounds the limiter's table of clients (default DefaultMaxClients).
	MaxClients int
	// Timeout is the deadline of one call to an upstream, retries included.
	Timeout time.Duration
	// ReadAttempts is the most attempts of a read (the first included); writes get one.
	ReadAttempts int
	// MaxInFlight is how many calls to one upstream may be in flight at once; more wait in
	// line for at most MaxQueueWait and are then refused 503 with Retry-After, without
	// reaching the upstream or its breaker (pkg/platform/admit). 0 means admit.DefaultLimit
	// and admit.DefaultMaxWait; a negative MaxInFlight turns admission control off.
	MaxInFlight  int
	MaxQueueWait time.Duration
	// MaxHTTPInFlight bounds the HTTP requests in flight in the whole gateway; one more is
	// refused 503 with Retry-After on arrival, before its token is checked (front.go). 0
	// means DefaultMaxHTTPInFlight; a negative value turns it off.
	MaxHTTPInFlight int
	// BreakerFailures (default 5) consecutive failures open an upstream's breaker for
	// BreakerOpenFor (default DefaultOpenFor).
	BreakerFailures uint32
	BreakerOpenFor  time.Duration
	// CORS is off when AllowedOrigins is empty.
	CORS CORS
	// TLS, when set, secures the connections to the upstreams (grpctransport.Dial).
	TLS *tls.Config
	// InProcess, when set (`pms all --gateway-in-process`), holds the services' own endpoint
	// sets: the gateway wraps them, the go-kit way, instead of dialling the services, so a
	// call costs no gRPC hop. The upstream addresses are then not used. Every call still
	// goes through the gateway's middleware and then the service's own (its token check
	// again, its roles, audit and limits); the gateway's identity travels explicitly
	// (authz.WithPeerService "gateway"), as its client certificate does over gRPC.
	InProcess *Local
	// Audit, when set, is the gateway's own audit log (issue 17): every call the gateway
	// refuses itself (no or a bad token, a role that may not call the route) becomes an
	// entry there, its action named after the service the route belongs to
	// ("patient.read"), as the service would have audited it.
	Audit audit.Appender
	// AuditDB, when set with Audit, is the gateway's own database holding that log: the
	// gateway then serves its chain's verdict to admins at GET /api/gateway/audit/verify.
	AuditDB *db.DB
	// AuditTopic, when set, lets GET /api/gateway/audit/verify?againstTopic=true compare the
	// gateway's chain with the audit topic (docs/audit.md).
	AuditTopic *audit.TopicCheck
}

// Local is the services' endpoint sets, for Config.InProcess.
type Local struct {
	Patient   patient.Set
	Billing   billing.Set
	Auth      auth.Set
	Analytics analytics.Set
}

// AuditTable is the gateway's audit log table in its own database.
const AuditTable = "audit_log"

// serviceAudit is an audit.Appender writing to the gateway's log with each action prefixed
// by the service its route belongs to: one log covers the routes of every service.
type serviceAudit struct {
	log     audit.Appender
	service string
}

// Append implements audit.Appender.
func (a serviceAudit) Append(ctx context.Context, e audit.Entry) error {
	e.Action = a.service + "." + e.Action
	return a.log.Append(ctx, e)
}

// refusals is the DeniedFunc of the gateway's guard in front of service: the service's own
// denial auditor (its actions, its subjects) over the gateway's log; nil without one.
func (c Config) refusals(service string, auditor func(audit.Appender) authz.DeniedFunc) authz.DeniedFunc {
	if c.Audit == nil {
		return nil
	}
	return auditor(serviceAudit{log: c.Audit, service: service})
}

// Gateway is the composed HTTP handler and the connections under it.
type Gateway struct {
	handler http.Handler
	conns   []*grpc.ClientConn
	routes  []openapi.Route
}

// mount sends the paths under prefix to a handler; routes are the ones that handler
// registered, of which the gateway serves those under prefix.
type mount struct {
	prefix  string
	handler http.Handler
	routes  *[]openapi.Route
}

func (m mount) matches(path string) bool {
	return path == m.prefix || strings.HasPrefix(path, m.prefix+"/")
}

// upstream is one service behind the gateway: its guard, breaker and read list, all derived
// from the service's operation table.
type upstream struct {
	b       *builder
	conn    *grpc.ClientConn
	name    string
	breaker *breaker.Breaker
	admit   *admit.Limiter
	guard   *authz.Guard
	reads   map[string]bool
	// service is the upstream's own role table: a request whose body the gateway already
	// rejected never reaches the service, so the gateway applies it first (403 before 400).
	service authz.RoleTable
}

// New dials every upstream (lazily: an upstream may start later or be down, and answers 503
// until it is back) and composes the handler.
func New(c Config) (*Gateway, error) {
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	g := &Gateway{}
	b := &builder{c: c, g: g, limiter: newClientLimiter(c.ClientLimit, c.MaxClients),
		admits:  admit.NewMetrics(c.Registerer, "gateway"),
		metrics: observe.NewRequestMetrics(c.Registerer, "gateway"),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "pms", Subsystem: "gateway", Name: "breaker_state",
			Help: "State of the circuit breaker in front of each upstream: 0 closed, 1 half-open, 2 open.",
		}, []string{"upstream"})}
	c.Registerer.MustRegister(b.state)

	// The route table: one upstream (dial, guard, breaker from its operation table), one client
	// set and its mounts per service.
	var mounts []mount

	pu := b.upstream("patient", c.PatientAddr, patient.Ops, c.refusals("patient", func(l audit.Appender) authz.DeniedFunc { return patient.DeniedAuditor(l) }))
	var ps patient.Set
	if l := c.InProcess; l != nil {
		ps = l.Patient.Map(inProcess).Map(pu.wrap)
	} else {
		ps = grpctransport.NewPatientClient(pu.conn).Map(pu.wrap)
	}
	ph, pr := b.handler(func(o httptransport.Options) http.Handler { return httptransport.NewPatientHandler(ps, o) }, "/api")
	mounts = append(mounts, mount{"/api/patients", ph, pr}, mount{"/api/audit", ph, pr})

	bu := b.upstream("billing", c.BillingAddr, billing.Ops, c.refusals("billing", func(l audit.Appender) authz.DeniedFunc { return billing.DeniedAuditor(l) }))
	var bs billing.Set
	if l := c.InProcess; l != nil {
		bs = l.Billing.Map(inProcess).Map(bu.wrap)
	} else {
		bs = grpctransport.NewBillingClient(bu.conn).Map(bu.wrap)
	}
	bh, br := b.handler(func(o httptransport.Options) http.Handler { return httptransport.NewBillingHandler(bs, o) }, "/api/billing")
	mounts = append(mounts, mount{"/api/billing", bh, br})
	// The FHIR R4 facade (docs/fhir.md): the same patient and billing endpoints, so the same
	// guard, roles, audit, rate limits and breakers.
	fh, fr := b.handler(func(o httptransport.Options) http.Handler {
		return httptransport.NewFHIRFacade(httptransport.FHIRSets{Patient: ps, Billing: &bs}, o)
	}, "/fhir")
	mounts = append(mounts, mount{"/fhir", fh, fr})

	au := b.upstream("auth", c.AuthAddr, auth.Ops, c.refusals("auth", func(l audit.Appender) authz.DeniedFunc { return auth.DeniedAuditor(l) }))
	var as auth.Set
	if l := c.InProcess; l != nil {
		as = l.Auth.Map(inProcess).Map(au.wrap)
	} else {
		as = grpctransport.NewAuthClient(au.conn).Map(au.wrap)
	}
	// /auth/** is auth with the prefix stripped, for the public routes; the user
	// administration lives under /api/users.
	aph, apr := b.handler(func(o httptransport.Options) http.Handler { return httptransport.NewAuthHandler(as, o) }, "/auth")
	auh, aur := b.handler(func(o httptransport.Options) http.Handler { return httptransport.NewAuthHandler(as, o) }, "/api")
	for _, p := range []string{"/auth/login", "/auth/validate", "/auth/refresh", "/auth/logout", "/auth/password", "/auth/mfa", "/auth/sessions", "/auth/.well-known"} {
		mounts = append(mounts, mount{p, aph, apr})
	}
	mounts = append(mounts, mount{"/api/users", auh, aur})

	nu := b.upstream("analytics", c.AnalyticsAddr, analytics.Ops, c.refusals("analytics", func(l audit.Appender) authz.DeniedFunc { return analytics.DeniedAuditor(l) }))
	var ns analytics.Set
	if l := c.InProcess; l != nil {
		ns = l.Analytics.Map(inProcess).Map(nu.wrap)
	} else {
		ns = grpctransport.NewAnalyticsClient(nu.conn).Map(nu.wrap)
	}
	nh, nr := b.handler(func(o httptransport.Options) http.Handler { return httptransport.NewAnalyticsHandler(ns, o) }, "/api/analytics")
	mounts = append(mounts, mount{"/api/analytics", nh, nr})

	if c.Audit != nil && c.AuditDB != nil {
		gh, gr := b.verifyHandler(c.AuditDB, c.Audit)
		mounts = append(mounts, mount{"/api/gateway", gh, gr})
	}

	if b.err != nil {
		_ = g.Close()
		return nil, b.err
	}
	g.routes = servedRoutes(mounts)
	g.handler = newFront(c.CORS.wrap(dispatch(mounts, openapi.Handler(), b.options(""))), c.MaxHTTPInFlight, c.Registerer)
	return g, nil
}

// withDefaults checks c and fills in the defaults of its zero fields.
func (c Config) withDefaults() (Config, error) {
	if c.Verifier == nil {
		return c, errors.New("gateway: a token verifier is required")
	}
	if err := c.CORS.validate(); err != nil {
		return c, err
	}
	if c.Logger == nil {
		c.Logger = log.NewNopLogger()
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.ReadAttempts < 1 {
		c.ReadAttempts = DefaultReadAttempts
	}
	if c.BreakerOpenFor <= 0 {
		c.BreakerOpenFor = DefaultOpenFor
	}
	if c.ClientLimit.Rate == 0 {
		c.ClientLimit = DefaultClientLimit
	}
	if c.MaxClients <= 0 {
		c.MaxClients = DefaultMaxClients
	}
	return c, nil
}

// builder holds what composing the upstreams shares.
type builder struct {
	c       Config
	g       *Gateway
	limiter *clientLimiter
	admits  *admit.Metrics
	metrics *observe.RequestMetrics
	state   *prometheus.GaugeVec
	err     error
}

// inProcess is what the gRPC hop gives a call that reaches a service's endpoints in this
// process: the caller's identity is its token, already in the context (the service checks it
// again); the gateway's own is said explicitly, as its client certificate would say it.
func inProcess(_ string, next endpoint.Endpoint) endpoint.Endpoint {
	return func(ctx context.Context, req any) (any, error) {
		return next(authz.WithPeerService(ctx, "gateway"), req)
	}
}

// upstream dials one service (grpctransport.Dial: lazily, quick to reconnect) and derives its
// guard, read list and role table from the service's operation table. A dial error is kept
// in b.err for New to return.
func (b *builder) upstream(name, addr string, ops op.Table, denied authz.DeniedFunc) *upstream {
	var conn *grpc.ClientConn
	if b.c.InProcess == nil { // in process, nothing is dialled
		var err error
		if conn, err = grpctransport.Dial(addr, b.c.TLS); err != nil {
			b.err = errors.Join(b.err, err)
		} else {
			b.g.conns = append(b.g.conns, conn)
		}
	}
	return &upstream{
		conn:    conn,
		b:       b,
		name:    name,
		guard:   authz.NewGuard(b.c.Verifier, ops.Gateway(), denied).WithReads(ops.Reads()),
		reads:   ops.Reads(),
		service: ops.Roles(),
		admit:   admit.New(admit.Options{Name: name, Limit: b.c.MaxInFlight, MaxWait: b.c.MaxQueueWait, Metrics: b.admits}),
		breaker: breaker.New(breaker.Options{Name: name, Failures: breakerFailures(b.c.BreakerFailures, addr), OpenFor: b.c.BreakerOpenFor,
			State: b.state.WithLabelValues(name), Logger: b.c.Logger}),
	}
}

// breakerFailures is the run of failures that opens the breaker of the upstream at addr:
// failures (or breaker.DefaultFailures) for each replica addr lists. With replicas the calls
// a dying replica had in flight fail together, and the connection already leaves that
// replica out (grpctransport.OutlierPolicy): the breaker is for the upstream failing as a
// whole, so it waits for as many failures in a row as would take every replica's share. A
// dns:/// name counts as one (its replicas are not known here).
func breakerFailures(failures uint32, addr string) uint32 {
	if failures == 0 {
		failures = breaker.DefaultFailures
	}
	if _, replicas := grpctransport.ReplicaTarget(addr); len(replicas) > 1 {
		failures *= uint32(len(replicas))
	}
	return failures
}

// wrap puts the gateway's middleware around one client endpoint, outermost first: metrics,
// logging, the JWT check (401/403 first, as the contract orders), the per-client rate limit
// (keyed by the verified subject), a rejected decode (400/413/415, without calling the
// upstream), admission to the upstream (a call shed under load is answered 503 at once and
// is neither retried nor seen by the breaker), the deadline and,
// for reads only, retries, then the upstream's breaker around each attempt.
//
// An audit verification (every service's VerifyAudit) is neither retried nor seen by the
// breaker: with againstTopic the service reads the audit topic, and its 503 then says the
// topic could not be read in time, not that the service is down; retrying would read the
// topic again past the deadline, and counting it would let an admin's checks open the
// breaker on every call to the service.
func (u *upstream) wrap(method string, e endpoint.Endpoint) endpoint.Endpoint {
	b, name := u.b, u.name+"."+method
	mws := []endpoint.Middleware{
		b.metrics.Middleware(name),
		observe.LoggingMiddleware(b.c.Logger, name),
		u.guard.Middleware(method),
		b.limiter.middleware(),
		rejectDecodeErrors(u.service, method),
		u.admit.Middleware(),
	}
	switch {
	case method == auditVerifyMethod:
		mws = append(mws, deadline(b.c.Timeout))
	case u.reads[method]:
		mws = append(mws, retry.Middleware(retry.Options{Attempts: b.c.ReadAttempts, Timeout: b.c.Timeout}), u.breaker.Middleware())
	default:
		mws = append(mws, deadline(b.c.Timeout), u.breaker.Middleware())
	}
	return typed.Chain(e, mws...)
}

// options are the HTTP options of a handler mounted under prefix.
func (b *builder) options(prefix string) httptransport.Options {
	return httptransport.Options{Logger: b.c.Logger, Prefix: prefix, TrustedProxies: b.c.TrustedProxies}
}

// handler builds a service's HTTP handler under prefix and records the routes it registers.
func (b *builder) handler(build func(httptransport.Options) http.Handler, prefix string) (http.Handler, *[]openapi.Route) {
	routes := &[]openapi.Route{}
	o := b.options(prefix)
	o.OnRoute = func(method, path string) { *routes = append(*routes, openapi.Route{Method: method, Path: path}) }
	return build(o), routes
}

// rejectDecodeErrors returns a request the transport could not decode as its error, after
// the JWT check and before the upstream is called. Such a request never reaches the service,
// whose role check would have answered 403 first (API.md: 401, then 403, then
// 400/413/415), so the service's role table (roles) is applied here before the decode error.
func rejectDecodeErrors(roles authz.RoleTable, method string) endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, req any) (any, error) {
			if r, ok := req.(typed.Rejected); ok {
				if p, _ := authz.FromContext(ctx); !public(roles, method) && !roles.Allows(method, p.Role) {
					return nil, errs.New(errs.PermissionDenied, "your role may not do this")
				}
				return nil, r.Err
			}
			return next(ctx, req)
		}
	}
}

// public reports whether method needs no token in roles.
func public(roles authz.RoleTable, method string) bool {
	allowed := roles[method]
	return len(allowed) == 1 && allowed[0] == authz.Public
}

// deadline bounds a call that is not retried: the retry middleware with one attempt, so a
// deadline that passed is a timeout the same way for reads and writes.
func deadline(d time.Duration) endpoint.Middleware {
	return retry.Middleware(retry.Options{Attempts: 1, Timeout: d})
}

// servedRoutes lists the routes the mounts really serve, sorted and without duplicates.
func servedRoutes(mounts []mount) []openapi.Route {
	seen := map[openapi.Route]bool{}
	var out []openapi.Route
	for _, m := range mounts {
		for _, r := range *m.routes {
			if m.matches(r.Path) && !seen[r] {
				seen[r] = true
				out = append(out, r)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Method < out[j].Method
	})
	return out
}

// dispatch sends each request to the mount whose prefix it falls under, the OpenAPI
// document and page to docs, "/" and "/console/…" to the staff console (its explicit asset
// list; an unknown asset is the JSON 404 too), and anything else to the contract's 404.
func dispatch(mounts []mount, docs http.Handler, o httptransport.Options) http.Handler {
	notFound := httptransport.Wrap(httptransport.NewRouter(), o)
	staff := httptransport.Wrap(console.New(httptransport.EncodeError), o)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		for _, m := range mounts {
			if m.matches(p) {
				m.handler.ServeHTTP(w, r)
				return
			}
		}
		if (p == "/openapi.json" || p == "/api-docs") && r.Method == http.MethodGet {
			docs.ServeHTTP(w, r)
			return
		}
		if console.Serves(p) {
			staff.ServeHTTP(w, r)
			return
		}
		notFound.ServeHTTP(w, r)
	})
}

// ServeHTTP serves the gateway's public API.
// Over TLS it tells browsers to keep to HTTPS (HSTS, two years).
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.TLS != nil {
		w.Header().Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
	}
	g.handler.ServeHTTP(w, r)
}

// Routes lists every route the gateway serves (method and path template), sorted.
func (g *Gateway) Routes() []openapi.Route { return append([]openapi.Route(nil), g.routes...) }

// Close closes the upstream connections.
func (g *Gateway) Close() error {
	var err error
	for _, c := range g.conns {
		err = errors.Join(err, c.Close())
	}
	return err
}
