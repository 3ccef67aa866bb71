package httptransport

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/pms/pms/pkg/auth"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/errs"
)

// totpAt is the TOTP code of secret at t (pquerna; oathtool checks it in pkg/auth).
func totpAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestMFAOverHTTP: POST /mfa/totp answers 201 {secret, otpauthUri, qrPng (base64 PNG)};
// /mfa/totp/confirm 200 {recoveryCodes}; a login then answers 401 with the contract's error
// body plus "challenge" (error mfa_required); /login/mfa completes it with 200 and a token
// pair; malformed bodies are 400s naming the field, a garbage challenge 401; the client
// rebuilds the kind and the challenge; /mfa/totp/disable 204 with a recovery code. Codes of
// the next step are used so the real clock needs no waiting (±1 step is accepted).
func TestMFAOverHTTP(t *testing.T) {
	e := newAuthEnv(t, auth.ThrottleOptions{})
	resp, b := e.do(t, "POST", "/mfa/totp", "", "")
	checkError(t, resp, b, 401, errs.Unauthenticated)
	resp, b = e.do(t, "POST", "/mfa/totp", e.clin, "")
	if resp.StatusCode != 201 || keysOf(t, b) != "otpauthUri,qrPng,secret" {
		t.Fatalf("enrol: %d %s", resp.StatusCode, b)
	}
	en := decodeBody[auth.TOTPEnrolment](t, b)
	if raw := decodeBody[map[string]string](t, b)["qrPng"]; !strings.HasPrefix(raw, base64.StdEncoding.EncodeToString([]byte("\x89PNG"))[:4]) {
		t.Fatalf("qrPng is not a base64 PNG: %.20s", raw)
	}
	for body, field := range map[string]string{`{"code":"12345"}`: "code", `{"code":123456}`: "code", `{}`: "code"} {
		resp, b = e.do(t, "POST", "/mfa/totp/confirm", e.clin, body, jsonCT...)
		if eb := checkError(t, resp, b, 400, errs.InvalidArgument); eb.Fields[field] == "" && !strings.Contains(eb.Message, field) {
			t.Errorf("%s: %s", body, b)
		}
	}
	resp, b = e.do(t, "POST", "/mfa/totp/confirm", e.clin, `{"code":"`+totpAt(t, en.Secret, time.Now())+`"}`, jsonCT...)
	if resp.StatusCode != 200 || keysOf(t, b) != "recoveryCodes" {
		t.Fatalf("confirm: %d %s", resp.StatusCode, b)
	}
	rc := decodeBody[auth.RecoveryCodes](t, b)

	resp, b = e.do(t, "POST", "/login", "", `{"email":"clin@example.org","password":"`+authPassword+`"}`, jsonCT...)
	eb := checkError(t, resp, b, 401, errs.MFARequired)
	if eb.Challenge == "" || eb.Enrol || strings.Contains(string(b), authPassword) {
		t.Fatalf("login with MFA on: %s", b)
	}
	for body, status := range map[string]int{
		`{"challenge":"` + eb.Challenge + `","code":"12a456"}`:                       400,
		`{"challenge":"` + eb.Challenge + `"}`:                                       400,
		`{"challenge":"","code":"123456"}`:                                           400,
		`{"challenge":"garbage","code":"123456"}`:                                    401,
		`{"challenge":"` + eb.Challenge + `","code":"000000","recoveryCode":"AAAA"}`: 400,
		`{"challenge":["x"],"code":"123456"}`:                                        400,
	} {
		if resp, b = e.do(t, "POST", "/login/mfa", "", body, jsonCT...); resp.StatusCode != status {
			t.Errorf("%s: %d %s", body, resp.StatusCode, b)
		}
	}
	resp, b = e.do(t, "POST", "/login/mfa", "", `{"challenge":"`+eb.Challenge+`","code":"`+totpAt(t, en.Secret, time.Now().Add(30*time.Second))+`"}`, jsonCT...)
	if resp.StatusCode != 200 || keysOf(t, b) != "deviceToken,expiresIn,refreshToken,token,tokenType" {
		t.Fatalf("login/mfa: %d %s", resp.StatusCode, b)
	}
	pair := decodeBody[auth.TokenPair](t, b)

	// The client: the kind and the challenge come back; a recovery code completes the login.
	_, err := e.client.Login(context.Background(), auth.LoginRequest{Email: "clin@example.org", Password: authPassword})
	ch := errs.As(err)
	if ch.Kind != errs.MFARequired || ch.Challenge == "" {
		t.Fatalf("client login: %#v", ch)
	}
	if _, err := e.client.LoginMFA(context.Background(), auth.LoginMFARequest{Challenge: ch.Challenge, RecoveryCode: rc.RecoveryCodes[0]}); err != nil {
		t.Fatalf("client login/mfa: %v", err)
	}
	if err := e.client.DisableTOTP(authz.WithToken(context.Background(), pair.Token), auth.DisableTOTPRequest{RecoveryCode: rc.RecoveryCodes[0]}); !errors.Is(err, auth.ErrBadCode) {
		t.Fatalf("disable with a spent recovery code: %v", err)
	}
	resp, b = e.do(t, "POST", "/mfa/totp/disable", pair.Token, `{"recoveryCode":"`+rc.RecoveryCodes[1]+`"}`, jsonCT...)
	if resp.StatusCode != 204 {
		t.Fatalf("disable: %d %s", resp.StatusCode, b)
	}
	e.login(t, "clin@example.org")
	// The enrol-by-challenge routes refuse what is not an enrol challenge.
	resp, b = e.do(t, "POST", "/login/mfa/enrol", "", `{"challenge":"garbage"}`, jsonCT...)
	checkError(t, resp, b, 401, errs.Unauthenticated)
	resp, b = e.do(t, "POST", "/login/mfa/confirm", "", `{"challenge":"garbage","code":"123456"}`, jsonCT...)
	checkError(t, resp, b, 401, errs.Unauthenticated)
}
