package patient

import (
	"context"

	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/typed"
)

// GrantsResponse wraps the grants under review, so the endpoint response is a struct.
type GrantsResponse struct{ Grants []GrantReview }

// breakGlassGrants adapts Service.BreakGlassGrants to its endpoint's response.
func breakGlassGrants(s Service) func(context.Context, GrantQuery) (GrantsResponse, error) {
	return func(ctx context.Context, q GrantQuery) (GrantsResponse, error) {
		g, err := s.BreakGlassGrants(ctx, q)
		return GrantsResponse{Grants: g}, err
	}
}

// SetConfidentiality implements Service over the endpoint set.
func (s Set) SetConfidentiality(ctx context.Context, req ConfidentialityRequest) (Patient, error) {
	return typed.Call[Patient](ctx, s.ConfidentialityEndpoint, req)
}

// BreakGlass implements Service over the endpoint set.
func (s Set) BreakGlass(ctx context.Context, req BreakGlassRequest) (Grant, error) {
	return typed.Call[Grant](ctx, s.BreakGlassEndpoint, req)
}

// BreakGlassGrants implements Service over the endpoint set.
func (s Set) BreakGlassGrants(ctx context.Context, q GrantQuery) ([]GrantReview, error) {
	r, err := typed.Call[GrantsResponse](ctx, s.BreakGlassGrantsEndpoint, q)
	return r.Grants, err
}

// SetConfidentiality counts nothing: it is audited, and rare.
func (s *instrumented) SetConfidentiality(ctx context.Context, req ConfidentialityRequest) (Patient, error) {
	return s.Service.SetConfidentiality(ctx, req)
}

// BreakGlass counts emergency accesses by result in pms_patient_break_glass_total, which the
// Prometheus rules alert on (ops/prometheus/rules.yml, PatientBreakGlass).
func (s *instrumented) BreakGlass(ctx context.Context, req BreakGlassRequest) (Grant, error) {
	g, err := s.Service.BreakGlass(ctx, req)
	s.m.breakGlass.WithLabelValues(errs.Label(err)).Inc()
	return g, err
}
