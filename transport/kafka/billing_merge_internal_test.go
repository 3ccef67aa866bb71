package kafkatransport

import (
	"context"
	"testing"

	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/errs"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
)

type fakeMerger struct{ got []billing.MergeChange }

func (f *fakeMerger) ApplyPatientMerge(_ context.Context, c billing.MergeChange) (int, error) {
	f.got = append(f.got, c)
	return 1, nil
}

// TestBillingMerges: merge and unmerge events reach the merger with their ids and then the next
// endpoint (their confidentiality); other events go on to the next endpoint only; a merge event without an id, with a bad duplicate or survivor, or
// merged into itself is invalid (dead-lettered) and reaches nobody.
func TestBillingMerges(t *testing.T) {
	const dup, surv = "0b5d2f1e-6a3c-4e8f-9d7a-1c2b3a4d5e6f", "9c1a4f0e-0000-4000-8000-000000000001"
	f := &fakeMerger{}
	nexts := 0
	e := BillingMerges(f)(func(context.Context, any) (any, error) { nexts++; return nil, nil })
	ctx := context.Background()
	ok := []*eventsv1.PatientEvent{
		{EventId: "e-1", EventType: patient.EventMerged, PatientId: dup, Patient: &eventsv1.PatientRecord{Id: dup, MergedInto: surv}},
		{EventId: "e-2", EventType: patient.EventUnmerged, PatientId: dup, Patient: &eventsv1.PatientRecord{Id: dup}},
	}
	for _, ev := range ok {
		if _, err := e(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if len(f.got) != 2 || f.got[0] != (billing.MergeChange{EventID: "e-1", DuplicateID: dup, SurvivorID: surv}) ||
		f.got[1] != (billing.MergeChange{EventID: "e-2", DuplicateID: dup, Unmerge: true}) {
		t.Fatalf("merger got %+v", f.got)
	}
	if nexts != 2 {
		t.Fatalf("merge events were not passed on: next called %d times", nexts)
	}
	if _, err := e(ctx, &eventsv1.PatientEvent{EventId: "e-3", EventType: patient.EventCreated, PatientId: dup}); err != nil || nexts != 3 {
		t.Fatalf("a created event: %v, next called %d times", err, nexts)
	}
	for _, ev := range []*eventsv1.PatientEvent{
		{EventType: patient.EventMerged, PatientId: dup, Patient: &eventsv1.PatientRecord{MergedInto: surv}},
		{EventId: "e-4", EventType: patient.EventMerged, PatientId: "x", Patient: &eventsv1.PatientRecord{MergedInto: surv}},
		{EventId: "e-5", EventType: patient.EventMerged, PatientId: dup, Patient: &eventsv1.PatientRecord{MergedInto: "x"}},
		{EventId: "e-6", EventType: patient.EventMerged, PatientId: dup, Patient: &eventsv1.PatientRecord{MergedInto: dup}},
		{EventId: "e-7\x00", EventType: patient.EventUnmerged, PatientId: dup},
	} {
		if _, err := e(ctx, ev); errs.KindOf(err) != errs.InvalidArgument {
			t.Errorf("%v: %v, want invalid", ev, err)
		}
	}
	if len(f.got) != 2 || nexts != 3 {
		t.Errorf("invalid events reached someone: %d merges, %d nexts", len(f.got), nexts)
	}
}
