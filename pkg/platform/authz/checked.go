package authz

import "context"

type checkedKey struct{}

// WithCheckedBy returns ctx knowing that service (the patient service) has already checked
// the caller's access to the patient the call is about — the break-glass grant of a
// restricted record — and recorded the disclosure, so the callee serves what it would
// refuse to a direct caller (billing's reads of a restricted patient, docs/audit.md). Only a
// transport sets it, and only from a caller it believes: the service's own client
// certificate, or a trusted proxy address when there is no TLS (grpctransport).
func WithCheckedBy(ctx context.Context, service string) context.Context {
	return context.WithValue(ctx, checkedKey{}, service)
}

// CheckedBy is the service that checked the caller's access to the call's patient
// (WithCheckedBy), or "".
func CheckedBy(ctx context.Context) string {
	name, _ := ctx.Value(checkedKey{}).(string)
	return name
}
