package main

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// totpNow is the current TOTP code of secret (SHA-1, 6 digits, 30 s; oathtool checks the
// same codes in pkg/auth).
func totpNow(t *testing.T, secret string, offset time.Duration) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, time.Now().Add(offset), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// loginChallenge is the error body of a login answered with a challenge.
type loginChallenge struct {
	Error     string `json:"error"`
	Challenge string `json:"challenge"`
	Enrol     bool   `json:"enrol"`
}

// challengeOf reads a 401 answer's challenge of kind, failing otherwise.
func challengeOf(t *testing.T, status int, b []byte, kind string) loginChallenge {
	t.Helper()
	var c loginChallenge
	if err := json.Unmarshal(b, &c); err != nil || status != 401 || c.Error != kind || c.Challenge == "" {
		t.Fatalf("want 401 %s with a challenge, got %d %s", kind, status, b)
	}
	return c
}

// enrolByChallenge enrols and confirms a factor at base (auth's, or the gateway's /auth)
// with an enrol challenge, returning the login it completes (token, refresh token and
// recovery codes) and the factor's secret.
func enrolByChallenge(t *testing.T, base, challenge string) (mfaLogin, string) {
	t.Helper()
	resp, b := call(t, "POST", base+"/login/mfa/enrol", "", `{"challenge":"`+challenge+`"}`)
	var en struct{ Secret string }
	if resp.StatusCode != 201 || json.Unmarshal(b, &en) != nil || en.Secret == "" {
		t.Fatalf("enrol with the challenge: %d %s", resp.StatusCode, b)
	}
	resp, b = call(t, "POST", base+"/login/mfa/confirm", "", `{"challenge":"`+challenge+`","code":"`+totpNow(t, en.Secret, 0)+`"}`)
	var l mfaLogin
	if resp.StatusCode != 200 || json.Unmarshal(b, &l) != nil || l.Token == "" || len(l.RecoveryCodes) != 10 {
		t.Fatalf("confirm with the challenge: %d %s", resp.StatusCode, b)
	}
	return l, en.Secret
}

// mfaLogin is a login completed by confirming a factor.
type mfaLogin struct {
	Token, RefreshToken string
	RecoveryCodes       []string
}

// caller sends one request (call, or a TLS client's twin).
type caller func(t *testing.T, method, url, token, body string, headers ...string) (*http.Response, []byte)

// enrolOwn enrols a factor for the holder of token at base and returns its secret.
func enrolOwn(t *testing.T, call caller, base, token string) string {
	t.Helper()
	resp, b := call(t, "POST", base+"/mfa/totp", token, "")
	var en struct{ Secret string }
	if resp.StatusCode != 201 || json.Unmarshal(b, &en) != nil || en.Secret == "" {
		t.Fatalf("enrol: %d %s", resp.StatusCode, b)
	}
	return en.Secret
}

// mfaRows fills the role matrix's MFA placeholders that do not depend on the caller:
// {mfaChallenge} (a fresh mfa challenge of the world's MFA user), {mfaRecovery} (one of its
// unused recovery codes), {enrolChallenge} (a fresh analyst's enrol challenge: the matrix
// runs with --auth-require-mfa-roles=analyst) and {enrolConfirm} (a whole body confirming a
// factor enrolled with a fresh enrol challenge). ok is false when s has none of them.
func (w *world) mfaFill(s string) (string, bool) {
	switch {
	case strings.Contains(s, "{mfaChallenge}"):
		resp, b := call(w.t, "POST", w.base["auth"]+"/login", "", `{"email":"`+w.mfaEmail+`","password":"`+matrixPassword+`"}`)
		return strings.Replace(s, "{mfaChallenge}", challengeOf(w.t, resp.StatusCode, b, "mfa_required").Challenge, 1), true
	case strings.Contains(s, "{mfaRecovery}"):
		if len(w.mfaRecovery) == 0 {
			w.t.Fatal("the MFA user ran out of recovery codes")
		}
		c := w.mfaRecovery[0]
		w.mfaRecovery = w.mfaRecovery[1:]
		return strings.Replace(s, "{mfaRecovery}", c, 1), true
	case strings.Contains(s, "{enrolChallenge}"):
		return strings.Replace(s, "{enrolChallenge}", w.enrolChallenge(), 1), true
	case strings.Contains(s, "{enrolConfirm}"):
		ch := w.enrolChallenge()
		secret := enrolOwnByChallenge(w.t, w.base["auth"], ch)
		return strings.Replace(s, "{enrolConfirm}", `{"challenge":"`+ch+`","code":"`+totpNow(w.t, secret, 0)+`"}`, 1), true
	}
	return s, false
}

// enrolOwnByChallenge enrols (without confirming) with an enrol challenge; the secret.
func enrolOwnByChallenge(t *testing.T, base, challenge string) string {
	t.Helper()
	resp, b := call(t, "POST", base+"/login/mfa/enrol", "", `{"challenge":"`+challenge+`"}`)
	var en struct{ Secret string }
	if resp.StatusCode != 201 || json.Unmarshal(b, &en) != nil || en.Secret == "" {
		t.Fatalf("enrol with the challenge: %d %s", resp.StatusCode, b)
	}
	return en.Secret
}

// enrolChallenge creates a fresh analyst (a role that must enrol) and returns the enrol
// challenge its first login answers.
func (w *world) enrolChallenge() string {
	email := w.fill("e{n}@example.org")
	w.createAsAdmin("auth", "/users", `{"email":"`+email+`","password":"`+matrixPassword+`","role":"analyst"}`)
	resp, b := call(w.t, "POST", w.base["auth"]+"/login", "", `{"email":"`+email+`","password":"`+matrixPassword+`"}`)
	c := challengeOf(w.t, resp.StatusCode, b, "mfa_required")
	if !c.Enrol {
		w.t.Fatalf("no enrol: %s", b)
	}
	return c.Challenge
}

