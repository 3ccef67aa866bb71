package wire

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
)

// statusByKind is the contract's table of error kinds and HTTP statuses (API.md, "Errors"),
// the one place the mapping lives: REST answers with these statuses and Kafka command replies
// carry them in their status header. KindOfStatus reads it backwards.
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
	// A right password with a step still due: 401, so a client that knows neither kind
	// fails closed.
	errs.PasswordChangeRequired: http.StatusUnauthorized,
	errs.MFARequired:            http.StatusUnauthorized,
	// A registration that looks like a patient already registered (issue 19): a conflict to
	// a client that does not know the kind.
	errs.PossibleDuplicate: http.StatusConflict,
	// A restricted record's data refused where no grant is taken: a 403.
	errs.Restricted: http.StatusForbidden,
}

// StatusClientClosedRequest is the status recorded for a request whose caller went away.
const StatusClientClosedRequest = 499

// StatusOf returns the status of error kind k; an unknown kind is a bug, so 500.
func StatusOf(k errs.Kind) int {
	if s, ok := statusByKind[k]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// KindOfStatus guesses the kind of an error answer whose body named none we know (a proxy's
// page, an older peer): the exact status when it is in the table, else by its class.
func KindOfStatus(status int) errs.Kind {
	// Several kinds share 401; a bare 401 says nothing of a challenge, so it is the plain
	// unauthenticated (the map's order is random).
	if status == http.StatusUnauthorized {
		return errs.Unauthenticated
	}
	// Likewise a bare 403 is the plain permission_denied, not restricted, and a bare 409 the
	// plain conflict, not possible_duplicate (which always names itself in its body).
	switch status {
	case http.StatusForbidden:
		return errs.PermissionDenied
	case http.StatusConflict:
		return errs.Conflict
	}
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

// ErrorBody is the contract's error shape, the body of every error a REST route or a Kafka
// command reply carries.
type ErrorBody struct {
	Error     errs.Kind         `json:"error"`
	Message   string            `json:"message"`
	Fields    map[string]string `json:"fields,omitempty"`
	RequestID string            `json:"requestId"`
	// Challenge is the one-time token of an mfa_required or password_change_required
	// answer; Enrol says the account must enrol a second factor with it first.
	Challenge string `json:"challenge,omitempty"`
	Enrol     bool   `json:"enrol,omitempty"`
	// Candidates are the scored candidates of a possible_duplicate answer (docs/api.md,
	// "Duplicates").
	Candidates json.RawMessage `json:"candidates,omitempty"`
}

// InternalMessage replaces the message of every internal error: its text may come from a
// driver or a bug and is for logs, not callers.
const InternalMessage = "internal error"

// Error returns the contract's answer to err: its status and body, with the request id ctx
// carries ("" when none: the transport then supplies one). An error that is not an
// *errs.Error of a known kind is an internal one, and an internal error's text and fields
// never reach the caller.
func Error(ctx context.Context, err error) (int, ErrorBody) {
	e := errs.As(err)
	if e == nil || !e.Kind.Known() {
		e = errs.New(errs.Internal, InternalMessage)
	}
	body := ErrorBody{Error: e.Kind, Message: e.Message, Fields: e.Fields, RequestID: observe.RequestID(ctx)}
	switch e.Kind {
	case errs.MFARequired:
		body.Challenge, body.Enrol = e.Challenge, e.Enrol
	case errs.PasswordChangeRequired:
		body.Challenge = e.Challenge
	case errs.PossibleDuplicate:
		body.Candidates = e.Candidates
		if len(body.Candidates) == 0 {
			body.Candidates = json.RawMessage("[]")
		}
	}
	if e.Kind == errs.Internal {
		body.Message, body.Fields = InternalMessage, nil
	}
	if body.Message == "" {
		body.Message = strings.ReplaceAll(string(e.Kind), "_", " ")
	}
	return StatusOf(e.Kind), body
}
