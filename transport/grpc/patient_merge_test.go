package grpctransport

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/errs"
)

func (s *stubService) Merge(ctx context.Context, req patient.MergeRequest) (patient.MergeRecord, error) {
	return stubResult[patient.MergeRecord](s.do(ctx, patient.MethodMerge, req))
}

func (s *stubService) Unmerge(ctx context.Context, req patient.UnmergeRequest) (patient.MergeRecord, error) {
	return stubResult[patient.MergeRecord](s.do(ctx, patient.MethodUnmerge, req))
}

// TestMergeRoundTrip sends merge and unmerge through the real client, wire and server: the
// service receives what the caller sent, the caller gets the merge record back (the unmerge's
// instant included); a merged record read carries its survivor, and a merged conflict keeps
// the survivor's id across the wire.
func TestMergeRoundTrip(t *testing.T) {
	h := startHarness(t, ServerOptions{})
	dup := "0b5d2f1e-6a3c-4e8f-9d7a-1c2b3a4d5e6f"
	rec := patient.MergeRecord{ID: "m-1", SurvivorID: alice.ID, DuplicateID: dup, Reason: "same person, registered twice",
		MergedAt: created, MergedBy: "doc-1", Role: "clinician", RequestID: "r-1"}
	undone := rec
	at := created.Add(time.Hour)
	undone.UnmergedAt, undone.UnmergedBy, undone.UnmergeReason = &at, "doc-2", "two different people"

	h.stub.setFn(func(string, any) (any, error) { return rec, nil })
	got, err := h.client.Merge(testContext(t), patient.MergeRequest{SurvivorID: alice.ID, DuplicateID: dup, Reason: rec.Reason})
	if err != nil || !reflect.DeepEqual(got, rec) {
		t.Fatalf("merge: %+v %v", got, err)
	}
	if c := h.stub.last(t); c.method != patient.MethodMerge || c.req != (patient.MergeRequest{SurvivorID: alice.ID, DuplicateID: dup, Reason: rec.Reason}) {
		t.Errorf("service got %s %#v", c.method, c.req)
	}
	h.stub.setFn(func(string, any) (any, error) { return undone, nil })
	got, err = h.client.Unmerge(testContext(t), patient.UnmergeRequest{ID: dup, Reason: "two different people"})
	if err != nil || !reflect.DeepEqual(got, undone) {
		t.Fatalf("unmerge: %+v %v", got, err)
	}
	if c := h.stub.last(t); c.method != patient.MethodUnmerge || c.req != (patient.UnmergeRequest{ID: dup, Reason: "two different people"}) {
		t.Errorf("service got %s %#v", c.method, c.req)
	}

	merged := alice
	merged.ID, merged.MergedInto = dup, alice.ID
	h.stub.setFn(func(string, any) (any, error) { return merged, nil })
	if p, err := h.client.Get(testContext(t), dup); err != nil || p.MergedInto != alice.ID {
		t.Fatalf("get merged: %+v %v", p, err)
	}
	h.stub.setFn(func(string, any) (any, error) {
		return nil, &errs.Error{Kind: errs.Conflict, Message: "merged", Fields: map[string]string{patient.MergedField: alice.ID}}
	})
	_, err = h.client.Update(testContext(t), patient.UpdateRequest{ID: dup, Name: "x"})
	if s, ok := patient.MergedInto(err); !ok || s != alice.ID {
		t.Errorf("update of a merged record: %v", err)
	}
}
