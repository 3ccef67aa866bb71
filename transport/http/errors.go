// Package httptransport is the HTTP side of every PMS service: gorilla/mux routes served by
// go-kit's transport/http, the typed decoders and encoders behind them, and the HTTP client
// endpoints that rebuild the same endpoint sets, so a caller holds a Service without caring
// that HTTP is under it. The contract's body, header and error rules it applies live in
// transport/wire, which the Kafka transport applies too.
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
	"github.com/pms/pms/transport/wire"
)

// StatusOf returns the HTTP status of error kind k (wire.StatusOf, the contract's one table).
func StatusOf(k errs.Kind) int { return wire.StatusOf(k) }

// EncodeError is the go-kit ErrorEncoder of every route, and what the router, the middleware
// and the panic handler write too, so every HTTP error of every service has the contract's
// body, status and request id. An error that is not an *errs.Error is an internal one and
// its text never reaches the client.
func EncodeError(ctx context.Context, err error, w http.ResponseWriter) {
	status, body := wire.Error(ctx, err)
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
	for _, k := range []string{"Etag", "Location", "Link", "X-Total-Count", TotalEstimatedHeader} {
		h.Del(k)
	}
	// Rate limiting always says when to come back; unavailable does when it knows (a call
	// shed by the gateway's admission control: 503 with Retry-After, as RFC 9110 has it).
	if e := errs.As(err); body.Error == errs.RateLimited || body.Error == errs.Unavailable && e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(retryAfterSeconds(e.RetryAfter)))
	}
	_ = WriteJSON(w, status, body)
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
	var body wire.ErrorBody
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_ = json.Unmarshal(raw, &body)
	kind := body.Error
	if !kind.Known() {
		kind = wire.KindOfStatus(resp.StatusCode)
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
	if kind == errs.MFARequired || kind == errs.PasswordChangeRequired {
		e.Challenge, e.Enrol = body.Challenge, body.Enrol && kind == errs.MFARequired
	}
	if kind == errs.PossibleDuplicate {
		e.Candidates = body.Candidates
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
