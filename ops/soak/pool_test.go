package soak_test

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestPoolSpreadsBilling checks that created patients join the billing work once they are
// billableAfter old, in the order they were created, and not before: billing work kept on
// the seeded patients alone grows each one's invoices through a soak.
func TestPoolSpreadsBilling(t *testing.T) {
	var p pool
	seeded := &patientRef{id: "seeded"}
	p.billable = []*patientRef{seeded}
	now := time.Now()
	old1, old2, young := &patientRef{id: "old1"}, &patientRef{id: "old2"}, &patientRef{id: "young"}
	p.patients = []*patientRef{seeded, old1, old2, young}
	p.pending = []pendingRef{{old1, now.Add(-3 * billableAfter)}, {old2, now.Add(-2 * billableAfter)}, {young, now}}
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[string]bool{}
	for range 200 {
		seen[p.pickBillable(rng).id] = true
	}
	for _, id := range []string{"seeded", "old1", "old2"} {
		if !seen[id] {
			t.Errorf("%s was never picked for billing work", id)
		}
	}
	if seen["young"] {
		t.Error("a patient created just now was picked for billing work: its account may not be there yet")
	}
	if len(p.pending) != 1 || p.pending[0].p != young {
		t.Fatalf("pending after the picks: %d entries, want only the young patient", len(p.pending))
	}
	if got := p.billable[1:]; len(got) != 2 || got[0] != old1 || got[1] != old2 {
		t.Fatalf("billable after the seeded patient: %v, want old1 then old2", got)
	}
	p.promote(now.Add(time.Second))
	if len(p.pending) != 0 || p.billable[len(p.billable)-1] != young {
		t.Fatal("the young patient did not join once old enough")
	}
}
