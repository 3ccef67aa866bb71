package auth

import (
	"bytes"
	"context"
	"errors"
	"image/png"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v4"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
)

// code is the pquerna TOTP code of secret at t.
func code(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// challengeOf returns err's challenge, failing unless err is of kind k.
func challengeOf(t *testing.T, err error, k errs.Kind) *errs.Error {
	t.Helper()
	e := errs.As(err)
	if e == nil || e.Kind != k || len(e.Challenge) < 40 {
		t.Fatalf("err = %v (%+v), want %s with a challenge", err, e, k)
	}
	return e
}

// TestPasswordChangeRequired: the generated bootstrap password answers a right login with
// 401 password_change_required and a short-lived set-password token as its challenge (not a
// failure in the throttle); the token sets a new password once, which clears the flag; a
// chosen bootstrap password is not flagged.
func TestPasswordChangeRequired(t *testing.T) {
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, Options{MFA: MFAOptions{ChallengeTTL: 2 * time.Minute}})
		u, generated, created, err := BootstrapAdmin(context.Background(), e.store, e.svc, "admin@pms.local", "")
		if err != nil || !created {
			t.Fatal(err)
		}
		// Far more right logins than the account limit: none counts as a failure.
		var ch *errs.Error
		for range 8 {
			_, err = e.svc.Login(from("192.0.2.5"), LoginRequest{Email: u.Email, Password: generated})
			ch = challengeOf(t, err, errs.PasswordChangeRequired)
		}
		if !errors.Is(err, &errs.Error{Kind: errs.PasswordChangeRequired}) {
			t.Fatal("errors.Is by kind")
		}
		// The challenge is a set-password token: not the password itself, and it expires.
		e.clock.Add(3 * time.Minute)
		wantBadToken(t, e.svc.SetPassword(from("192.0.2.5"), SetPasswordRequest{Token: ch.Challenge, NewPassword: "a chosen long password"}))
		_, err = e.svc.Login(from("192.0.2.5"), LoginRequest{Email: u.Email, Password: generated})
		ch = challengeOf(t, err, errs.PasswordChangeRequired)
		// The new password follows the rules (the email's name part included).
		err = e.svc.SetPassword(from("192.0.2.5"), SetPasswordRequest{Token: ch.Challenge, NewPassword: "my Admin password 2026"})
		if errs.As(err).Fields["newPassword"] == "" {
			t.Fatalf("a password with the email's name: %v", err)
		}
		if err := e.svc.SetPassword(from("192.0.2.5"), SetPasswordRequest{Token: ch.Challenge, NewPassword: "a chosen long password"}); err != nil {
			t.Fatal(err)
		}
		wantBadToken(t, e.svc.SetPassword(from("192.0.2.5"), SetPasswordRequest{Token: ch.Challenge, NewPassword: "another long password"}))
		if _, err := e.svc.Login(from("192.0.2.5"), LoginRequest{Email: u.Email, Password: generated}); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("the generated password after the change: %v", err)
		}
		if _, err := e.svc.Login(from("192.0.2.5"), LoginRequest{Email: u.Email, Password: "a chosen long password"}); err != nil {
			t.Fatalf("login after the change: %v", err)
		}
		acts := e.auditActions(t, u.ID)
		for _, want := range []string{"password_change_required:success", "password_set:success", "login:success"} {
			if !slices.Contains(acts, want) {
				t.Errorf("audit %v lacks %s", acts, want)
			}
		}

		// A chosen bootstrap password is not flagged.
		d2 := dbtest.Open(t, d.Dialect, migrations.Auth())
		e2 := newEnv(t, d2, Options{})
		if _, _, _, err := BootstrapAdmin(context.Background(), e2.store, e2.svc, "admin@pms.local", "a configured long password"); err != nil {
			t.Fatal(err)
		}
		if _, err := e2.svc.Login(from("192.0.2.5"), LoginRequest{Email: "admin@pms.local", Password: "a configured long password"}); err != nil {
			t.Fatalf("a chosen bootstrap password: %v", err)
		}
	})
}

