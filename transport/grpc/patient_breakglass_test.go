package grpctransport

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pms/pms/pkg/patient"
)

func (s *stubService) SetConfidentiality(ctx context.Context, req patient.ConfidentialityRequest) (patient.Patient, error) {
	return stubResult[patient.Patient](s.do(ctx, patient.MethodConfidentiality, req))
}

func (s *stubService) BreakGlass(ctx context.Context, req patient.BreakGlassRequest) (patient.Grant, error) {
	return stubResult[patient.Grant](s.do(ctx, patient.MethodBreakGlass, req))
}

func (s *stubService) BreakGlassGrants(ctx context.Context, q patient.GrantQuery) ([]patient.GrantReview, error) {
	return stubResult[[]patient.GrantReview](s.do(ctx, patient.MethodBreakGlassGrants, q))
}

func (s *stubService) Erase(ctx context.Context, req patient.EraseRequest) (patient.Erasure, error) {
	return stubResult[patient.Erasure](s.do(ctx, patient.MethodErase, req))
}

// TestBreakGlassRoundTrip sends the break-glass operations through the real client, wire and
// server: the service receives what the caller sent, the caller what the service answered,
// confidentiality included on the record; a restricted record's refusal keeps its kind and
// its message naming break-glass.
func TestBreakGlassRoundTrip(t *testing.T) {
	h := startHarness(t, ServerOptions{})
	restricted := alice
	restricted.Confidentiality = patient.ConfidentialityRestricted
	grant := patient.Grant{ID: "g-1", PatientID: alice.ID, UserID: "doc-1", Role: "clinician", Reason: "unconscious in A&E",
		RequestID: "r-1", CreatedAt: created, ExpiresAt: created.Add(time.Hour)}
	from, to := created.Add(-time.Hour), created.Add(time.Hour)
	tests := []struct {
		name, method    string
		call            func(ctx context.Context, c patient.Set) (any, error)
		wantReq, answer any
	}{{
		name: "set confidentiality", method: patient.MethodConfidentiality,
		call: func(ctx context.Context, c patient.Set) (any, error) {
			return c.SetConfidentiality(ctx, patient.ConfidentialityRequest{ID: alice.ID, Confidentiality: "restricted"})
		},
		wantReq: patient.ConfidentialityRequest{ID: alice.ID, Confidentiality: "restricted"},
		answer:  restricted,
	}, {
		name: "break glass", method: patient.MethodBreakGlass,
		call: func(ctx context.Context, c patient.Set) (any, error) {
			return c.BreakGlass(ctx, patient.BreakGlassRequest{ID: alice.ID, Reason: "unconscious in A&E"})
		},
		wantReq: patient.BreakGlassRequest{ID: alice.ID, Reason: "unconscious in A&E"},
		answer:  grant,
	}, {
		name: "grants", method: patient.MethodBreakGlassGrants,
		call: func(ctx context.Context, c patient.Set) (any, error) {
			return c.BreakGlassGrants(ctx, patient.GrantQuery{PatientID: alice.ID, UserID: "doc-1", From: from, To: to, Limit: 5})
		},
		wantReq: patient.GrantQuery{PatientID: alice.ID, UserID: "doc-1", From: from, To: to, Limit: 5},
		answer: []patient.GrantReview{{Grant: grant, Reads: []patient.AuditEntry{{ID: "a-1", At: created, Actor: "doc-1",
			Role: "clinician", Action: "read", PatientID: alice.ID, Outcome: "success", RequestID: "r-2", ClientAddress: "10.0.0.1"}}},
			{Grant: grant, Reads: []patient.AuditEntry{}}},
	}, {
		name: "erase", method: patient.MethodErase,
		call: func(ctx context.Context, c patient.Set) (any, error) {
			return c.Erase(ctx, patient.EraseRequest{ID: alice.ID, Reason: "GDPR Art. 17 request"})
		},
		wantReq: patient.EraseRequest{ID: alice.ID, Reason: "GDPR Art. 17 request"},
		answer: patient.Erasure{PatientID: alice.ID, MRN: "MRN-00000001", ErasedAt: created, ErasedBy: "admin-1", Role: "admin",
			Reason: "GDPR Art. 17 request", RequestID: "r-9"},
	}, {
		name: "update echoing confidentiality", method: patient.MethodUpdate,
		call: func(ctx context.Context, c patient.Set) (any, error) {
			return c.Update(ctx, patient.UpdateRequest{ID: alice.ID, Unchanged: patient.ReadOnlyFields{Confidentiality: ptr("restricted")}})
		},
		wantReq: patient.UpdateRequest{ID: alice.ID, Unchanged: patient.ReadOnlyFields{Confidentiality: ptr("restricted")}},
		answer:  restricted,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.stub.setFn(func(string, any) (any, error) { return tt.answer, nil })
			got, err := tt.call(testContext(t), h.client)
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			c := h.stub.last(t)
			if c.method != tt.method || !reflect.DeepEqual(c.req, tt.wantReq) {
				t.Errorf("service got %s\n%#v\nwant %s\n%#v", c.method, c.req, tt.method, tt.wantReq)
			}
			if !reflect.DeepEqual(got, tt.answer) {
				t.Errorf("caller got\n%#v\nwant\n%#v", got, tt.answer)
			}
		})
	}
	for _, sent := range []error{patient.ErrRestricted, patient.ErrNotRestricted} {
		h.stub.setFn(func(string, any) (any, error) { return nil, sent })
		_, err := h.client.Get(testContext(t), alice.ID)
		if !errors.Is(err, sent) || err.Error() != sent.Error() {
			t.Errorf("sent %v, got %v", sent, err)
		}
	}
	if _, err := h.client.Get(testContext(t), alice.ID); !strings.Contains(err.Error(), "break-glass") {
		t.Errorf("the refusal does not name break-glass: %v", err)
	}
}
