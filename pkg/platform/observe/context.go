// Package observe holds what every request carries for observability: its request id, the
// transport it arrived on, the client's address, a go-kit logger and Prometheus metrics.
package observe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
)

type ctxKey int

const (
	requestIDKey ctxKey = iota
	transportKey
	originKey
	clientAddrKey
	userAgentKey
)

// RequestIDHeader is the HTTP header (and, lower-cased, the gRPC metadata and Kafka header)
// that carries the request id.
const RequestIDHeader = "X-Request-ID"

// validRequestID bounds what a caller may pass as a request id: it ends up in logs and audit
// rows, so it must be 1–128 characters of [A-Za-z0-9._:-]. (A loop, not a regexp: it runs on
// every request.)
func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// NewRequestID returns a fresh random request id (128 bits, hex).
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// RequestIDOrNew returns id when it is a well-formed request id, else a new one; a hostile
// header never reaches a log line.
func RequestIDOrNew(id string) string {
	if validRequestID(id) {
		return id
	}
	return NewRequestID()
}

// WithRequestID returns ctx carrying id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey, id)
}

// RequestID returns the request id carried by ctx, or "".
func RequestID(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey).(string)
	return s
}

// WithTransport records which transport ("http", "grpc", "kafka") a request came in on, so
// endpoint middleware can label metrics without knowing the transport.
func WithTransport(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, transportKey, name)
}

// Transport returns the transport name carried by ctx, or "direct".
func Transport(ctx context.Context) string {
	if s, ok := ctx.Value(transportKey).(string); ok {
		return s
	}
	return "direct"
}

// WithOrigin records the transport the request came in on at the platform's edge, when a
// trusted proxy (the gateway) forwarded it here over another one: a patient's access log
// says how the user reached the platform, while metrics and logs keep the hop's transport.
func WithOrigin(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, originKey, name)
}

// Origin returns the transport the request came in on at the platform's edge: the one a
// trusted proxy forwarded (WithOrigin), else the request's own (Transport).
func Origin(ctx context.Context) string {
	if s, ok := ctx.Value(originKey).(string); ok {
		return s
	}
	return Transport(ctx)
}

// WithClientAddr records the caller's address (already resolved against trusted proxies).
func WithClientAddr(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, clientAddrKey, addr)
}

// ClientAddr returns the caller's address carried by ctx, or "".
func ClientAddr(ctx context.Context) string {
	s, _ := ctx.Value(clientAddrKey).(string)
	return s
}

// MaxUserAgentBytes caps the user agent a request carries: it is stored with a session and
// shown back to its user, so a client cannot make either grow.
const MaxUserAgentBytes = 256

// CleanUserAgent returns ua as it may be stored and shown: printable ASCII only (anything
// else, control characters and invalid UTF-8 included, is dropped) and at most
// MaxUserAgentBytes. A User-Agent header is visible ASCII by RFC 9110, so real ones pass
// unchanged.
func CleanUserAgent(ua string) string {
	b := make([]byte, 0, min(len(ua), MaxUserAgentBytes))
	for i := 0; i < len(ua) && len(b) < MaxUserAgentBytes; i++ {
		if c := ua[i]; c >= 0x20 && c < 0x7f {
			b = append(b, c)
		}
	}
	return string(b)
}

// WithUserAgent records the caller's user agent, cleaned by CleanUserAgent. It is what the
// client says it is, informational only: the auth service shows it in the session list.
func WithUserAgent(ctx context.Context, ua string) context.Context {
	return context.WithValue(ctx, userAgentKey, CleanUserAgent(ua))
}

// UserAgent returns the caller's user agent carried by ctx, or "".
func UserAgent(ctx context.Context) string {
	s, _ := ctx.Value(userAgentKey).(string)
	return s
}
