package billing

import (
	"fmt"

	"github.com/pms/pms/pkg/platform/errs"
)

// Action is something done to an invoice that may change its state.
type Action string

// The actions of the state machine.
const (
	ActIssue Action = "issue"
	ActPay   Action = "pay"
	ActVoid  Action = "void"
)

// Actions lists every action, for tests that walk the whole table.
var Actions = []Action{ActIssue, ActPay, ActVoid}

// transitions is the whole state machine: from a state, an action leads to a state. A pay on
// an open invoice leads to paid only once the invoice is fully paid (the service decides
// with the amounts); a partial payment keeps it open. Anything not listed is refused.
var transitions = map[Status]map[Action]Status{
	StatusDraft: {ActIssue: StatusOpen, ActVoid: StatusVoid},
	StatusOpen:  {ActPay: StatusPaid, ActVoid: StatusVoid},
}

// Next returns the state action leads to from state from, or a conflict error (409) naming
// both when the transition is not allowed.
func Next(from Status, a Action) (Status, error) {
	if to, ok := transitions[from][a]; ok {
		return to, nil
	}
	return "", &errs.Error{Kind: errs.Conflict, Message: fmt.Sprintf("cannot %s an invoice that is %s", a, from)}
}
