package httptransport

import (
	"context"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/pms/pms/pkg/auth"
)

// handleMFA adds the MFA routes of the auth API to r: the caller's own TOTP factor
// (/mfa/totp, /mfa/totp/confirm, /mfa/totp/disable; a token required) and the second step of
// a login (/login/mfa, /login/mfa/enrol, /login/mfa/confirm; the challenge is the
// credential).
func handleMFA(r *mux.Router, o Options, set auth.Set) {
	Handle(r, o, http.MethodPost, "/mfa/totp", set.EnrolTOTPEndpoint, decodeEnrolTOTP, encodeEnrolment)
	Handle(r, o, http.MethodPost, "/mfa/totp/confirm", set.ConfirmTOTPEndpoint, decodeJSONBody[auth.ConfirmTOTPRequest], encodeOK[auth.RecoveryCodes])
	Handle(r, o, http.MethodPost, "/mfa/totp/disable", set.DisableTOTPEndpoint, decodeJSONBody[auth.DisableTOTPRequest], encodeNoContent[auth.DisableTOTPResponse])
	Handle(r, o, http.MethodPost, "/login/mfa", set.LoginMFAEndpoint, decodeCookieLogin(decodeJSONBody[auth.LoginMFARequest]), encodeTokens(tokenPair))
	Handle(r, o, http.MethodPost, "/login/mfa/enrol", set.LoginEnrolTOTPEndpoint, decodeJSONBody[auth.ChallengeEnrolRequest], encodeEnrolment)
	Handle(r, o, http.MethodPost, "/login/mfa/confirm", set.LoginConfirmTOTPEndpoint, decodeCookieLogin(decodeJSONBody[auth.ChallengeConfirmRequest]), encodeTokens(mfaTokenPair))
}

// decodeJSONBody reads a JSON body of type Req, with no query.
func decodeJSONBody[Req any](_ context.Context, r *http.Request) (Req, error) {
	if err := noQuery(r); err != nil {
		var zero Req
		return zero, err
	}
	return DecodeJSON[Req](r)
}

// decodeEnrolTOTP reads POST /mfa/totp (no query; a body, if any, is not read: the factor
// is the token's user's).
func decodeEnrolTOTP(_ context.Context, r *http.Request) (auth.EnrolTOTPRequest, error) {
	return auth.EnrolTOTPRequest{}, noQuery(r)
}

// encodeEnrolment answers 201: a new (pending) factor.
func encodeEnrolment(_ context.Context, _ http.Header, e auth.TOTPEnrolment) (int, any) {
	return http.StatusCreated, e
}

// authMFAClient fills the MFA endpoints of set with HTTP client endpoints.
func authMFAClient(c *client, set *auth.Set) {
	post := func(path string, body any) (call, error) {
		return call{method: http.MethodPost, path: path, header: http.Header{}, body: body}, nil
	}
	set.EnrolTOTPEndpoint = clientEndpoint(c, func(auth.EnrolTOTPRequest) (call, error) { return post("/mfa/totp", nil) },
		decodeJSONResponse[auth.TOTPEnrolment])
	set.ConfirmTOTPEndpoint = clientEndpoint(c, func(r auth.ConfirmTOTPRequest) (call, error) { return post("/mfa/totp/confirm", r) },
		decodeJSONResponse[auth.RecoveryCodes])
	set.DisableTOTPEndpoint = clientEndpoint(c, func(r auth.DisableTOTPRequest) (call, error) { return post("/mfa/totp/disable", r) },
		func(*http.Response) (auth.DisableTOTPResponse, error) { return auth.DisableTOTPResponse{}, nil })
	set.LoginMFAEndpoint = clientEndpoint(c, func(r auth.LoginMFARequest) (call, error) { return post("/login/mfa", r) },
		decodeJSONResponse[auth.TokenPair])
	set.LoginEnrolTOTPEndpoint = clientEndpoint(c, func(r auth.ChallengeEnrolRequest) (call, error) { return post("/login/mfa/enrol", r) },
		decodeJSONResponse[auth.TOTPEnrolment])
	set.LoginConfirmTOTPEndpoint = clientEndpoint(c, func(r auth.ChallengeConfirmRequest) (call, error) { return post("/login/mfa/confirm", r) },
		decodeJSONResponse[auth.MFALogin])
}
