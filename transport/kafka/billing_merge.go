package kafkatransport

import (
	"context"

	"github.com/go-kit/kit/endpoint"
	"github.com/pms/pms/pkg/billing"
	"github.com/pms/pms/pkg/patient"
	"github.com/pms/pms/pkg/platform/errs"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
)

// BillingMerger is what billing's consumer of the patient topic needs for merges
// (billing.Store.ApplyPatientMerge).
type BillingMerger interface {
	ApplyPatientMerge(ctx context.Context, c billing.MergeChange) (int, error)
}

// BillingMerges returns the middleware of billing's consumer of the patient topic that handles
// PATIENT_MERGED (the duplicate's invoices move to the survivor's account) and
// PATIENT_UNMERGED (they move back) with m, exactly once per event id, and then passes them on
// to next like every other event (which keeps their confidentiality; SubscriberWrap). A merge event without an id, or with a duplicate or survivor
// that is not a patient id, is invalid: dead-lettered.
func BillingMerges(m BillingMerger) endpoint.Middleware {
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, req any) (any, error) {
			ev, ok := req.(*eventsv1.PatientEvent)
			if !ok || (ev.GetEventType() != patient.EventMerged && ev.GetEventType() != patient.EventUnmerged) {
				return next(ctx, req)
			}
			c, err := mergeChangeOf(ev)
			if err != nil {
				return nil, err
			}
			if _, err := m.ApplyPatientMerge(ctx, c); err != nil {
				return nil, err
			}
			return next(ctx, req) // what every patient event gets too (its confidentiality)
		}
	}
}

// mergeChangeOf reads a PATIENT_MERGED or PATIENT_UNMERGED event, checking its ids.
func mergeChangeOf(ev *eventsv1.PatientEvent) (billing.MergeChange, error) {
	var bad errs.Fields
	if id := ev.GetEventId(); id == "" || len(id) > maxEventID || !storableText(id) {
		bad.Add("event_id", "is required (at most 200 characters of text without NUL)")
	}
	dup := ev.GetPatientId()
	if dup == "" {
		dup = ev.GetPatient().GetId()
	}
	dup, err := patient.ParseID(dup)
	if err != nil {
		bad.Add("patientId", "must be a UUID")
	}
	c := billing.MergeChange{EventID: ev.GetEventId(), DuplicateID: dup, Unmerge: ev.GetEventType() == patient.EventUnmerged}
	if !c.Unmerge {
		if c.SurvivorID, err = patient.ParseID(ev.GetPatient().GetMergedInto()); err != nil || c.SurvivorID == dup {
			bad.Add("patient.merged_into", "must be the survivor's UUID")
		}
	}
	if ev.GetOccurredAt() != nil && ev.GetOccurredAt().IsValid() {
		c.At = ev.GetOccurredAt().AsTime()
	}
	return c, bad.Err()
}
