package errs

import "context"

// errDeadline is context.DeadlineExceeded; kept in one place so KindOf maps it to Timeout.
var errDeadline = context.DeadlineExceeded
