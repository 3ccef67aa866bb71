package errs

import (
	"context"
	"errors"
)

// errDeadline and errCanceled are the context errors; kept in one place so KindOf maps them
// to Timeout and Canceled.
var (
	errDeadline = context.DeadlineExceeded
	errCanceled = context.Canceled
)

// CanceledMessage is the message of every Canceled error (nobody reads it but the logs).
const CanceledMessage = "the caller went away before the answer was ready"

// FromContext is the contract error of a context that ended: Timeout for a deadline that
// passed, Canceled for a caller that went away, nil while ctx is live. msg describes what
// timed out ("the database did not answer in time").
func FromContext(err error, msg string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errDeadline):
		return Wrap(Timeout, msg, err)
	case errors.Is(err, errCanceled):
		return Wrap(Canceled, CanceledMessage, err)
	}
	return nil
}
