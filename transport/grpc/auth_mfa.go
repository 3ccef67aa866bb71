package grpctransport

import (
	"context"

	kitgrpc "github.com/go-kit/kit/transport/grpc"

	"github.com/pms/pms/pkg/auth"
	authv1 "github.com/pms/pms/proto/pms/auth/v1"
)

// authMFAServer binds the MFA methods of AuthService: the caller's own TOTP factor and the
// logins that need a second step.
type authMFAServer struct {
	enrol, confirm, disable, login, loginEnrol, loginConfirm kitgrpc.Handler
}

func newAuthMFAServer(set auth.Set) authMFAServer {
	return authMFAServer{
		enrol:        kitgrpc.NewServer(set.EnrolTOTPEndpoint, total(authEnrolFromPB), total(authEnrolmentToPB)),
		confirm:      kitgrpc.NewServer(set.ConfirmTOTPEndpoint, total(authConfirmFromPB), total(authRecoveryToPB)),
		disable:      kitgrpc.NewServer(set.DisableTOTPEndpoint, total(authDisableFromPB), total(authDisabledToPB)),
		login:        kitgrpc.NewServer(set.LoginMFAEndpoint, total(authLoginMFAFromPB), total(authPairToPB)),
		loginEnrol:   kitgrpc.NewServer(set.LoginEnrolTOTPEndpoint, total(authLoginEnrolFromPB), total(authEnrolmentToPB)),
		loginConfirm: kitgrpc.NewServer(set.LoginConfirmTOTPEndpoint, total(authLoginConfirmFromPB), total(authMFALoginToPB)),
	}
}

// EnrolTotp implements authv1.AuthServiceServer.
func (s *authServer) EnrolTotp(ctx context.Context, r *authv1.EnrolTotpRequest) (*authv1.TotpEnrolment, error) {
	return serve[*authv1.TotpEnrolment](ctx, s.mfa.enrol, r)
}

// ConfirmTotp implements authv1.AuthServiceServer.
func (s *authServer) ConfirmTotp(ctx context.Context, r *authv1.ConfirmTotpRequest) (*authv1.RecoveryCodes, error) {
	return serve[*authv1.RecoveryCodes](ctx, s.mfa.confirm, r)
}

// DisableTotp implements authv1.AuthServiceServer.
func (s *authServer) DisableTotp(ctx context.Context, r *authv1.DisableTotpRequest) (*authv1.DisableTotpResponse, error) {
	return serve[*authv1.DisableTotpResponse](ctx, s.mfa.disable, r)
}

// LoginMfa implements authv1.AuthServiceServer.
func (s *authServer) LoginMfa(ctx context.Context, r *authv1.LoginMfaRequest) (*authv1.TokenPair, error) {
	return serve[*authv1.TokenPair](ctx, s.mfa.login, r)
}

// LoginEnrolTotp implements authv1.AuthServiceServer.
func (s *authServer) LoginEnrolTotp(ctx context.Context, r *authv1.LoginEnrolTotpRequest) (*authv1.TotpEnrolment, error) {
	return serve[*authv1.TotpEnrolment](ctx, s.mfa.loginEnrol, r)
}

// LoginConfirmTotp implements authv1.AuthServiceServer.
func (s *authServer) LoginConfirmTotp(ctx context.Context, r *authv1.LoginConfirmTotpRequest) (*authv1.MfaLogin, error) {
	return serve[*authv1.MfaLogin](ctx, s.mfa.loginConfirm, r)
}

// authMFAClient fills the MFA endpoints of set with gRPC client endpoints.
func authMFAClient(c clientFactory, set *auth.Set) {
	set.EnrolTOTPEndpoint = c.endpoint(auth.MethodEnrolTOTP, total(authEnrolToPB), total(authEnrolmentFromPB), &authv1.TotpEnrolment{})
	set.ConfirmTOTPEndpoint = c.endpoint(auth.MethodConfirmTOTP, total(authConfirmToPB), total(authRecoveryFromPB), &authv1.RecoveryCodes{})
	set.DisableTOTPEndpoint = c.endpoint(auth.MethodDisableTOTP, total(authDisableToPB), total(authDisabledFromPB), &authv1.DisableTotpResponse{})
	set.LoginMFAEndpoint = c.endpoint(auth.MethodLoginMFA, total(authLoginMFAToPB), total(authPairFromPB), &authv1.TokenPair{})
	set.LoginEnrolTOTPEndpoint = c.endpoint(auth.MethodLoginEnrolTOTP, total(authLoginEnrolToPB), total(authEnrolmentFromPB), &authv1.TotpEnrolment{})
	set.LoginConfirmTOTPEndpoint = c.endpoint(auth.MethodLoginConfirmTOTP, total(authLoginConfirmToPB), total(authMFALoginFromPB), &authv1.MfaLogin{})
}

