package grpctransport

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	kitjwt "github.com/go-kit/kit/auth/jwt"
	kitgrpc "github.com/go-kit/kit/transport/grpc"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/reflection"

	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
	"github.com/pms/pms/transport/wire"
)

// Metadata keys this transport reads and writes. gRPC metadata keys are lower case.
const (
	// RequestIDKey carries the request id both ways: the caller's (or a new one) comes back
	// as a response header, as X-Request-ID does over HTTP.
	RequestIDKey = "x-request-id"
	// ForwardedForKey carries the original client's address from a trusted proxy (the
	// gateway), so throttling and audit rows see the real client.
	ForwardedForKey = "x-forwarded-for"
	// UserAgentKey carries the original client's user agent from a proxy (the gateway's HTTP
	// caller's). A user agent is whatever its client claims, so it is taken from any caller
	// (a direct one could claim anything in its own user-agent too); without it the call's
	// own user-agent metadata is used.
	UserAgentKey = "x-pms-user-agent"
	// TransportKey carries, from a trusted proxy (the gateway), the transport the original
	// request came in on ("http": observe.Origin), so the patient service's access log says
	// how the user reached the platform rather than the gateway's gRPC hop; metrics and logs
	// keep the hop's own transport, grpc. From any other caller it is ignored.
	TransportKey = "x-pms-transport"
	// AuthorizationKey carries the caller's token as "Bearer <token>".
	AuthorizationKey = "authorization"
	// CheckedByKey carries, from the patient service, "patient": it has already checked the
	// user's access to the call's patient (the break-glass grant of a restricted record) and
	// recorded the disclosure (authz.CheckedBy), so billing serves a restricted patient's
	// data to this call. It is believed only from the patient service's client certificate
	// (spiffe://pms/patient, or pms all's own "all"), or, without TLS, from a trusted proxy
	// address, as TransportKey is; from any other caller it is ignored.
	CheckedByKey = "x-pms-checked-by"
)

// MaxMessageSize is the largest request a server accepts: the contract's 1 MiB body limit,
// so a gRPC caller cannot send what an HTTP caller may not.
const MaxMessageSize = wire.MaxBodyBytes

// MaxResponseSize is the largest response a client built with ClientDialOptions accepts. It
// is above grpc-go's 4 MiB default because a long history or a full audit page may be large.
const MaxResponseSize = 64 << 20

// Keepalive settings, server and client side. They must agree: a client pinging more often
// than the server's MinTime is disconnected with "too_many_pings".
const (
	keepaliveMinTime    = 10 * time.Second
	serverKeepaliveTime = 2 * time.Minute
	clientKeepaliveTime = 30 * time.Second
	keepaliveTimeout    = 20 * time.Second
)

// ServerOptions configure NewServer. The zero value is usable.
type ServerOptions struct {
	// Logger receives recovered panics. Nil means no logging.
	Logger log.Logger
	// TrustedProxies are the peers whose x-forwarded-for metadata is believed
	// (PMS_TRUSTED_PROXIES). Nil means loopback only; an empty, non-nil slice trusts none.
	TrustedProxies []netip.Prefix
	// Health is the health service to register, so the caller can change serving status
	// (per service name, and NOT_SERVING while draining). Nil registers a new one that
	// reports SERVING for the server as a whole.
	Health *health.Server
	// Options are appended to the server's own options (credentials, stats handlers).
	Options []grpc.ServerOption
}

// defaultTrustedProxies is loopback: the gateway of `pms all` and a sidecar reach a service
// from there.
var defaultTrustedProxies = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("::1/128"),
}

