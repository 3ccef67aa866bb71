package httptransport

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-kit/kit/endpoint"
	kithttp "github.com/go-kit/kit/transport/http"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
	"github.com/pms/pms/transport/wire"
)

// This file is the client side every service's HTTP client shares: the http.Client, the
// call an operation puts on the wire, forwarding the caller's identity, and turning answers
// and failures back into contract errors.

// ClientOptions configure the HTTP clients of the services.
type ClientOptions struct {
	// HTTPClient sends the requests; nil means one shared client with the timeouts of
	// DefaultHTTPClient. It should not follow redirects.
	HTTPClient *http.Client
	// Token returns the bearer token to send for a call; nil means the token the context
	// carries (authz.Token), so a server forwards its caller's token.
	Token func(ctx context.Context) string
}

// maxResponseBody bounds a success body a client buffers: the largest page (500 patients,
// 1000 audit rows) is a fraction of it.
const maxResponseBody = 32 << 20

// defaultHTTPClient is shared by every client built without one, so they share connections.
var defaultHTTPClient = DefaultHTTPClient()

// DefaultHTTPClient returns an http.Client for calls between services: bounded connect,
// header and overall times, pooled keep-alive connections, and no redirects (an API answers,
// it does not send clients elsewhere; a 3xx surfaces as an error).
func DefaultHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 5 * time.Second
	t.ResponseHeaderTimeout = 30 * time.Second
	t.MaxIdleConnsPerHost = 64
	return &http.Client{
		Transport:     t,
		Timeout:       60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// call is what an operation puts on the wire: method, path under the base URL (already
// escaped), query, extra headers and a body to send as JSON (nil for none).
type call struct {
	method string
	path   string
	query  url.Values
	header http.Header
	body   any
}

// client is what every operation of one service's client shares.
type client struct {
	base   *url.URL
	http   *http.Client
	before []kithttp.RequestFunc
}

func newClient(baseURL string, o ClientOptions) (*client, error) {
	base, err := url.Parse(baseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("httptransport: base URL %q must be an absolute http(s) URL", baseURL)
	}
	base.Path = strings.TrimRight(base.Path, "/")
	base.RawPath, base.RawQuery, base.Fragment = "", "", ""
	hc := o.HTTPClient
	if hc == nil {
		hc = defaultHTTPClient
	}
	token := o.Token
	if token == nil {
		token = authz.Token
	}
	return &client{base: base, http: hc, before: []kithttp.RequestFunc{forwardContext(token)}}, nil
}

// forwardContext is a ClientBefore that carries the request's identity on: its request id,
// the caller's bearer token and the client address (believed by the callee only from
// trusted proxies).
func forwardContext(token func(context.Context) string) kithttp.RequestFunc {
	return func(ctx context.Context, r *http.Request) context.Context {
		if id := observe.RequestID(ctx); id != "" {
			r.Header.Set(observe.RequestIDHeader, id)
		}
		if t := token(ctx); t != "" {
			r.Header.Set("Authorization", "Bearer "+t)
		}
		if a := observe.ClientAddr(ctx); a != "" {
			r.Header.Set("X-Forwarded-For", a)
		}
		if ua := observe.UserAgent(ctx); ua != "" {
			r.Header.Set("User-Agent", ua)
		}
		return ctx
	}
}

// clientEndpoint builds one operation's client endpoint from a typed request encoder and
// response decoder; it is the one place a client request is asserted to its type. Statuses
// outside 2xx come back through DecodeError, and a failure to reach the server as
// unavailable (or timeout), so a caller only ever sees contract kinds.
func clientEndpoint[Req, Resp any](c *client, enc func(Req) (call, error), dec func(*http.Response) (Resp, error)) endpoint.Endpoint {
	create := func(ctx context.Context, request any) (*http.Request, error) {
		req, ok := request.(Req)
		if !ok {
			var want Req
			return nil, errs.Wrap(errs.Internal, wire.InternalMessage, fmt.Errorf("httptransport: client got %T, want %T", request, want))
		}
		cl, err := enc(req)
		if err != nil {
			return nil, err
		}
		return c.newRequest(ctx, cl)
	}
	decode := func(_ context.Context, resp *http.Response) (any, error) {
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return nil, DecodeError(resp)
		}
		return dec(resp)
	}
	e := kithttp.NewExplicitClient(create, decode, kithttp.SetClient(c.http), kithttp.ClientBefore(c.before...)).Endpoint()
	return func(ctx context.Context, request any) (any, error) {
		resp, err := e(ctx, request)
		if err != nil {
			return nil, transportError(err)
		}
		return resp, nil
	}
}

