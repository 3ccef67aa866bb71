package grpctransport

import (
	"errors"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pms/pms/pkg/auth"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/errs"
	authv1 "github.com/pms/pms/proto/pms/auth/v1"
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

// TestMFAOverGRPC: enrol and confirm over gRPC, a login then fails with mfa_required and its
// challenge (a raw client, which knows no kinds, sees Unauthenticated: it fails closed),
// LoginMfa completes it, a recovery code disables the factor. Codes of the next step are
// used so the real clock needs no waiting (±1 step is accepted).
func TestMFAOverGRPC(t *testing.T) {
	c, raw := startAuth(t, auth.ThrottleOptions{})
	ctx := testContext(t)
	pair, err := c.Login(ctx, auth.LoginRequest{Email: "admin@example.org", Password: authPassword})
	if err != nil {
		t.Fatal(err)
	}
	actx := authz.WithToken(ctx, pair.Token)
	if _, err := c.EnrolTOTP(ctx); errs.KindOf(err) != errs.Unauthenticated {
		t.Fatalf("enrol without a token: %v", err)
	}
	en, err := c.EnrolTOTP(actx)
	if err != nil || en.Secret == "" || len(en.QRPNG) < 100 {
		t.Fatalf("enrol: %v", err)
	}
	if _, err := c.ConfirmTOTP(actx, auth.ConfirmTOTPRequest{Code: "12345"}); errs.As(err).Fields["code"] == "" {
		t.Fatalf("confirm with 5 digits: %v", err)
	}
	rc, err := c.ConfirmTOTP(actx, auth.ConfirmTOTPRequest{Code: totpAt(t, en.Secret, time.Now())})
	if err != nil || len(rc.RecoveryCodes) != auth.RecoveryCodeCount {
		t.Fatalf("confirm: %+v %v", rc, err)
	}
	_, err = c.Login(ctx, auth.LoginRequest{Email: "admin@example.org", Password: authPassword})
	ch := errs.As(err)
	if ch.Kind != errs.MFARequired || ch.Challenge == "" || ch.Enrol || !errors.Is(err, &errs.Error{Kind: errs.MFARequired}) {
		t.Fatalf("login with MFA on: %#v", ch)
	}
	_, rerr := raw.Login(ctx, &authv1.LoginRequest{Email: "admin@example.org", Password: authPassword})
	st := status.Convert(rerr)
	var info *errdetails.ErrorInfo
	for _, d := range st.Details() {
		if i, ok := d.(*errdetails.ErrorInfo); ok {
			info = i
		}
	}
	if st.Code() != codes.Unauthenticated || info.GetReason() != "mfa_required" || info.GetMetadata()["challenge"] == "" {
		t.Fatalf("raw status %v %v", st, info)
	}
	if _, err := c.LoginMFA(ctx, auth.LoginMFARequest{Challenge: ch.Challenge, Code: "000000"}); !errors.Is(err, auth.ErrBadCode) {
		t.Fatalf("wrong code: %v", err)
	}
	p2, err := c.LoginMFA(ctx, auth.LoginMFARequest{Challenge: ch.Challenge, Code: totpAt(t, en.Secret, time.Now().Add(30*time.Second))})
	if err != nil || p2.Token == "" {
		t.Fatalf("login with a code: %v", err)
	}
	if _, err := c.LoginMFA(ctx, auth.LoginMFARequest{Challenge: ch.Challenge, Code: "123456"}); !errors.Is(err, auth.ErrBadChallenge) {
		t.Fatalf("a used challenge: %v", err)
	}
	if err := c.DisableTOTP(authz.WithToken(ctx, p2.Token), auth.DisableTOTPRequest{RecoveryCode: rc.RecoveryCodes[1]}); err != nil {
		t.Fatalf("disable with a recovery code: %v", err)
	}
	if _, err := c.Login(ctx, auth.LoginRequest{Email: "admin@example.org", Password: authPassword}); err != nil {
		t.Fatalf("login after disable: %v", err)
	}
}

// TestRequiredEnrolmentOverGRPC: with admin in RequireRoles the admin's login carries
// enrol=true through gRPC; the challenge enrols and confirms, answering a token pair and
// recovery codes.
func TestRequiredEnrolmentOverGRPC(t *testing.T) {
	c, _ := startAuth(t, auth.ThrottleOptions{}, func(o *auth.Options) { o.MFA.RequireRoles = []string{authz.RoleAdmin} })
	ctx := testContext(t)
	_, err := c.Login(ctx, auth.LoginRequest{Email: "admin@example.org", Password: authPassword})
	ch := errs.As(err)
	if ch.Kind != errs.MFARequired || !ch.Enrol || ch.Challenge == "" {
		t.Fatalf("login: %#v", ch)
	}
	en, err := c.LoginEnrolTOTP(ctx, auth.ChallengeEnrolRequest{Challenge: ch.Challenge})
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.LoginConfirmTOTP(ctx, auth.ChallengeConfirmRequest{Challenge: ch.Challenge, Code: totpAt(t, en.Secret, time.Now())})
	if err != nil || l.Token == "" || l.RefreshToken == "" || len(l.RecoveryCodes) != auth.RecoveryCodeCount {
		t.Fatalf("confirm: %+v %v", l, err)
	}
	if _, err := c.Validate(authz.WithToken(ctx, l.Token)); err != nil {
		t.Fatalf("the confirm's token: %v", err)
	}
	if _, err := c.LoginEnrolTOTP(ctx, auth.ChallengeEnrolRequest{Challenge: "garbage"}); !errors.Is(err, auth.ErrBadChallenge) {
		t.Fatalf("garbage challenge: %v", err)
	}
}
