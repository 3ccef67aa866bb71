package httptransport

import (
	"context"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/transport/wire"
)

// This file holds the pieces every service's routes share: reading a path id, refusing a
// query where a route takes none, reading If-Match and Idempotency-Key with the contract's
// rules (transport/wire), and the plain encoders.

// idOnly reads the path id of a route that takes nothing else.
func idOnly(r *http.Request) (string, error) {
	id, err := pathID(r)
	if err != nil {
		return "", err
	}
	return id, noQuery(r)
}

// pathID returns the {id} path variable as given; the service judges its form, the transport
// only its size (wire.MaxIDBytes) and that it is plain text (a percent-encoded invalid UTF-8
// byte would otherwise fail as an internal error where gRPC marshals it).
func pathID(r *http.Request) (string, error) {
	id := mux.Vars(r)["id"]
	if len(id) > wire.MaxIDBytes {
		return "", errs.Invalid(map[string]string{"id": "must be at most " + strconv.Itoa(wire.MaxIDBytes) + " bytes"})
	}
	if !plainText(id) {
		return "", errs.Invalid(map[string]string{"id": plainTextMessage})
	}
	return id, nil
}

// noQuery rejects any query parameter on a route that takes none.
func noQuery(r *http.Request) error {
	_, err := ParseQuery(r)
	return err
}

// idempotencyKey reads the optional Idempotency-Key header (wire.IdempotencyKey).
func idempotencyKey(h http.Header) (string, error) {
	return wire.IdempotencyKey(h.Values(wire.HeaderIdempotencyKey))
}

// ifMatchVersion reads the optional If-Match header as a record version
// (wire.IfMatchVersion).
func ifMatchVersion(h http.Header) (int64, error) {
	return wire.IfMatchVersion(h.Values(wire.HeaderIfMatch))
}

// encodeOK writes 200 with the response as the body.
func encodeOK[Resp any](_ context.Context, _ http.Header, resp Resp) (int, any) {
	return http.StatusOK, resp
}

// encodeNoContent writes 204 and no body, whatever the response.
func encodeNoContent[Resp any](context.Context, http.Header, Resp) (int, any) {
	return http.StatusNoContent, nil
}

// nonNil makes an empty result encode as [] rather than null, as the contract's arrays are.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
