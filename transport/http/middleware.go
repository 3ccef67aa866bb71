package httptransport

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/go-kit/kit/endpoint"
	kithttp "github.com/go-kit/kit/transport/http"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/gorilla/mux"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
	"github.com/pms/pms/transport/wire"
)

// Options configure a service's HTTP handler.
type Options struct {
	// Logger receives panics and internal errors (ids and kinds only, never request data).
	// Nil means no logging.
	Logger log.Logger
	// Prefix is the path the handler is mounted under ("" for a service, "/api" in the
	// gateway). Routes are registered under it, and headers that hold paths (Location, Link)
	// carry it, so they name the path the client used.
	Prefix string
	// TrustedProxies are the peers whose X-Forwarded-For is believed. Nil means
	// DefaultTrustedProxies; an empty non-nil slice trusts no one.
	TrustedProxies []netip.Prefix
	// OnRoute, when set, learns every route registered (method and full path template), so
	// the gateway can list the routes it serves and test them against its OpenAPI document.
	OnRoute func(method, path string)
}

// DefaultTrustedProxies is loopback, as API.md's PMS_TRUSTED_PROXIES defaults: in `pms all`
// the gateway reaches the services over loopback.
var DefaultTrustedProxies = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("::1/128"),
}

func (o Options) logger() log.Logger {
	if o.Logger == nil {
		return log.NewNopLogger()
	}
	return o.Logger
}

// prefix normalises Prefix to "" or "/x" without a trailing slash.
func (o Options) prefix() string {
	p := strings.TrimRight(o.Prefix, "/")
	if p != "" && !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return p
}

func (o Options) trusted() []netip.Prefix {
	if o.TrustedProxies == nil {
		return DefaultTrustedProxies
	}
	return o.TrustedProxies
}

// Wrap is the http.Handler middleware in front of every service's routes. It gives each
// request its id (the caller's X-Request-ID when well formed, else a new one) on the response
// and in the context, marks the transport, resolves the client address against the trusted
// proxies, caps the body at wire.MaxBodyBytes, and turns a panic into the contract's 500 so that
// no input can crash the process or leave a half-written success.
func Wrap(next http.Handler, o Options) http.Handler {
	logger, trusted := o.logger(), o.trusted()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := observe.RequestIDOrNew(r.Header.Get(observe.RequestIDHeader))
		h := w.Header()
		h.Set(observe.RequestIDHeader, id)
		// Responses hold patient data: no cache may keep them, no browser may sniff them.
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")

		ctx := observe.WithRequestID(r.Context(), id)
		ctx = observe.WithTransport(ctx, "http")
		ctx = observe.WithClientAddr(ctx, clientAddr(r, trusted))
		ctx = observe.WithUserAgent(ctx, r.Header.Get("User-Agent"))
		if r.TLS != nil {
			if name := authz.ServiceOf(r.TLS.VerifiedChains); name != "" {
				ctx = authz.WithPeerService(ctx, name)
			}
		}
		r = r.WithContext(ctx)
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, wire.MaxBodyBytes)
		}

		rw := &recordingWriter{ResponseWriter: w}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			logPanic(logger, id, r.Method, v)
			if rw.wrote {
				// Part of a response is on the wire; abort the connection so the client
				// sees a failure, not a truncated success.
				panic(http.ErrAbortHandler)
			}
			EncodeError(ctx, errs.New(errs.Internal, wire.InternalMessage), w)
		}()
		next.ServeHTTP(rw, r)
	})
}

// logPanic logs a recovered panic with the request id and the stack but no request data: the
// panic value is logged only when it is a runtime error, whose text comes from the runtime,
// never from input.
func logPanic(logger log.Logger, id, method string, v any) {
	what := fmt.Sprintf("%T", v)
	if re, ok := v.(runtime.Error); ok {
		what = re.Error()
	}
	_ = level.Error(logger).Log("msg", "panic serving request", "transport", "http",
		"request_id", id, "http_method", method, "panic", what, "stack", string(debug.Stack()))
}