// NewServer returns the gRPC server every service uses, so they all behave alike: each
// call gets a request id (the caller's x-request-id or a new one, echoed as a response
// header), the transport name "grpc", the client address (from x-forwarded-for only when
// the peer is a trusted proxy) and the caller's bearer token in its context; a panic becomes
// an Internal status instead of killing the process; a non-status error never leaks its
// text. It serves grpc.health.v1.Health and server reflection; register the services with
// their Register functions (RegisterPatientServer, ...) before Serve.
func NewServer(o ServerOptions) *grpc.Server {
	trusted := o.TrustedProxies
	if trusted == nil {
		trusted = defaultTrustedProxies
	}
	logger := o.Logger
	if logger == nil {
		logger = log.NewNopLogger()
	}
	ic := &interceptor{trusted: trusted, logger: logger}
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxMessageSize),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             keepaliveMinTime,
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    serverKeepaliveTime,
			Timeout: keepaliveTimeout,
		}),
		// Calls run on long-lived workers rather than a new goroutine each: a call's stack
		// (interceptor, go-kit, middleware, database driver) grew from the starting size on
		// every call, 5% of the process's CPU under reads through the gateway (runtime.newstack).
		// A call finding every worker busy gets a goroutine of its own, as before.
		grpc.NumStreamWorkers(streamWorkers),
		grpc.ChainUnaryInterceptor(ic.unary),
		grpc.ChainStreamInterceptor(ic.stream),
	}
	s := grpc.NewServer(append(opts, o.Options...)...)

	h := o.Health
	if h == nil {
		h = health.NewServer() // reports SERVING for "" (the whole server)
	}
	healthpb.RegisterHealthServer(s, h)
	reflection.Register(s)
	return s
}

// streamWorkers is how many calls a server runs at once on its reused workers: about the
// concurrency of a busy upstream (the gateway's 64 callers in make bench).
const streamWorkers = 64

// ClientDialOptions are the options a client connection to a PMS server should carry, so
// that its keepalive pings stay within the servers' enforcement policy and a large response
// is accepted. Transport credentials are the caller's choice and are not included.
func ClientDialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                clientKeepaliveTime,
			Timeout:             keepaliveTimeout,
			PermitWithoutStream: true,
		}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxResponseSize)),
	}
}

// interceptor holds what the server interceptors need.
type interceptor struct {
	trusted []netip.Prefix
	logger  log.Logger
}

// unary prepares the context of a unary call and guards it.
func (ic *interceptor) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	ctx = ic.prepare(ctx)
	defer ic.recover(ctx, info.FullMethod, &err)
	resp, err = handler(ctx, req)
	return resp, ToStatus(err)
}

// stream does for streaming calls (health Watch, reflection) what unary does.
func (ic *interceptor) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	ctx := ic.prepare(ss.Context())
	defer ic.recover(ctx, info.FullMethod, &err)
	return ToStatus(handler(srv, &contextStream{ServerStream: ss, ctx: ctx}))
}

// prepare puts the request id, transport, client address and bearer token into ctx and
// sends the request id back as a response header.
func (ic *interceptor) prepare(ctx context.Context) context.Context {
	md, _ := metadata.FromIncomingContext(ctx)
	id := observe.RequestIDOrNew(first(md, RequestIDKey))
	// SetHeader fails only when headers were already sent, which cannot have happened yet.
	_ = grpc.SetHeader(ctx, metadata.Pairs(RequestIDKey, id))
	ctx = observe.WithRequestID(ctx, id)
	ctx = observe.WithTransport(ctx, "grpc")
	if origin := forwardedOrigin(ctx, md, ic.trusted); origin != "" {
		ctx = observe.WithOrigin(ctx, origin)
	}
	ctx = observe.WithClientAddr(ctx, clientAddr(ctx, md, ic.trusted))
	ctx = observe.WithUserAgent(ctx, userAgent(md))
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			if name := authz.ServiceOf(ti.State.VerifiedChains); name != "" {
				ctx = authz.WithPeerService(ctx, name)
			}
		}
	}
	if by := checkedBy(ctx, md, ic.trusted); by != "" {
		ctx = authz.WithCheckedBy(ctx, by)
	}
	// go-kit's auth/jwt reads the token from the context key GRPCToContext sets.
	return kitjwt.GRPCToContext()(ctx, md)
}