// TestPasswordMustNotContainEmail: new passwords that contain the whole email or its name
// part (≥ 4 characters), case-insensitively, are refused at create, set, change and reset-set;
// a 3-character name part is not a rule.
func TestPasswordMustNotContainEmail(t *testing.T) {
	for _, c := range []struct {
		password, email string
		refused         bool
	}{
		{"xx Margaret.Hale 2026", "margaret.hale@example.org", true},
		{"prefix margaret.hale@example.org", "Margaret.Hale@Example.org", true},
		{"the bob is fine here", "bob@example.org", false},
		{"a perfectly fine passphrase", "margaret.hale@example.org", false},
	} {
		if got := checkPassword(c.password, c.email) != ""; got != c.refused {
			t.Errorf("checkPassword(%q, %q) refused = %v", c.password, c.email, got)
		}
	}
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, Options{})
		_, err := e.svc.CreateUser(admin("root"), CreateUserRequest{Email: "nightingale@example.org", Password: "Nightingale rounds 2026", Role: authz.RoleClinician})
		if errs.As(err).Fields["password"] == "" {
			t.Fatalf("create: %v", err)
		}
		u := e.user(t, "nightingale@example.org", authz.RoleClinician)
		err = e.svc.ChangePassword(as(u), ChangePasswordRequest{CurrentPassword: pw, NewPassword: "NIGHTINGALE rounds 2026"})
		if errs.As(err).Fields["newPassword"] == "" {
			t.Fatalf("change: %v", err)
		}
		r, err := e.svc.ResetPassword(admin("root"), ResetPasswordRequest{ID: u.ID})
		if err != nil {
			t.Fatal(err)
		}
		err = e.svc.SetPassword(from("192.0.2.5"), SetPasswordRequest{Token: r.ResetToken, NewPassword: "i am nightingale@example.org"})
		if errs.As(err).Fields["newPassword"] == "" {
			t.Fatalf("reset-set: %v", err)
		}
	})
}

