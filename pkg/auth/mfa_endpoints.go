package auth

import (
	"context"

	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/typed"
)

// EnrolTOTP implements Service over the endpoint set.
func (s Set) EnrolTOTP(ctx context.Context) (TOTPEnrolment, error) {
	return typed.Call[TOTPEnrolment](ctx, s.EnrolTOTPEndpoint, EnrolTOTPRequest{})
}

// ConfirmTOTP implements Service over the endpoint set.
func (s Set) ConfirmTOTP(ctx context.Context, req ConfirmTOTPRequest) (RecoveryCodes, error) {
	return typed.Call[RecoveryCodes](ctx, s.ConfirmTOTPEndpoint, req)
}

// DisableTOTP implements Service over the endpoint set.
func (s Set) DisableTOTP(ctx context.Context, req DisableTOTPRequest) error {
	_, err := typed.Call[DisableTOTPResponse](ctx, s.DisableTOTPEndpoint, req)
	return err
}

// LoginMFA implements Service over the endpoint set.
func (s Set) LoginMFA(ctx context.Context, req LoginMFARequest) (TokenPair, error) {
	return typed.Call[TokenPair](ctx, s.LoginMFAEndpoint, req)
}

// LoginEnrolTOTP implements Service over the endpoint set.
func (s Set) LoginEnrolTOTP(ctx context.Context, req ChallengeEnrolRequest) (TOTPEnrolment, error) {
	return typed.Call[TOTPEnrolment](ctx, s.LoginEnrolTOTPEndpoint, req)
}

// LoginConfirmTOTP implements Service over the endpoint set.
func (s Set) LoginConfirmTOTP(ctx context.Context, req ChallengeConfirmRequest) (MFALogin, error) {
	return typed.Call[MFALogin](ctx, s.LoginConfirmTOTPEndpoint, req)
}

// LoginMFA counts a login's second step in pms_auth_logins_total (the first step counted
// itself as result "mfa_required").
func (s *instrumented) LoginMFA(ctx context.Context, req LoginMFARequest) (TokenPair, error) {
	p, err := s.Service.LoginMFA(ctx, req)
	s.m.logins.WithLabelValues(errs.Label(err)).Inc()
	return p, err
}

// LoginConfirmTOTP counts the login that confirming a required factor completes, and the
// factor in pms_auth_user_changes_total.
func (s *instrumented) LoginConfirmTOTP(ctx context.Context, req ChallengeConfirmRequest) (MFALogin, error) {
	l, err := s.Service.LoginConfirmTOTP(ctx, req)
	s.m.logins.WithLabelValues(errs.Label(err)).Inc()
	s.m.users.WithLabelValues("mfa_confirmed", errs.Label(err)).Inc()
	return l, err
}

// ConfirmTOTP counts a factor turned on.
func (s *instrumented) ConfirmTOTP(ctx context.Context, req ConfirmTOTPRequest) (RecoveryCodes, error) {
	r, err := s.Service.ConfirmTOTP(ctx, req)
	s.m.users.WithLabelValues("mfa_confirmed", errs.Label(err)).Inc()
	return r, err
}

// DisableTOTP counts a factor removed.
func (s *instrumented) DisableTOTP(ctx context.Context, req DisableTOTPRequest) error {
	err := s.Service.DisableTOTP(ctx, req)
	s.m.users.WithLabelValues("mfa_disabled", errs.Label(err)).Inc()
	return err
}