// setUpMFAUser gives the world a user with a confirmed factor and its recovery codes.
func (w *world) setUpMFAUser() {
	w.mfaEmail = "mfa@example.org"
	w.createAsAdmin("auth", "/users", `{"email":"`+w.mfaEmail+`","password":"`+matrixPassword+`","role":"billing"}`)
	token, _ := w.login(w.mfaEmail)
	secret := enrolOwn(w.t, call, w.base["auth"], token)
	resp, b := call(w.t, "POST", w.base["auth"]+"/mfa/totp/confirm", token, `{"code":"`+totpNow(w.t, secret, 0)+`"}`)
	var rc struct{ RecoveryCodes []string }
	if resp.StatusCode != 200 || json.Unmarshal(b, &rc) != nil || len(rc.RecoveryCodes) != 10 {
		w.t.Fatalf("confirm: %d %s", resp.StatusCode, b)
	}
	w.mfaRecovery = rc.RecoveryCodes
}

// mfaBody fills the caller-dependent MFA placeholders of a matrix body for role: {totpCode}
// (the role enrols a fresh factor and sends its code; anonymous callers send any code) and
// {recoveryCode} (one of the recovery codes the role's confirmation answered).
func (w *world) mfaBody(body, role string) string {
	if strings.Contains(body, "{totpCode}") {
		code := "123456"
		if role != "" {
			code = totpNow(w.t, enrolOwn(w.t, call, w.base["auth"], w.tokens[role]), 0)
		}
		body = strings.ReplaceAll(body, "{totpCode}", code)
	}
	if strings.Contains(body, "{recoveryCode}") {
		code := "AAAA-AAAA-AAAA-AAAA"
		if c, ok := w.recovery[role]; ok {
			code = c
		}
		body = strings.ReplaceAll(body, "{recoveryCode}", code)
	}
	return body
}

// mfaAnswer remembers, after a role's confirmation, one of the recovery codes it answered.
func (w *world) mfaAnswer(body, role string, status int, b []byte) {
	if !strings.Contains(body, `"code"`) || status != 200 {
		return
	}
	var rc struct{ RecoveryCodes []string }
	if json.Unmarshal(b, &rc) == nil && len(rc.RecoveryCodes) > 0 {
		if w.recovery == nil {
			w.recovery = map[string]string{}
		}
		w.recovery[role] = rc.RecoveryCodes[0]
	}
}

// gatewayMFAJourney is TestGatewayJourney's MFA step, through the gateway (auth over gRPC):
// the signed-in user enrols a TOTP factor and confirms it with a code computed by oathtool
// (Debian's, an independent implementation; pquerna's when it is not installed), its next
// login answers 401 mfa_required with a challenge, /auth/login/mfa completes it, the same
// code is refused on a second challenge, and a recovery code disables the factor.
func gatewayMFAJourney(t *testing.T, call caller, gw, token, email, password string) {
	t.Helper()
	secret := enrolOwn(t, call, gw+"/auth", token)
	code := func(offset time.Duration) string {
		if _, err := exec.LookPath("oathtool"); err != nil {
			return totpNow(t, secret, offset)
		}
		out, err := exec.Command("oathtool", "--totp", "-b", "--now", time.Now().Add(offset).UTC().Format("2006-01-02 15:04:05 UTC"), secret).Output()
		if err != nil {
			t.Fatalf("oathtool: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	resp, b := call(t, "POST", gw+"/auth/mfa/totp/confirm", token, `{"code":"`+code(0)+`"}`)
	var rc struct{ RecoveryCodes []string }
	if resp.StatusCode != 200 || json.Unmarshal(b, &rc) != nil || len(rc.RecoveryCodes) != 10 {
		t.Fatalf("confirm through the gateway: %d %s", resp.StatusCode, b)
	}
	login := `{"email":"` + email + `","password":"` + password + `"}`
	resp, b = call(t, "POST", gw+"/auth/login", "", login)
	ch := challengeOf(t, resp.StatusCode, b, "mfa_required")
	// The next step's code (±1 step is accepted): the confirming code's step is used.
	next := code(30 * time.Second)
	resp, b = call(t, "POST", gw+"/auth/login/mfa", "", `{"challenge":"`+ch.Challenge+`","code":"`+next+`"}`)
	var pair struct{ Token, RefreshToken string }
	if resp.StatusCode != 200 || json.Unmarshal(b, &pair) != nil || pair.Token == "" || pair.RefreshToken == "" {
		t.Fatalf("login/mfa through the gateway: %d %s", resp.StatusCode, b)
	}
	resp, b = call(t, "POST", gw+"/auth/login", "", login)
	ch = challengeOf(t, resp.StatusCode, b, "mfa_required")
	if resp, b := call(t, "POST", gw+"/auth/login/mfa", "", `{"challenge":"`+ch.Challenge+`","code":"`+next+`"}`); resp.StatusCode != 401 || errWord(b) != "unauthenticated" {
		t.Fatalf("a reused code through the gateway: %d %s", resp.StatusCode, b)
	}
	if resp, b := call(t, "POST", gw+"/auth/mfa/totp/disable", pair.Token, `{"recoveryCode":"`+rc.RecoveryCodes[0]+`"}`); resp.StatusCode != 204 {
		t.Fatalf("disable through the gateway: %d %s", resp.StatusCode, b)
	}
	if resp, b := call(t, "POST", gw+"/auth/login", "", login); resp.StatusCode != 200 {
		t.Fatalf("login after disable: %d %s", resp.StatusCode, b)
	}
}
