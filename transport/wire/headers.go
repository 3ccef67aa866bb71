package wire

import (
	"context"
	"strconv"
	"strings"

	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/errs"
)

// Header names of the contract, as REST writes them; Kafka carries the same headers in lower
// case and reports problems under these names too.
const (
	HeaderIfMatch        = "If-Match"
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderAuthorization  = "Authorization"
)

// MaxIDBytes bounds a path id (or a Kafka command's id header) before it reaches the
// service: ids are UUIDs (36 bytes), and a megabyte of id has no business in a log line or a
// database query.
const MaxIDBytes = 64

// MaxIdempotencyKey is the longest Idempotency-Key accepted (API.md: 1 to 200 characters).
const MaxIdempotencyKey = 200

// SingleValue returns the one value of header name (trimmed), "" when absent, and an error
// when it is given more than once: two preconditions or two keys are a client bug, not a
// choice.
func SingleValue(name string, values []string) (string, error) {
	switch len(values) {
	case 0:
		return "", nil
	case 1:
		return strings.TrimSpace(values[0]), nil
	}
	return "", errs.Invalid(map[string]string{name: "must be given at most once"})
}

// IdempotencyKey reads the optional Idempotency-Key from its header values: 1 to 200
// printable ASCII characters, at most once.
func IdempotencyKey(values []string) (string, error) {
	key, err := SingleValue(HeaderIdempotencyKey, values)
	if err != nil || key == "" {
		return "", err
	}
	if len(key) > MaxIdempotencyKey || !PrintableASCII(key) {
		return "", errs.Invalid(map[string]string{HeaderIdempotencyKey: "must be 1 to 200 printable ASCII characters"})
	}
	return key, nil
}

// HeaderConfirmNotDuplicate names the live patients holding a create's or update's email
// whom the caller confirms are different people (issue 19): their ids, separated by commas.
const HeaderConfirmNotDuplicate = "X-Confirm-Not-Duplicate"

// MaxConfirmNotDuplicate bounds the header's length (50 ids and their commas fit).
const MaxConfirmNotDuplicate = 2048

// ConfirmNotDuplicate reads X-Confirm-Not-Duplicate from its header values (one or several,
// each ids separated by commas); the service checks that each is a patient id.
func ConfirmNotDuplicate(values []string) ([]string, error) {
	var ids []string
	n := 0
	for _, v := range values {
		if n += len(v); n > MaxConfirmNotDuplicate || !PrintableASCII(v) {
			return nil, errs.Invalid(map[string]string{HeaderConfirmNotDuplicate: "must be patient ids separated by commas"})
		}
		for _, id := range strings.Split(v, ",") {
			if id = strings.TrimSpace(id); id != "" {
				ids = append(ids, id)
			}
		}
	}
	return ids, nil
}

// IfMatchVersion reads the optional If-Match from its header values as a record version:
// `"3"`, `W/"3"` and `3` mean 3; absent and `*` mean any version (0). Anything else is
// invalid_argument, not a silently unconditional write.
func IfMatchVersion(values []string) (int64, error) {
	v, err := SingleValue(HeaderIfMatch, values)
	if err != nil || v == "" || v == "*" {
		return 0, err
	}
	s := strings.TrimPrefix(v, "W/")
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	} else if s != v {
		s = "" // W/ without quotes
	}
	n, perr := strconv.ParseInt(s, 10, 64)
	if perr != nil || n < 1 || strings.HasPrefix(s, "+") {
		return 0, errs.Invalid(map[string]string{HeaderIfMatch: `must be a version such as "3", W/"3" or *`})
	}
	return n, nil
}

// ETag is the strong entity tag of a record version, what IfMatchVersion reads back.
func ETag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

// PrintableASCII reports whether s holds only printable ASCII characters (space included).
func PrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// TokenToContext returns ctx carrying the bearer token of an Authorization value, for the
// authentication middleware (authz) and for forwarding on the caller's behalf (API.md, "Who
// acts"). It judges only the value's syntax: one that no bearer token of RFC 6750 could have
// (authz.BearerToken; gRPC metadata would refuse it) carries no token and gets 401 wherever
// one is needed. Verifying the token is authz's job, behind the endpoint.
func TokenToContext(ctx context.Context, authorization string) context.Context {
	if token := authz.BearerToken(authorization); token != "" {
		return authz.WithToken(ctx, token)
	}
	return ctx
}
