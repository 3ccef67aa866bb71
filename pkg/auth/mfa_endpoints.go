package auth

import (
	"context"

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
