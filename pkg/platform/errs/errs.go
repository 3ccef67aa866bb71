// Package errs defines the error kinds of the PMS contract (API.md, "Errors").
//
// Domain packages declare their errors as values of *Error with one of these kinds, and
// every transport maps a kind to a status in exactly one place and back again in its client,
// so the kind of an error survives HTTP → gateway → gRPC → service and back.
package errs

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Kind is the contract's error word ("not_found", "conflict", ...). It is what clients see in
// the "error" field of an HTTP error body and in the ErrorInfo reason of a gRPC status.
type Kind string

// The kinds of the contract, in the order of its table.
const (
	InvalidArgument      Kind = "invalid_argument"
	Unauthenticated      Kind = "unauthenticated"
	PermissionDenied     Kind = "permission_denied"
	NotFound             Kind = "not_found"
	Gone                 Kind = "gone"
	Conflict             Kind = "conflict"
	PreconditionFailed   Kind = "precondition_failed"
	PayloadTooLarge      Kind = "payload_too_large"
	UnsupportedMediaType Kind = "unsupported_media_type"
	MethodNotAllowed     Kind = "method_not_allowed"
	RateLimited          Kind = "rate_limited"
	Unavailable          Kind = "unavailable"
	Timeout              Kind = "timeout"
	Internal             Kind = "internal"
	// Canceled is not an answer anyone receives: the caller went away (closed its
	// connection, cancelled its call) before the answer was ready. It has its own kind so
	// that metrics, logs, breakers, retries and alerts never mistake it for the upstream
	// failing (an outage anyone could cause by hanging up, issue 13).
	Canceled Kind = "canceled"
	// PasswordChangeRequired answers a login whose password was right but must be changed
	// first (a generated bootstrap password): a 401, so a client that does not know the kind
	// fails closed; Error.Challenge carries the set-password token that changes it.
	PasswordChangeRequired Kind = "password_change_required"
	// MFARequired answers a login whose password was right when a second factor is due
	// (TOTP or a recovery code): a 401 with a one-time Error.Challenge that /login/mfa
	// completes; with Error.Enrol the account must enrol first (--require-mfa-roles).
	MFARequired Kind = "mfa_required"
	// PossibleDuplicate refuses a registration that looks like a patient already registered
	// (issue 19): a 409, so a client that does not know the kind sees a conflict;
	// Error.Candidates carries the scored candidates, and the caller may confirm they are
	// different people (X-Confirm-Not-Duplicate).
	PossibleDuplicate Kind = "possible_duplicate"
	// Restricted answers a read of a restricted patient's data on a route that does not
	// take break-glass grants (billing's own routes): a 403 like permission_denied, so a
	// client that does not know the kind fails closed; the message names the route that
	// serves the data under an emergency grant.
	Restricted Kind = "restricted"
)

// Kinds lists every kind, so tests can walk them all.
var Kinds = []Kind{
	InvalidArgument, Unauthenticated, PermissionDenied, NotFound, Gone, Conflict,
	PreconditionFailed, PayloadTooLarge, UnsupportedMediaType, MethodNotAllowed, RateLimited,
	Unavailable, Timeout, Internal, Canceled, PasswordChangeRequired, MFARequired, PossibleDuplicate, Restricted,
}

// Known reports whether k is one of the contract's kinds; an unknown word from a peer is
// treated as Internal rather than passed on.
func (k Kind) Known() bool {
	for _, x := range Kinds {
		if x == k {
			return true
		}
	}
	return false
}

// Error is a contract error: a kind, a message safe to show to the caller (never patient
// data), optional per-field validation messages and, for RateLimited, a retry hint.
type Error struct {
	Kind       Kind
	Message    string
	Fields     map[string]string
	RetryAfter time.Duration
	// Challenge is the opaque one-time token an MFARequired or PasswordChangeRequired error
	// hands the caller to complete its login with; a secret, so never logged.
	Challenge string
	// Enrol marks an MFARequired error whose account has no second factor yet and must
	// enrol one (with the challenge) before it can log in.
	Enrol bool
	// Candidates is the JSON array of scored candidates a PossibleDuplicate error carries
	// (pkg/patient.Candidate), opaque here so that every transport passes it on unchanged.
	Candidates json.RawMessage
	// Err is an optional cause kept for logs; it is never sent to a client.
	Err error
}

// Error implements error with the message only; the cause stays in Unwrap for logs.
func (e *Error) Error() string {
	if e.Message == "" {
		return string(e.Kind)
	}
	return e.Message
}

// Unwrap exposes the cause to errors.Is/As.
func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, pkg.ErrNotFound) hold for any error of the same kind, which is what
// survives a trip over the wire: a client rebuilds the kind, not the exact value.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Kind == e.Kind
}

// New returns an error of kind k with a caller-safe message.
func New(k Kind, msg string) *Error { return &Error{Kind: k, Message: msg} }

// Newf is New with formatting; never format patient data into it.
func Newf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an error of kind k whose cause is err (kept for logs, hidden from clients).
func Wrap(k Kind, msg string, err error) *Error { return &Error{Kind: k, Message: msg, Err: err} }

// Invalid returns an InvalidArgument error carrying per-field messages.
func Invalid(fields map[string]string) *Error {
	return &Error{Kind: InvalidArgument, Message: "the request has invalid fields", Fields: fields}
}

// KindOf returns the kind of err: its *Error's kind, Timeout for context deadlines, Canceled
// for a cancelled context, Internal for anything else, and "" for nil.
func KindOf(err error) Kind {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	if errors.Is(err, errDeadline) {
		return Timeout
	}
	if errors.Is(err, errCanceled) {
		return Canceled
	}
	return Internal
}

// As returns err as an *Error, converting anything else to an Internal error whose message
// does not leak the cause.
func As(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, errDeadline) {
		return &Error{Kind: Timeout, Message: "the request timed out", Err: err}
	}
	if errors.Is(err, errCanceled) {
		return &Error{Kind: Canceled, Message: CanceledMessage, Err: err}
	}
	return &Error{Kind: Internal, Message: "internal error", Err: err}
}

// FieldList renders fields in a stable order for logs and messages.
func FieldList(fields map[string]string) string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

// Fields collects validation messages; the zero value is ready to use.
type Fields map[string]string

// Add records msg for field unless that field already has a message (the first problem
// found is the one reported).
func (f *Fields) Add(field, msg string) {
	if *f == nil {
		*f = map[string]string{}
	}
	if _, ok := (*f)[field]; !ok {
		(*f)[field] = msg
	}
}

// Err returns an InvalidArgument error when any field was added, else nil.
func (f Fields) Err() error {
	if len(f) == 0 {
		return nil
	}
	return Invalid(f)
}

// Label is err's metric label: "ok" for nil, else its kind. Business counters use it, so a
// result label has the same values in every service.
func Label(err error) string {
	if err == nil {
		return "ok"
	}
	return string(KindOf(err))
}