func authEnrolToPB(auth.EnrolTOTPRequest) *authv1.EnrolTotpRequest { return &authv1.EnrolTotpRequest{} }

func authEnrolFromPB(*authv1.EnrolTotpRequest) auth.EnrolTOTPRequest { return auth.EnrolTOTPRequest{} }

func authEnrolmentToPB(e auth.TOTPEnrolment) *authv1.TotpEnrolment {
	return &authv1.TotpEnrolment{Secret: e.Secret, OtpauthUri: e.OtpauthURI, QrPng: e.QRPNG}
}

func authEnrolmentFromPB(e *authv1.TotpEnrolment) auth.TOTPEnrolment {
	return auth.TOTPEnrolment{Secret: e.GetSecret(), OtpauthURI: e.GetOtpauthUri(), QRPNG: e.GetQrPng()}
}

func authConfirmToPB(r auth.ConfirmTOTPRequest) *authv1.ConfirmTotpRequest {
	return &authv1.ConfirmTotpRequest{Code: r.Code}
}

func authConfirmFromPB(r *authv1.ConfirmTotpRequest) auth.ConfirmTOTPRequest {
	return auth.ConfirmTOTPRequest{Code: r.GetCode()}
}

func authRecoveryToPB(r auth.RecoveryCodes) *authv1.RecoveryCodes {
	return &authv1.RecoveryCodes{RecoveryCodes: r.RecoveryCodes}
}

func authRecoveryFromPB(r *authv1.RecoveryCodes) auth.RecoveryCodes {
	return auth.RecoveryCodes{RecoveryCodes: r.GetRecoveryCodes()}
}

func authDisableToPB(r auth.DisableTOTPRequest) *authv1.DisableTotpRequest {
	return &authv1.DisableTotpRequest{Code: r.Code, RecoveryCode: r.RecoveryCode}
}

func authDisableFromPB(r *authv1.DisableTotpRequest) auth.DisableTOTPRequest {
	return auth.DisableTOTPRequest{Code: r.GetCode(), RecoveryCode: r.GetRecoveryCode()}
}

func authDisabledToPB(auth.DisableTOTPResponse) *authv1.DisableTotpResponse {
	return &authv1.DisableTotpResponse{}
}

func authDisabledFromPB(*authv1.DisableTotpResponse) auth.DisableTOTPResponse {
	return auth.DisableTOTPResponse{}
}

func authLoginMFAToPB(r auth.LoginMFARequest) *authv1.LoginMfaRequest {
	return &authv1.LoginMfaRequest{Challenge: r.Challenge, Code: r.Code, RecoveryCode: r.RecoveryCode}
}

func authLoginMFAFromPB(r *authv1.LoginMfaRequest) auth.LoginMFARequest {
	return auth.LoginMFARequest{Challenge: r.GetChallenge(), Code: r.GetCode(), RecoveryCode: r.GetRecoveryCode()}
}

func authLoginEnrolToPB(r auth.ChallengeEnrolRequest) *authv1.LoginEnrolTotpRequest {
	return &authv1.LoginEnrolTotpRequest{Challenge: r.Challenge}
}

func authLoginEnrolFromPB(r *authv1.LoginEnrolTotpRequest) auth.ChallengeEnrolRequest {
	return auth.ChallengeEnrolRequest{Challenge: r.GetChallenge()}
}

func authLoginConfirmToPB(r auth.ChallengeConfirmRequest) *authv1.LoginConfirmTotpRequest {
	return &authv1.LoginConfirmTotpRequest{Challenge: r.Challenge, Code: r.Code}
}

func authLoginConfirmFromPB(r *authv1.LoginConfirmTotpRequest) auth.ChallengeConfirmRequest {
	return auth.ChallengeConfirmRequest{Challenge: r.GetChallenge(), Code: r.GetCode()}
}

func authMFALoginToPB(l auth.MFALogin) *authv1.MfaLogin {
	return &authv1.MfaLogin{Token: l.Token, TokenType: l.TokenType, ExpiresIn: l.ExpiresIn, RefreshToken: l.RefreshToken,
		RecoveryCodes: l.RecoveryCodes}
}

func authMFALoginFromPB(l *authv1.MfaLogin) auth.MFALogin {
	return auth.MFALogin{TokenPair: auth.TokenPair{Token: l.GetToken(), TokenType: l.GetTokenType(), ExpiresIn: l.GetExpiresIn(),
		RefreshToken: l.GetRefreshToken()}, RecoveryCodes: l.GetRecoveryCodes()}
}