// TestTOTPLifecycle: enrol (secret, otpauth URI, a PNG QR; the secret sealed at rest),
// confirm with a first code (a wrong one is a 400 naming code) giving ten recovery codes
// stored hashed; a login then answers mfa_required with a challenge (a right password is no
// failure); /login/mfa completes it with a code; a code works once, one from two steps ago
// not at all, the next step's does; a recovery code works once; a challenge works once and
// expires; wrong codes are throttled like passwords; disabling needs a code.
func TestTOTPLifecycle(t *testing.T) {
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, Options{MFA: MFAOptions{ChallengeTTL: 5 * time.Minute}, Throttle: ThrottleOptions{AccountAttempts: 4}})
		u := e.user(t, "seacole@example.org", authz.RoleClinician)
		en, err := e.svc.EnrolTOTP(as(u))
		if err != nil {
			t.Fatal(err)
		}
		if len(en.Secret) != 32 || !strings.HasPrefix(en.OtpauthURI, "otpauth://totp/PMS:seacole@example.org?") ||
			!strings.Contains(en.OtpauthURI, "secret="+en.Secret) {
			t.Fatalf("enrolment %+v", en)
		}
		if _, err := png.Decode(bytes.NewReader(en.QRPNG)); err != nil {
			t.Fatalf("QR: %v", err)
		}
		var sealed string
		if err := d.GetContext(context.Background(), &sealed, d.Rebind(`SELECT secret_sealed FROM mfa_totp WHERE user_id = ?`), u.ID); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(sealed, en.Secret) || sealed == "" {
			t.Fatal("the TOTP secret rests in clear")
		}
		// Pending: logins are not asked for a code yet.
		before, err := e.svc.Login(from("192.0.2.7"), LoginRequest{Email: u.Email, Password: pw})
		if err != nil {
			t.Fatalf("login with a pending factor: %v", err)
		}
		wrong := code(t, en.Secret, e.clock.Now().Add(-10*time.Minute))
		_, err = e.svc.ConfirmTOTP(as(u), ConfirmTOTPRequest{Code: wrong})
		if errs.As(err).Fields["code"] == "" {
			t.Fatalf("confirm with a wrong code: %v", err)
		}
		rc, err := e.svc.ConfirmTOTP(as(u), ConfirmTOTPRequest{Code: code(t, en.Secret, e.clock.Now())})
		if err != nil || len(rc.RecoveryCodes) != RecoveryCodeCount {
			t.Fatalf("confirm: %+v %v", rc, err)
		}
		// Sessions begun with the password alone end (through Store.revokeUser).
		if _, err := e.svc.Refresh(from("192.0.2.7"), RefreshRequest{RefreshToken: before.RefreshToken}); !errors.Is(err, ErrBadRefreshToken) {
			t.Fatalf("a password-only session after confirming: %v", err)
		}
		var reasons []string
		if err := d.SelectContext(context.Background(), &reasons, d.Rebind(`SELECT reason FROM revocations WHERE user_id = ?`), u.ID); err != nil ||
			!slices.Contains(reasons, ReasonMFAEnabled) {
			t.Fatalf("revocations %v %v", reasons, err)
		}
		var stored int
		if err := d.GetContext(context.Background(), &stored, d.Rebind(`SELECT count(*) FROM mfa_recovery_codes WHERE user_id = ? AND code_hash = ?`),
			u.ID, hashRefreshToken(strings.ReplaceAll(rc.RecoveryCodes[0], "-", ""))); err != nil || stored != 1 {
			t.Fatalf("recovery codes are not stored as their hash: %d %v", stored, err)
		}
		if _, err := e.svc.EnrolTOTP(as(u)); !errors.Is(err, ErrMFAEnabled) {
			t.Fatalf("enrol twice: %v", err)
		}
		e.clock.Add(30 * time.Second)

		login := func() string {
			t.Helper()
			_, err := e.svc.Login(from("192.0.2.7"), LoginRequest{Email: u.Email, Password: pw})
			ch := challengeOf(t, err, errs.MFARequired)
			if ch.Enrol {
				t.Fatal("enrol on an enrolled account")
			}
			return ch.Challenge
		}
		// Right passwords are no failures: more of them than the limit still get challenges.
		for range 5 {
			login()
		}
		ch := login()
		now := e.clock.Now()
		pair, err := e.svc.LoginMFA(from("192.0.2.7"), LoginMFARequest{Challenge: ch, Code: code(t, en.Secret, now)})
		if err != nil || pair.Token == "" || pair.RefreshToken == "" {
			t.Fatalf("login with a code: %v", err)
		}
		// The challenge is spent; the same code on a new challenge is refused (its step is used).
		if _, err := e.svc.LoginMFA(from("192.0.2.7"), LoginMFARequest{Challenge: ch, Code: code(t, en.Secret, now)}); !errors.Is(err, ErrBadChallenge) {
			t.Fatalf("a challenge used twice: %v", err)
		}
		ch = login()
		if _, err := e.svc.LoginMFA(from("192.0.2.7"), LoginMFARequest{Challenge: ch, Code: code(t, en.Secret, now)}); !errors.Is(err, ErrBadCode) {
			t.Fatalf("a reused code: %v", err)
		}
		// Two steps later: the code of two steps ago is refused, the current one works.
		e.clock.Add(60 * time.Second)
		if _, err := e.svc.LoginMFA(from("192.0.2.7"), LoginMFARequest{Challenge: ch, Code: code(t, en.Secret, now)}); !errors.Is(err, ErrBadCode) {
			t.Fatalf("a code from two steps ago: %v", err)
		}
		if _, err := e.svc.LoginMFA(from("192.0.2.7"), LoginMFARequest{Challenge: ch, Code: code(t, en.Secret, e.clock.Now())}); err != nil {
			t.Fatalf("the current code after wrong ones: %v", err)
		}
		// A recovery code works once (typed without dashes, in lower case).
		rec := strings.ToLower(strings.ReplaceAll(rc.RecoveryCodes[3], "-", ""))
		if _, err := e.svc.LoginMFA(from("192.0.2.7"), LoginMFARequest{Challenge: login(), RecoveryCode: rec}); err != nil {
			t.Fatalf("recovery code: %v", err)
		}
		if _, err := e.svc.LoginMFA(from("192.0.2.7"), LoginMFARequest{Challenge: login(), RecoveryCode: rc.RecoveryCodes[3]}); !errors.Is(err, ErrBadCode) {
			t.Fatalf("a recovery code used twice: %v", err)
		}
		if n, _ := e.store.recoveryCodesLeft(context.Background(), u.ID); n != RecoveryCodeCount-1 {
			t.Fatalf("%d recovery codes left", n)
		}
		// A challenge expires.
		ch = login()
		e.clock.Add(6 * time.Minute)
		if _, err := e.svc.LoginMFA(from("192.0.2.7"), LoginMFARequest{Challenge: ch, Code: code(t, en.Secret, e.clock.Now())}); !errors.Is(err, ErrBadChallenge) {
			t.Fatalf("an expired challenge: %v", err)
		}
		// Malformed input is a 400 naming the field; a garbage challenge a 401.
		for _, r := range []LoginMFARequest{{Challenge: "x", Code: "12345"}, {Challenge: "x"}, {Challenge: "x", Code: "123456", RecoveryCode: "AAAA-AAAA-AAAA-AAAA"},
			{Challenge: "", Code: "123456"}, {Challenge: "x", RecoveryCode: "not a code"}, {Challenge: strings.Repeat("x", 300), Code: "123456"}} {
			wantKind(t, func() error { _, err := e.svc.LoginMFA(from("192.0.2.7"), r); return err }(), errs.InvalidArgument)
		}
		if _, err := e.svc.LoginMFA(from("192.0.2.7"), LoginMFARequest{Challenge: "garbage", Code: "123456"}); !errors.Is(err, ErrBadChallenge) {
			t.Fatalf("a garbage challenge: %v", err)
		}
		// Wrong codes are throttled like passwords: the account's limit, then 429 (after a
		// window, so earlier failures are forgotten).
		e.clock.Add(16 * time.Minute)
		ch = login()
		for i := range 4 {
			if _, err := e.svc.LoginMFA(from("192.0.2.8"), LoginMFARequest{Challenge: ch, Code: "000000"}); !errors.Is(err, ErrBadCode) {
				t.Fatalf("wrong code %d: %v", i, err)
			}
		}
		_, err = e.svc.LoginMFA(from("192.0.2.8"), LoginMFARequest{Challenge: ch, Code: code(t, en.Secret, e.clock.Now())})
		wantKind(t, err, errs.RateLimited)
		e.clock.Add(2 * time.Minute)
		e.clock.Add(30 * time.Second)

		// Disabling needs a right code; then logins need none.
		if err := e.svc.DisableTOTP(as(u), DisableTOTPRequest{Code: "000000"}); !errors.Is(err, ErrBadCode) {
			t.Fatalf("disable with a wrong code: %v", err)
		}
		if err := e.svc.DisableTOTP(as(u), DisableTOTPRequest{Code: code(t, en.Secret, e.clock.Now())}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Login(from("192.0.2.7"), LoginRequest{Email: u.Email, Password: pw}); err != nil {
			t.Fatalf("login after disable: %v", err)
		}
		if err := e.svc.DisableTOTP(as(u), DisableTOTPRequest{Code: "123456"}); !errors.Is(err, ErrMFANotEnrolled) {
			t.Fatalf("disable twice: %v", err)
		}
		acts := e.auditActions(t, u.ID)
		for _, want := range []string{"mfa_enrol:success", "mfa_confirm:rejected", "mfa_confirm:success", "mfa_required:success",
			"login_mfa:success", "login_mfa:denied", "recovery_code_used:success", "mfa_disable:denied", "mfa_disable:success", "lockout:denied"} {
			if !slices.Contains(acts, want) {
				t.Errorf("audit %v lacks %s", acts, want)
			}
		}
	})
}

