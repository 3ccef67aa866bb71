package auth

import (
	"context"

	"github.com/pms/pms/pkg/platform/errs"
)

// auditedRead audits a read of users or of the audit log (issue 17: reads of user lists and
// audit logs are accountable too) and returns v only when the entry was written: a read is
// never served unaudited (503 instead).
func auditedRead[T any](s *service, ctx context.Context, action, subject string, v T, err error) (T, error) {
	if aerr := s.record(ctx, action, subject, outcome(err)); aerr != nil && err == nil {
		var zero T
		if errs.KindOf(aerr) == errs.Canceled {
			return zero, aerr
		}
		return zero, errs.Wrap(errs.Unavailable, "the audit log is unavailable", aerr)
	}
	return v, err
}
