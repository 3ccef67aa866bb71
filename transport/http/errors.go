// Package httptransport is the HTTP side of every PMS service: gorilla/mux routes served by
// go-kit's transport/http, the typed decoders and encoders behind them, the contract's error
// body (API.md, "Errors") in one place, and the HTTP client endpoints that rebuild the same
// endpoint sets, so a caller holds a Service without caring that HTTP is under it.
package httptransport

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
)

// statusByKind is the contract's table of error kinds and HTTP statuses, the one place the
// mapping lives; DecodeError reads it backwards.
var statusByKind = map[errs.Kind]int{
	errs.InvalidArgument:      http.StatusBadRequest,
	errs.Unauthenticated:      http.StatusUnauthorized,
	errs.PermissionDenied:     http.StatusForbidden,
	errs.NotFound:             http.StatusNotFound,
	errs.MethodNotAllowed:     http.StatusMethodNotAllowed,
	errs.Gone:                 http.StatusGone,
	errs.Conflict:             http.StatusConflict,
	errs.PreconditionFailed:   http.StatusPreconditionFailed,
	errs.PayloadTooLarge:      http.StatusRequestEntityTooLarge,
	errs.UnsupportedMediaType: http.StatusUnsupportedMediaType,
	errs.RateLimited:          http.StatusTooManyRequests,
	errs.Unavailable:          http.StatusServiceUnavailable,
	errs.Timeout:              http.StatusGatewayTimeout,
	errs.Internal:             http.StatusInternalServerError,
	// Nobody reads it: the caller closed the connection first. nginx's 499 ("client closed
	// request") keeps it apart from every status a real answer has, in access logs too.
	errs.Canceled: StatusClientClosedRequest,
}

// StatusClientClosedRequest is the status recorded for a request whose caller went away.
const StatusClientClosedRequest = 499

// StatusOf returns the HTTP status of error kind k; an unknown kind is a bug, so 500.
func StatusOf(k errs.Kind) int {
	if s, ok := statusByKind[k]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// kindOfStatus guesses the kind of an error response whose body named none we know (a proxy's
// page, an older peer): the exact status when it is in the table, else by its class.
func kindOfStatus(status int) errs.Kind {
	for k, s := range statusByKind {
		if s == status {
			return k
		}
	}
	switch {
	case status == http.StatusBadGateway:
		return errs.Unavailable
	case status >= 400 && status < 500:
		return errs.InvalidArgument
	default:
		return errs.Internal
	}
}

// errorBody is the contract's error shape.
type errorBody struct {
	Error     errs.Kind         `json:"error"`
	Message   string            `json:"message"`
	Fields    map[string]string `json:"fields,omitempty"`
	RequestID string            `json:"requestId"`
}

// internalMessage replaces the message of every internal error: its text may come from a
// driver or a bug and is for logs, not callers.
const internalMessage = "internal error"

// EncodeError is the go-kit ErrorEncoder of every route, and what the router, the middleware
// and the panic handler write too, so every HTTP error of every service has the contract's
// body, status and request id. An error that is not an *errs.Error is an internal one and
// its text never reaches the client.
func EncodeError(ctx context.Context, err error, w http.ResponseWriter) {
	e := errs.As(err)
	if e == nil || !e.Kind.Known() {
		e = errs.New(errs.Internal, internalMessage)
	}
	body := errorBody{Error: e.Kind, Message: e.Message, Fields: e.Fields, RequestID: observe.RequestID(ctx)}
	if e.Kind == errs.Internal {
		body.Message, body.Fields = internalMessage, nil
	}
	if body.Message == "" {
		body.Message = strings.ReplaceAll(string(e.Kind), "_", " ")
	}
	h := w.Header()
	if body.RequestID == "" {
		body.RequestID = h.Get(observe.RequestIDHeader)
	}
	if body.RequestID == "" {
		body.RequestID = observe.NewRequestID()
		h.Set(observe.RequestIDHeader, body.RequestID)
	}
	// Headers a successful response may already have set describe a resource this response
	// does not carry.
	for _, k := range []string{"Etag", "Location", "Link", "X-Total-Count"} {
		h.Del(k)
	}
	if e.Kind == errs.RateLimited {
		h.Set("Retry-After", strconv.Itoa(retryAfterSeconds(e.RetryAfter)))
	}
	_ = WriteJSON(w, StatusOf(e.Kind), body)
}

// retryAfterSeconds rounds d up to whole seconds, at least one: Retry-After 0 would invite
// an immediate retry storm.
func retryAfterSeconds(d time.Duration) int {
	s := math.Ceil(d.Seconds())
	if s < 1 {
		return 1
	}
	if s > math.MaxInt32 {
		return math.MaxInt32
	}
	return int(s)
}

// maxErrorBody bounds how much of an error response a client reads: the contract body is
// small, and a misbehaving peer must not make a client buffer megabytes.
const maxErrorBody = 64 << 10

// DecodeError rebuilds the *errs.Error an HTTP error response carries, so that
// errors.Is(err, patient.ErrNotFound) holds on the client side as it does in the service.
// The kind is the body's error word when it is one of the contract's, else it follows the
// status; fields and Retry-After are kept, and the server's request id is kept in the cause
// for logs. It reads (at most 64 KiB of) the body but does not close it.
func DecodeError(resp *http.Response) error {
	var body errorBody
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_ = json.Unmarshal(raw, &body)
	kind := body.Error
	if !kind.Known() {
		kind = kindOfStatus(resp.StatusCode)
	}
	msg := body.Message
	if msg == "" {
		msg = strings.ToLower(http.StatusText(resp.StatusCode))
	}
	if msg == "" {
		msg = string(kind)
	}
	e := &errs.Error{
		Kind:    kind,
		Message: msg,
		Fields:  body.Fields,
		Err:     fmt.Errorf("http status %d, request id %q", resp.StatusCode, body.RequestID),
	}
	if kind == errs.RateLimited {
		e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"))
	}
	return e
}

// parseRetryAfter reads Retry-After as seconds or an HTTP date; anything else means one
// second, the least a server may ask for. Seconds are capped as EncodeError caps them
// (math.MaxInt32): more would overflow a Duration into a negative wait.
func parseRetryAfter(v string) time.Duration {
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 0 {
		return time.Duration(min(n, math.MaxInt32)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > time.Second {
			return d.Round(time.Second)
		}
	}
	return time.Second
}