// TestTOTPWithOathtool checks the codes against an independent implementation, Debian's
// oathtool: a code it computes from the enrolment secret logs in; a reused code, a code from
// two windows ago and a recovery code used twice are refused.
func TestTOTPWithOathtool(t *testing.T) {
	if _, err := exec.LookPath("oathtool"); err != nil {
		t.Skip("oathtool is not installed (Debian package oathtool; .ci/run installs it)")
	}
	oath := func(t *testing.T, secret string, at time.Time) string {
		t.Helper()
		out, err := exec.Command("oathtool", "--totp", "-b", "--now", at.UTC().Format("2006-01-02 15:04:05 UTC"), secret).Output()
		if err != nil {
			t.Fatalf("oathtool: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, Options{})
		u := e.user(t, "lister@example.org", authz.RoleAdmin)
		en, err := e.svc.EnrolTOTP(as(u))
		if err != nil {
			t.Fatal(err)
		}
		rc, err := e.svc.ConfirmTOTP(as(u), ConfirmTOTPRequest{Code: oath(t, en.Secret, e.clock.Now())})
		if err != nil {
			t.Fatalf("confirm with oathtool's code: %v", err)
		}
		e.clock.Add(90 * time.Second)
		challenge := func() string {
			_, err := e.svc.Login(from("192.0.2.9"), LoginRequest{Email: u.Email, Password: pw})
			return challengeOf(t, err, errs.MFARequired).Challenge
		}
		now := e.clock.Now()
		c := oath(t, en.Secret, now)
		if c != code(t, en.Secret, now) {
			t.Fatalf("oathtool %s, pquerna %s", c, code(t, en.Secret, now))
		}
		if _, err := e.svc.LoginMFA(from("192.0.2.9"), LoginMFARequest{Challenge: challenge(), Code: c}); err != nil {
			t.Fatalf("oathtool's code: %v", err)
		}
		if _, err := e.svc.LoginMFA(from("192.0.2.9"), LoginMFARequest{Challenge: challenge(), Code: c}); !errors.Is(err, ErrBadCode) {
			t.Fatalf("a reused code: %v", err)
		}
		e.clock.Add(30 * time.Second)
		old := oath(t, en.Secret, e.clock.Now().Add(-60*time.Second))
		if _, err := e.svc.LoginMFA(from("192.0.2.9"), LoginMFARequest{Challenge: challenge(), Code: old}); !errors.Is(err, ErrBadCode) {
			t.Fatalf("a code from two windows ago: %v", err)
		}
		if _, err := e.svc.LoginMFA(from("192.0.2.9"), LoginMFARequest{Challenge: challenge(), RecoveryCode: rc.RecoveryCodes[0]}); err != nil {
			t.Fatalf("recovery code: %v", err)
		}
		if _, err := e.svc.LoginMFA(from("192.0.2.9"), LoginMFARequest{Challenge: challenge(), RecoveryCode: rc.RecoveryCodes[0]}); !errors.Is(err, ErrBadCode) {
			t.Fatalf("a recovery code used twice: %v", err)
		}
	})
}

// TestRequireMFARoles: a user of a role in RequireRoles without a factor gets mfa_required
// with enrol and a challenge that enrols and confirms that user's factor (no one else's; an
// mfa challenge cannot enrol), the confirmation answering a token pair and the recovery
// codes; other roles log in as before.
func TestRequireMFARoles(t *testing.T) {
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		if _, err := NewService(context.Background(), NewStore(d), nil, nil, Options{MFA: MFAOptions{RequireRoles: []string{"root"}}}); err == nil {
			t.Fatal("an unknown role was accepted")
		}
		e := newEnv(t, d, Options{MFA: MFAOptions{RequireRoles: []string{authz.RoleAdmin}}})
		a := e.user(t, "nurse.admin@example.org", authz.RoleAdmin)
		c := e.user(t, "ward.clinician@example.org", authz.RoleClinician)
		if _, err := e.svc.Login(from("192.0.2.3"), LoginRequest{Email: c.Email, Password: pw}); err != nil {
			t.Fatalf("a role not required: %v", err)
		}
		_, err := e.svc.Login(from("192.0.2.3"), LoginRequest{Email: a.Email, Password: pw})
		ch := challengeOf(t, err, errs.MFARequired)
		if !ch.Enrol {
			t.Fatal("no enrol flag")
		}
		// The enrol challenge is not an mfa challenge, and the reverse.
		if _, err := e.svc.LoginMFA(from("192.0.2.3"), LoginMFARequest{Challenge: ch.Challenge, Code: "123456"}); !errors.Is(err, ErrBadChallenge) {
			t.Fatalf("an enrol challenge at /login/mfa: %v", err)
		}
		en, err := e.svc.LoginEnrolTOTP(from("192.0.2.3"), ChallengeEnrolRequest{Challenge: ch.Challenge})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(en.OtpauthURI, "nurse.admin") {
			t.Fatalf("enrolled someone else: %s", en.OtpauthURI)
		}
		// Enrolling again with the challenge replaces the pending secret (the old one's codes fail).
		en2, err := e.svc.LoginEnrolTOTP(from("192.0.2.3"), ChallengeEnrolRequest{Challenge: ch.Challenge})
		if err != nil || en2.Secret == en.Secret {
			t.Fatalf("re-enrol: %v", err)
		}
		l, err := e.svc.LoginConfirmTOTP(from("192.0.2.3"), ChallengeConfirmRequest{Challenge: ch.Challenge, Code: code(t, en2.Secret, e.clock.Now())})
		if err != nil || l.Token == "" || len(l.RecoveryCodes) != RecoveryCodeCount {
			t.Fatalf("confirm with the challenge: %+v %v", l, err)
		}
		// Confirming ended earlier sessions (the token version rose): the new session's token
		// carries the current version, so it is not revoked at birth.
		var claims authz.Claims
		if _, _, err := jwt.NewParser().ParseUnverified(l.Token, &claims); err != nil {
			t.Fatal(err)
		}
		if cur, err := e.store.userByID(context.Background(), d, a.ID); err != nil || cur.TokenVersion == 0 || claims.Version != cur.TokenVersion {
			t.Fatalf("token version %d, user's %d (%v)", claims.Version, cur.TokenVersion, err)
		}
		// Spent: it enrols nothing more.
		if _, err := e.svc.LoginEnrolTOTP(from("192.0.2.3"), ChallengeEnrolRequest{Challenge: ch.Challenge}); !errors.Is(err, ErrBadChallenge) {
			t.Fatalf("a spent enrol challenge: %v", err)
		}
		e.clock.Add(30 * time.Second)
		_, err = e.svc.Login(from("192.0.2.3"), LoginRequest{Email: a.Email, Password: pw})
		mch := challengeOf(t, err, errs.MFARequired)
		if mch.Enrol {
			t.Fatal("enrol again after confirming")
		}
		if _, err := e.svc.LoginEnrolTOTP(from("192.0.2.3"), ChallengeEnrolRequest{Challenge: mch.Challenge}); !errors.Is(err, ErrBadChallenge) {
			t.Fatalf("an mfa challenge enrolled: %v", err)
		}
		if _, err := e.svc.LoginMFA(from("192.0.2.3"), LoginMFARequest{Challenge: mch.Challenge, Code: code(t, en2.Secret, e.clock.Now())}); err != nil {
			t.Fatal(err)
		}
		// A service principal has no factor of its own.
		wantKind(t, func() error { _, err := e.svc.EnrolTOTP(authz.Service(context.Background(), "patient")); return err }(), errs.PermissionDenied)
		acts := e.auditActions(t, a.ID)
		for _, want := range []string{"mfa_enrol_required:success", "mfa_enrol:success", "mfa_confirm:success", "login:success", "login_mfa:success"} {
			if !slices.Contains(acts, want) {
				t.Errorf("audit %v lacks %s", acts, want)
			}
		}
	})
}

