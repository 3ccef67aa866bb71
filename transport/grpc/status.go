// Package grpctransport serves the services' go-kit endpoint sets over gRPC and builds the
// same endpoint sets from a gRPC connection, so a caller holds a service interface without
// caring that gRPC is under it. It is also where errors become gRPC statuses and back
// (status.go), and where every service's gRPC server is set up alike (server.go).
package grpctransport

import (
	"context"
	"encoding/json"
	"errors"
	"sort"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/pms/pms/pkg/platform/errs"
)

// ErrorDomain is the ErrorInfo domain of every PMS status. A detail from another domain is
// not ours to interpret, so FromStatus falls back to the status code for it.
const ErrorDomain = "pms"

// ErrorInfo metadata keys of a login challenge (mfa_required, password_change_required).
const (
	metaChallenge = "challenge"
	metaEnrol     = "enrol"
	// metaCandidates is the JSON array of a possible_duplicate's scored candidates.
	metaCandidates = "candidates"
)

// kindCode is one row of the contract's error table (API.md, "Errors"): a kind, the gRPC
// code it travels as, and the message a client shows when a status arrives without our
// detail (a proxy's or grpc-go's own status), whose text is not safe to pass on.
type kindCode struct {
	kind    errs.Kind
	code    codes.Code
	message string
}

// kindCodes is the one place kinds and codes meet. Several kinds share a code (gone and
// not_found, rate_limited and payload_too_large); the ErrorInfo detail tells them apart.
var kindCodes = []kindCode{
	{errs.InvalidArgument, codes.InvalidArgument, "the request is invalid"},
	{errs.Unauthenticated, codes.Unauthenticated, "authentication is required"},
	{errs.PermissionDenied, codes.PermissionDenied, "permission denied"},
	{errs.NotFound, codes.NotFound, "not found"},
	{errs.Gone, codes.NotFound, "the record was deleted"},
	{errs.Conflict, codes.AlreadyExists, "the request conflicts with the current state"},
	{errs.PreconditionFailed, codes.FailedPrecondition, "the precondition failed"},
	{errs.PayloadTooLarge, codes.ResourceExhausted, "the request is too large"},
	{errs.UnsupportedMediaType, codes.InvalidArgument, "unsupported media type"},
	{errs.MethodNotAllowed, codes.Unimplemented, "method not allowed"},
	{errs.RateLimited, codes.ResourceExhausted, "too many requests"},
	{errs.Unavailable, codes.Unavailable, "the service is unavailable"},
	{errs.Timeout, codes.DeadlineExceeded, "the request timed out"},
	{errs.Internal, codes.Internal, "internal error"},
	{errs.Canceled, codes.Canceled, errs.CanceledMessage},
	// Both are Unauthenticated: a client that does not know them fails closed.
	{errs.PasswordChangeRequired, codes.Unauthenticated, "the password must be changed"},
	{errs.MFARequired, codes.Unauthenticated, "a second factor is required"},
	// AlreadyExists like a conflict: a client that does not know the kind sees one.
	{errs.PossibleDuplicate, codes.AlreadyExists, "the patient may already be registered"},
	// PermissionDenied: a client that does not know it fails closed.
	{errs.Restricted, codes.PermissionDenied, "the patient record is restricted"},
}

// codeKinds maps a code without our detail back to a kind. Where several kinds share a
// code the first is meant: grpc-go itself only says ResourceExhausted for a message over
// the size limit, and NotFound without detail says nothing of a deletion. Codes the
// contract never sends come from grpc-go or a proxy and are mapped to their nearest kind.
var codeKinds = map[codes.Code]errs.Kind{
	codes.InvalidArgument:    errs.InvalidArgument,
	codes.OutOfRange:         errs.InvalidArgument,
	codes.Unauthenticated:    errs.Unauthenticated,
	codes.PermissionDenied:   errs.PermissionDenied,
	codes.NotFound:           errs.NotFound,
	codes.AlreadyExists:      errs.Conflict,
	codes.Aborted:            errs.Conflict,
	codes.FailedPrecondition: errs.PreconditionFailed,
	codes.ResourceExhausted:  errs.PayloadTooLarge,
	codes.Unimplemented:      errs.MethodNotAllowed,
	codes.Unavailable:        errs.Unavailable,
	codes.DeadlineExceeded:   errs.Timeout,
	// A cancelled call was given up by its caller: never the upstream's fault (issue 13).
	codes.Canceled: errs.Canceled,
}

// kindRows indexes kindCodes by kind.
var kindRows = func() map[errs.Kind]kindCode {
	m := make(map[errs.Kind]kindCode, len(kindCodes))
	for _, r := range kindCodes {
		m[r.kind] = r
	}
	return m
}()

