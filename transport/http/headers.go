package httptransport

import "net/http"

// IfMatchVersion reads an optional If-Match header as a record version, with the rules of
// every HTTP route (`"3"`, `W/"3"` and `3` mean 3; absent and `*` mean any, 0; anything else
// is InvalidArgument). The Kafka transport reads its if-match header through it, so both
// transports judge a precondition alike.
func IfMatchVersion(h http.Header) (int64, error) { return ifMatchVersion(h) }

// IdempotencyKey reads an optional Idempotency-Key header (1 to 200 printable ASCII
// characters, at most once), with the rules of every HTTP route.
func IdempotencyKey(h http.Header) (string, error) { return idempotencyKey(h) }