// TestMFAKeyFile: the sealing key is created 0600 once and read back; a sealed secret opens
// only with its key and its user.
func TestMFAKeyFile(t *testing.T) {
	path := t.TempDir() + "/auth/mfa.key"
	k1, created, err := OpenMFAKey(path)
	if err != nil || !created || len(k1) != 32 {
		t.Fatalf("create: %v %v", created, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi, err)
	}
	k2, created, err := OpenMFAKey(path)
	if err != nil || created || !bytes.Equal(k1, k2) {
		t.Fatalf("reopen: %v %v", created, err)
	}
	s, _ := newSealer(k1)
	sealed, err := s.seal("JBSWY3DPEHPK3PXP", "user-1")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.open(sealed, "user-1"); err != nil || got != "JBSWY3DPEHPK3PXP" {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := s.open(sealed, "user-2"); err == nil {
		t.Fatal("opened for another user")
	}
	other, _ := newSealer(make([]byte, 32))
	if _, err := other.open(sealed, "user-1"); err == nil {
		t.Fatal("opened with another key")
	}
}

// TestTOTPCodeRaceOneWins: four logins racing with one code (each with its own challenge):
// the step is claimed under the factor's row lock, so exactly one wins.
func TestTOTPCodeRaceOneWins(t *testing.T) {
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, Options{Throttle: ThrottleOptions{AccountAttempts: 50}})
		u := e.user(t, "racer@example.org", authz.RoleBilling)
		en, err := e.svc.EnrolTOTP(as(u))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.ConfirmTOTP(as(u), ConfirmTOTPRequest{Code: code(t, en.Secret, e.clock.Now())}); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(30 * time.Second)
		var challenges []string
		for range 4 {
			_, err := e.svc.Login(from("192.0.2.11"), LoginRequest{Email: u.Email, Password: pw})
			challenges = append(challenges, challengeOf(t, err, errs.MFARequired).Challenge)
		}
		c := code(t, en.Secret, e.clock.Now())
		errc := make(chan error, len(challenges))
		for _, ch := range challenges {
			go func() {
				_, err := e.svc.LoginMFA(from("192.0.2.11"), LoginMFARequest{Challenge: ch, Code: c})
				errc <- err
			}()
		}
		wins := 0
		for range challenges {
			err := <-errc
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, ErrBadCode):
				t.Errorf("a losing racer: %v", err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d logins won with one code, want exactly 1", wins)
		}
	})
}