// Code returns the gRPC code kind k travels as; an unknown kind is Internal.
func Code(k errs.Kind) codes.Code {
	if r, ok := kindRows[k]; ok {
		return r.code
	}
	return codes.Internal
}

// ToStatus converts err into the gRPC status error a server returns, so that the client's
// FromStatus can rebuild the same *errs.Error: the kind in an ErrorInfo detail, field errors
// in a BadRequest detail, the retry hint in a RetryInfo detail. A non-contract error is
// Internal, and an Internal error shows only "internal error": its cause stays in the
// server's logs. A status error passes through unchanged; nil stays nil.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(interface{ GRPCStatus() *status.Status }); ok {
		return err
	}
	e := errs.As(err)
	kind, msg := e.Kind, e.Error()
	if !kind.Known() || kind == errs.Internal {
		kind, msg = errs.Internal, kindRows[errs.Internal].message
	}
	st := status.New(Code(kind), msg)

	info := &errdetails.ErrorInfo{Reason: string(kind), Domain: ErrorDomain}
	if (kind == errs.MFARequired || kind == errs.PasswordChangeRequired) && e.Challenge != "" {
		info.Metadata = map[string]string{metaChallenge: e.Challenge}
		if e.Enrol {
			info.Metadata[metaEnrol] = "true"
		}
	}
	if kind == errs.PossibleDuplicate && len(e.Candidates) > 0 {
		info.Metadata = map[string]string{metaCandidates: string(e.Candidates)}
	}
	details := []protoadapt.MessageV1{info}
	if len(e.Fields) > 0 && kind != errs.Internal {
		details = append(details, badRequest(e.Fields))
	}
	if kind == errs.RateLimited {
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(e.RetryAfter)})
	}
	withDetails, derr := st.WithDetails(details...)
	if derr != nil {
		// Only a detail that cannot be marshalled gets here; the code still tells the kind
		// apart for all but the shared codes.
		return st.Err()
	}
	return withDetails.Err()
}

// badRequest lists field errors in field order, so the same error always encodes the same.
func badRequest(fields map[string]string) *errdetails.BadRequest {
	names := make([]string, 0, len(fields))
	for f := range fields {
		names = append(names, f)
	}
	sort.Strings(names)
	br := &errdetails.BadRequest{}
	for _, f := range names {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: f, Description: fields[f]})
	}
	return br
}

// FromStatus converts an error returned by a gRPC call back into the *errs.Error the server
// raised, so errors.Is(err, patient.ErrNotFound) holds on the client. The kind comes from
// the ErrorInfo detail; without one (a proxy, grpc-go itself, a connection failure) it comes
// from the code, with a generic message rather than the status text. A context deadline of
// the caller is a timeout, its cancellation Canceled. The original error is kept as the cause
// for logs.
// An *errs.Error passes through unchanged; nil stays nil.
func FromStatus(err error) error {
	if err == nil {
		return nil
	}
	var e *errs.Error
	if errors.As(err, &e) {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &errs.Error{Kind: errs.Timeout, Message: kindRows[errs.Timeout].message, Err: err}
	}
	if errors.Is(err, context.Canceled) {
		return &errs.Error{Kind: errs.Canceled, Message: errs.CanceledMessage, Err: err}
	}
	st, ok := status.FromError(err)
	if !ok {
		// Not a status: a failure on this side of the wire (an encoder, a closed connection).
		return errs.As(err)
	}
	out := &errs.Error{Message: st.Message(), Err: err}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			if k := errs.Kind(d.GetReason()); d.GetDomain() == ErrorDomain && k.Known() {
				out.Kind = k
				if k == errs.MFARequired || k == errs.PasswordChangeRequired {
					out.Challenge = d.GetMetadata()[metaChallenge]
					out.Enrol = k == errs.MFARequired && d.GetMetadata()[metaEnrol] == "true"
				}
				if c := d.GetMetadata()[metaCandidates]; k == errs.PossibleDuplicate && json.Valid([]byte(c)) {
					out.Candidates = json.RawMessage(c)
				}
			}
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				if out.Fields == nil {
					out.Fields = map[string]string{}
				}
				out.Fields[v.GetField()] = v.GetDescription()
			}
		case *errdetails.RetryInfo:
			if d.GetRetryDelay().IsValid() {
				out.RetryAfter = d.GetRetryDelay().AsDuration()
			}
		}
	}
	if out.Kind == "" {
		k, known := codeKinds[st.Code()]
		if !known {
			k = errs.Internal
		}
		out.Kind, out.Message = k, kindRows[k].message
	}
	return out
}