func (c *client) newRequest(ctx context.Context, cl call) (*http.Request, error) {
	target := c.base.String() + cl.path // cl.path is already escaped
	if len(cl.query) > 0 {
		target += "?" + cl.query.Encode()
	}
	var body io.Reader
	if cl.body != nil {
		b, err := json.Marshal(cl.body)
		if err != nil {
			return nil, errs.Wrap(errs.Internal, wire.InternalMessage, err)
		}
		body = bytes.NewReader(b)
	}
	r, err := http.NewRequestWithContext(ctx, cl.method, target, body)
	if err != nil {
		return nil, errs.Wrap(errs.Internal, wire.InternalMessage, err)
	}
	for k, vs := range cl.header {
		r.Header[k] = vs
	}
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	r.Header.Set("Accept", "application/json")
	return r, nil
}

// decodeJSONResponse reads a success body as T.
func decodeJSONResponse[T any](resp *http.Response) (T, error) {
	var v T
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBody)).Decode(&v); err != nil {
		return v, errs.Wrap(errs.Internal, wire.InternalMessage, fmt.Errorf("httptransport: decoding %d response: %w", resp.StatusCode, err))
	}
	return v, nil
}

// transportError gives a failure that is not already a contract error its kind: a deadline
// is a timeout, anything else on the way (refused, reset, DNS) means the server is
// unavailable.
func transportError(err error) error {
	var e *errs.Error
	if errors.As(err, &e) {
		return err
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return errs.Wrap(errs.Timeout, "the request timed out", err)
	}
	return errs.Wrap(errs.Unavailable, "the service is unavailable", err)
}

// nextPageToken returns the pageToken of the rel="next" link, or "".
func nextPageToken(h http.Header) string {
	for _, line := range h.Values("Link") {
		for _, link := range strings.Split(line, ",") {
			target, params, ok := strings.Cut(link, ";")
			target = strings.TrimSpace(target)
			if !ok || !strings.HasPrefix(target, "<") || !strings.HasSuffix(target, ">") {
				continue
			}
			if !strings.Contains(strings.ReplaceAll(params, " ", ""), `rel="next"`) {
				continue
			}
			if u, err := url.Parse(target[1 : len(target)-1]); err == nil {
				return u.Query().Get("pageToken")
			}
		}
	}
	return ""
}

func setParam(v url.Values, name, value string) {
	if value != "" {
		v.Set(name, value)
	}
}

func setIfMatch(h http.Header, version int64) {
	if version != 0 {
		h.Set(wire.HeaderIfMatch, wire.ETag(version))
	}
}

// resourceCall addresses one resource of collection (and a sub-resource); an empty id is
// refused here as the service would refuse it, rather than sent as a path that names the
// collection.
func resourceCall(method, collection, id, sub string) (call, error) {
	if id == "" {
		return call{}, errs.Invalid(map[string]string{"id": "is required"})
	}
	return call{method: method, path: collection + "/" + url.PathEscape(id) + sub, header: http.Header{}}, nil
}

// errNoRoute answers a client call the HTTP API has no route for.
var errNoRoute = errs.New(errs.MethodNotAllowed, "this operation is not offered over HTTP")
