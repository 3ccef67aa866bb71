package billing

import (
	"testing"

	"github.com/pms/pms/pkg/platform/errs"
)

// TestStateMachine walks every state × every action against the contract's table: draft →
// open on issue, open → paid on (full) payment, draft|open → void; anything else is a 409.
func TestStateMachine(t *testing.T) {
	want := map[Status]map[Action]Status{
		StatusDraft: {ActIssue: StatusOpen, ActPay: "", ActVoid: StatusVoid},
		StatusOpen:  {ActIssue: "", ActPay: StatusPaid, ActVoid: StatusVoid},
		StatusPaid:  {ActIssue: "", ActPay: "", ActVoid: ""},
		StatusVoid:  {ActIssue: "", ActPay: "", ActVoid: ""},
	}
	if len(want) != len(Statuses) {
		t.Fatalf("the table has %d states, Statuses %d", len(want), len(Statuses))
	}
	for _, from := range Statuses {
		if len(want[from]) != len(Actions) {
			t.Fatalf("the table has %d actions for %s, Actions %d", len(want[from]), from, len(Actions))
		}
		for _, a := range Actions {
			to, err := Next(from, a)
			if w := want[from][a]; w == "" {
				if errs.KindOf(err) != errs.Conflict || to != "" {
					t.Errorf("%s %s: %q, %v; want a conflict", a, from, to, err)
				}
			} else if err != nil || to != w {
				t.Errorf("%s %s: %q, %v; want %q", a, from, to, err, w)
			}
		}
	}
	if _, err := Next("bogus", ActIssue); errs.KindOf(err) != errs.Conflict {
		t.Errorf("unknown state: %v", err)
	}
}