// recordingWriter notes whether a response has started, so that recovery knows whether it
// can still write an error.
type recordingWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *recordingWriter) WriteHeader(code int) {
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *recordingWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's Flusher and deadlines.
func (w *recordingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// clientAddr is the peer's IP or, when the peer is a trusted proxy, the nearest untrusted
// address of X-Forwarded-For read right to left: each trusted proxy appends the address it
// saw, so only the right-hand part of the chain is vouched for, and whatever a client wrote
// on the left is ignored. A malformed hop ends the walk at the last good address.
func clientAddr(r *http.Request, trusted []netip.Prefix) string {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	addr := peer.Addr().Unmap()
	if !inPrefixes(addr, trusted) {
		return addr.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		addr = a.Unmap().WithZone("")
		if !inPrefixes(addr, trusted) {
			break
		}
	}
	return addr.String()
}

func inPrefixes(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// NewRouter returns a mux router that answers unknown paths with the contract's 404 and a
// known path with the wrong method with its 405 (error word method_not_allowed, and an
// Allow header). It does not clean paths: a redirect is no answer for an API client, so an
// odd path either matches a route, where its ids are validated, or is a 404.
func NewRouter() *mux.Router { return routerWith(EncodeError) }

// routerWith is NewRouter answering its 404s and 405s with encode (the FHIR facade's
// OperationOutcome, the contract's JSON error everywhere else).
func routerWith(encode func(context.Context, error, http.ResponseWriter)) *mux.Router {
	router := mux.NewRouter().SkipClean(true)
	router.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		encode(r.Context(), errs.New(errs.NotFound, "no such resource"), w)
	})
	router.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if allow := allowedMethods(router, r); allow != "" {
			w.Header().Set("Allow", allow)
		}
		encode(r.Context(), errs.New(errs.MethodNotAllowed, "method not allowed on this resource"), w)
	})
	return router
}

// allowedMethods lists the methods router serves for r's path.
func allowedMethods(router *mux.Router, r *http.Request) string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := &http.Request{Method: m, URL: r.URL, Header: http.Header{}, Host: r.Host}
		var match mux.RouteMatch
		if router.Match(probe, &match) && match.MatchErr == nil {
			allow = append(allow, m)
		}
	}
	return strings.Join(allow, ", ")
}

// Handle registers one operation on router: method and path (under o's prefix), the
// endpoint, and its typed decoder and encoder, with the error encoder, logging and context
// functions every route shares. Adding an operation to a service is one call.
func Handle[Req, Resp any](router *mux.Router, o Options, method, path string, e endpoint.Endpoint,
	dec func(context.Context, *http.Request) (Req, error),
	enc func(context.Context, http.Header, Resp) (int, any),
) {
	if o.OnRoute != nil {
		o.OnRoute(method, o.prefix()+path)
	}
	// Path before Methods: gorilla/mux v1.8.1 otherwise forgets a method mismatch when a
	// later route has the method but not the path, and answers 404 instead of 405.
	router.Path(o.prefix() + path).Methods(method).Handler(kithttp.NewServer(e, Decoder(dec), Encoder(enc),
		kithttp.ServerBefore(bearerTokenToContext, requestURLToContext, acceptToContext, cookieSessionToContext),
		kithttp.ServerErrorEncoder(EncodeError),
		kithttp.ServerErrorHandler(internalErrorLogger{o.logger()}),
	))
}

// internalErrorLogger logs internal errors found in the transport (the endpoint middleware
// logs the service's own), with the request id and the cause, never the request.
type internalErrorLogger struct{ logger log.Logger }

func (l internalErrorLogger) Handle(ctx context.Context, err error) {
	if e := errs.As(err); e.Kind == errs.Internal {
		_ = level.Error(l.logger).Log("msg", "internal error", "transport", "http",
			"request_id", observe.RequestID(ctx), "cause", err.Error())
	}
}

type ctxKey int

const (
	requestURLKey ctxKey = iota
	acceptKey
)

// bearerTokenToContext is a ServerBefore that keeps the caller's bearer token in the context
// for the auth middleware and for forwarding (wire.TokenToContext). A request with two
// Authorization headers leaves in doubt whose call this is, so it carries no token and gets
// 401 wherever one is needed.
func bearerTokenToContext(ctx context.Context, r *http.Request) context.Context {
	values := r.Header.Values(wire.HeaderAuthorization)
	if len(values) != 1 {
		return ctx
	}
	return wire.TokenToContext(ctx, values[0])
}

// requestURLToContext is a ServerBefore that keeps the request URL for encoders that build
// links from the query the caller sent (the next page of a search).
func requestURLToContext(ctx context.Context, r *http.Request) context.Context {
	return context.WithValue(ctx, requestURLKey, r.URL)
}

// acceptToContext is a ServerBefore that keeps the Accept header for encoders that offer
// another format than JSON (the access log's CSV).
func acceptToContext(ctx context.Context, r *http.Request) context.Context {
	return context.WithValue(ctx, acceptKey, r.Header.Get("Accept"))
}

// acceptHeader returns the Accept header of the request being served.
func acceptHeader(ctx context.Context) string {
	s, _ := ctx.Value(acceptKey).(string)
	return s
}

// requestQuery returns the query of the request being served, or an empty one.
func requestQuery(ctx context.Context) url.Values {
	if u, ok := ctx.Value(requestURLKey).(*url.URL); ok {
		if v, err := url.ParseQuery(u.RawQuery); err == nil {
			return v
		}
	}
	return url.Values{}
}
