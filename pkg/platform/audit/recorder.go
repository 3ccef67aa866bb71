package audit

import (
	"context"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
)

// Recorder writes a service's audit entries for its own operations: who (from the context),
// what, about which subject, with the outcome the operation's error implies. Every service
// audits the same way, so the rules live here once.
type Recorder struct {
	W      Appender
	Logger log.Logger // for audit failures after a committed change; nil discards
}

// Record writes the entry for action on subject and returns once it is stored.
func (r Recorder) Record(ctx context.Context, action, subject string, err error) error {
	actor, role := authz.Actor(ctx)
	return r.W.Append(ctx, Entry{
		Actor: actor, Role: role, Action: action, SubjectID: subject, Outcome: Outcome(err),
		RequestID: observe.RequestID(ctx), ClientAddress: observe.ClientAddr(ctx),
	})
}

// SettleCommitted is the first half of Change for services with their own recorder (auth):
// when ctx's change recorded its entry of action in its committed transaction (WithPending,
// InTx) and w can settle, it asks w to chain it now and reports true — the change is audited,
// nothing else is to be written. A failed settle is logged: the entry stays pending and the
// writer chains it later.
func SettleCommitted(ctx context.Context, w Appender, logger log.Logger, action string) bool {
	p := pendingFrom(ctx)
	if p == nil || !p.committed.Load() || p.e.Action != action {
		return false
	}
	s, ok := w.(Settler)
	if !ok {
		return false
	}
	if serr := s.Settle(ctx); serr != nil && logger != nil {
		_ = level.Warn(logger).Log("msg", "audit entry stays pending; the writer chains it later", "action", action,
			"subject_id", p.e.SubjectID, "request_id", observe.RequestID(ctx), "err", serr)
	}
	return true
}

// ChangeTimeout bounds the audit write that follows a change. It is the audit writer's own
// batch timeout: the caller no longer bounds it (see Change).
const ChangeTimeout = 10 * time.Second

// Change audits a change after its outcome is known. The change itself is already committed
// (with its history naming the actor), so an audit failure is logged rather than turned into
// an error that would make a client retry a done change. The entry is written on a context
// detached from the caller's cancellation, with its own ChangeTimeout: a client that hangs up
// right after the commit must not leave an acknowledged change unaudited (issue 13).
//
// A change whose transaction recorded its entry (WithPending, InTx) is already audited: Change
// then only asks the writer to chain it now, so the entry is in audit_log when the client
// hears back; if that fails the entry stays pending and the writer chains it later.
func (r Recorder) Change(ctx context.Context, action, subject string, err error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ChangeTimeout)
	defer cancel()
	if err == nil && SettleCommitted(ctx, r.W, r.Logger, action) {
		return
	}
	if aerr := r.Record(ctx, action, subject, err); aerr != nil && r.Logger != nil {
		_ = level.Error(r.Logger).Log("msg", "audit write failed after change", "action", action,
			"subject_id", subject, "request_id", observe.RequestID(ctx), "err", aerr)
	}
}

// Read audits a read and returns the value only when both the read and its audit succeeded:
// protected data is never served unaudited (503 instead).
func Read[T any](r Recorder, ctx context.Context, action, subject string, v T, err error) (T, error) {
	if aerr := r.Record(ctx, action, subject, err); aerr != nil && err == nil {
		var zero T
		if errs.KindOf(aerr) == errs.Canceled {
			return zero, aerr // the caller went away: not the audit log's failure
		}
		return zero, errs.Wrap(errs.Unavailable, "the audit log is unavailable", aerr)
	}
	return v, err
}

// Outcome is the audit outcome an operation's error implies.
func Outcome(err error) string {
	switch errs.KindOf(err) {
	case "":
		return OutcomeSuccess
	case errs.Unauthenticated, errs.PermissionDenied, errs.MFARequired, errs.PasswordChangeRequired, errs.Restricted:
		return OutcomeDenied
	case errs.NotFound:
		return OutcomeNotFound
	case errs.InvalidArgument, errs.Conflict, errs.PreconditionFailed, errs.Gone, errs.RateLimited,
		errs.PayloadTooLarge, errs.UnsupportedMediaType, errs.PossibleDuplicate:
		return OutcomeRejected
	default:
		return OutcomeError
	}
}