// recover turns a panic of the handler into an Internal status in *err and logs it with
// the stack; the caller learns nothing of it beyond "internal error".
func (ic *interceptor) recover(ctx context.Context, method string, err *error) {
	r := recover()
	if r == nil {
		return
	}
	_ = level.Error(ic.logger).Log("msg", "panic in gRPC handler", "method", method,
		"request_id", observe.RequestID(ctx), "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	*err = ToStatus(errs.New(errs.Internal, "internal error"))
}

// contextStream is a ServerStream whose Context is the prepared one.
type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

// Context returns the prepared context.
func (s *contextStream) Context() context.Context { return s.ctx }

// first returns the first value of key in md, or "".
func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// forwardedTransports are the transports a trusted proxy may say a request came in on.
var forwardedTransports = map[string]bool{"http": true, "grpc": true}

// forwardedOrigin is the transport a trusted proxy says the call came in on at the edge
// (TransportKey), as clientAddr believes x-forwarded-for; "" when there is none to believe
// (the call's origin is then its own transport, grpc).
func forwardedOrigin(ctx context.Context, md metadata.MD, trusted []netip.Prefix) string {
	v := first(md, TransportKey)
	if !forwardedTransports[v] {
		return ""
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		if ip, ok := addrIP(p.Addr); ok && isTrusted(ip, trusted) {
			return v
		}
	}
	return ""
}

// checkedByServices are the services whose CheckedByKey a callee may believe.
var checkedByServices = map[string]bool{"patient": true}

// checkedBy is the service that says (CheckedByKey) it has checked the caller's access to
// the call's patient, when it is to be believed: over TLS only from that service's own
// client certificate (or pms all's shared "all" one, whose process is that service), without
// TLS only from a trusted proxy address; "" otherwise.
func checkedBy(ctx context.Context, md metadata.MD, trusted []netip.Prefix) string {
	v := first(md, CheckedByKey)
	if !checkedByServices[v] {
		return ""
	}
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	if _, tls := p.AuthInfo.(credentials.TLSInfo); tls {
		if name := authz.PeerService(ctx); name == v || name == "all" {
			return v
		}
		return ""
	}
	if ip, ok := addrIP(p.Addr); ok && isTrusted(ip, trusted) {
		return v
	}
	return ""
}

// clientAddr returns the caller's IP address: the peer's, or, when the peer is a trusted
// proxy, the nearest untrusted address of its x-forwarded-for chain (read right to left, as
// each proxy appends the address it saw). A malformed entry ends the walk, so a client
// cannot forge its address past a trusted proxy. A peer that is not an IP (a Unix socket)
// is reported as its address string.
func clientAddr(ctx context.Context, md metadata.MD, trusted []netip.Prefix) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	ip, ok := addrIP(p.Addr)
	if !ok {
		return p.Addr.String()
	}
	if !isTrusted(ip, trusted) {
		return ip.String()
	}
	hops := strings.Split(strings.Join(md.Get(ForwardedForKey), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		if hop == "" {
			continue
		}
		a, err := netip.ParseAddr(hop)
		if err != nil {
			break
		}
		ip = a.Unmap()
		if !isTrusted(ip, trusted) {
			break
		}
	}
	return ip.String()
}

// addrIP returns the IP of a network address, unmapped from IPv6 when it is IPv4.
func addrIP(a net.Addr) (netip.Addr, bool) {
	if tcp, ok := a.(*net.TCPAddr); ok {
		ip, ok := netip.AddrFromSlice(tcp.IP)
		return ip.Unmap(), ok
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

// isTrusted reports whether ip lies in one of the trusted prefixes.
func isTrusted(ip netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// serve runs a go-kit handler and returns its response as the method's reply type and its
// error as a status.
func serve[Resp any](ctx context.Context, h kitgrpc.Handler, req any) (Resp, error) {
	_, resp, err := h.ServeGRPC(ctx, req)
	if err != nil {
		var zero Resp
		return zero, ToStatus(err)
	}
	r, err := assert[Resp](resp)
	return r, ToStatus(err)
}

// userAgent returns the caller's user agent: the forwarded one (UserAgentKey) when a proxy
// sent it, else the call's own user-agent metadata.
func userAgent(md metadata.MD) string {
	if ua := first(md, UserAgentKey); ua != "" {
		return ua
	}
	return first(md, "user-agent")
}
