package auth

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
)

// TestResetPassword: an admin's reset returns a one-time set-password token (32 random bytes)
// that expires after the reset TTL; the old password stops working at once and the user's
// refresh tokens are revoked; the token sets a new password (the common list applies), works
// once, and a second reset ends the first one's token. An admin cannot reset its own account;
// an unknown user is not found. Audited.
func TestResetPassword(t *testing.T) {
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, Options{ResetTTL: 30 * time.Minute})
		u := e.user(t, "forgetful@example.org", authz.RoleBilling)
		before, err := e.svc.Login(from("192.0.2.9"), LoginRequest{Email: u.Email, Password: pw})
		if err != nil {
			t.Fatal(err)
		}
		r, err := e.svc.ResetPassword(admin("root"), ResetPasswordRequest{ID: u.ID})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.RawURLEncoding.DecodeString(r.ResetToken)
		if err != nil || len(raw) != 32 || !r.ResetExpiresAt.Equal(e.clock.Now().UTC().Truncate(time.Microsecond).Add(30*time.Minute)) {
			t.Fatalf("reset %+v: %v", r, err)
		}
		if _, err := e.svc.Login(from("192.0.2.9"), LoginRequest{Email: u.Email, Password: pw}); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("old password after reset: %v", err)
		}
		if _, err := e.svc.Refresh(from("192.0.2.9"), RefreshRequest{RefreshToken: before.RefreshToken}); !errors.Is(err, ErrBadRefreshToken) {
			t.Fatalf("refresh after reset: %v", err)
		}
		// A second reset ends the first token; the second one sets the password, once.
		r2, err := e.svc.ResetPassword(admin("root"), ResetPasswordRequest{ID: u.ID})
		if err != nil {
			t.Fatal(err)
		}
		wantBadToken(t, e.svc.SetPassword(from("192.0.2.9"), SetPasswordRequest{Token: r.ResetToken, NewPassword: "a fresh long password"}))
		wantCommon(t, e.svc.SetPassword(from("192.0.2.9"), SetPasswordRequest{Token: r2.ResetToken, NewPassword: "password123456"}), "newPassword")
		if err := e.svc.SetPassword(from("192.0.2.9"), SetPasswordRequest{Token: r2.ResetToken, NewPassword: "a fresh long password"}); err != nil {
			t.Fatal(err)
		}
		wantBadToken(t, e.svc.SetPassword(from("192.0.2.9"), SetPasswordRequest{Token: r2.ResetToken, NewPassword: "another long password"}))
		if _, err := e.svc.Login(from("192.0.2.9"), LoginRequest{Email: u.Email, Password: "a fresh long password"}); err != nil {
			t.Fatalf("login with the new password: %v", err)
		}

		// Expiry: a token past its TTL does not work, and the user stays without a password.
		r3, err := e.svc.ResetPassword(admin("root"), ResetPasswordRequest{ID: u.ID})
		if err != nil {
			t.Fatal(err)
		}
		e.clock.Add(30*time.Minute + time.Second)
		wantBadToken(t, e.svc.SetPassword(from("192.0.2.9"), SetPasswordRequest{Token: r3.ResetToken, NewPassword: "a late long password"}))
		if _, err := e.svc.Login(from("192.0.2.9"), LoginRequest{Email: u.Email, Password: "a fresh long password"}); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("login after an expired reset: %v", err)
		}

		// Refusals: one's own account, an unknown or malformed id.
		root := e.user(t, "root-admin@example.org", authz.RoleAdmin)
		if _, err := e.svc.ResetPassword(admin(root.ID), ResetPasswordRequest{ID: root.ID}); errs.KindOf(err) != errs.InvalidArgument {
			t.Fatalf("own reset: %v", err)
		}
		if _, err := e.svc.ResetPassword(admin("root"), ResetPasswordRequest{ID: "5f0c1c52-8a53-4c8e-9d43-6c1f0e2b7a11"}); !errors.Is(err, ErrUserNotFound) {
			t.Fatalf("unknown user: %v", err)
		}
		if _, err := e.svc.ResetPassword(admin("root"), ResetPasswordRequest{ID: "nope"}); errs.KindOf(err) != errs.InvalidArgument {
			t.Fatalf("malformed id: %v", err)
		}
		got := strings.Join(e.auditActions(t, u.ID), ",")
		if strings.Count(got, "password_reset:success") != 3 || !strings.Contains(got, "password_set:success") {
			t.Fatalf("audit %s", got)
		}
	})
}
