package audit

import (
	"context"

	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/observe"
)

// Appender is what a denial recorder writes to (a *Writer).
type Appender interface {
	Append(ctx context.Context, e Entry) error
}

// Denied returns the authz.DeniedFunc of a service: every call the guard refuses (401, 403)
// becomes an audit entry with outcome "denied", the action actions[method] (op.Table.Actions;
// a method without one is not audited), the subject subject(request) returns (may be nil), and
// the actor when the token was valid. API.md wants access audited "allowed or denied".
func Denied(w Appender, actions map[string]string, subject func(request any) string) authz.DeniedFunc {
	return func(ctx context.Context, method string, req any, _ error) {
		action, ok := actions[method]
		if !ok {
			return
		}
		var id string
		if subject != nil {
			id = subject(req)
		}
		actor, role := authz.Actor(ctx)
		// Detached from the caller's cancellation: a refused caller that hangs up at once
		// still leaves its row (issue 13).
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ChangeTimeout)
		defer cancel()
		_ = w.Append(ctx, Entry{Actor: actor, Role: role, Action: action, SubjectID: id, Outcome: OutcomeDenied,
			RequestID: observe.RequestID(ctx), ClientAddress: observe.ClientAddr(ctx)})
	}
}
