package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
)

// as returns a context acting as user u from a client address.
func as(u User) context.Context {
	ctx := authz.WithPrincipal(context.Background(), authz.Principal{Subject: u.ID, Email: u.Email, Role: u.Role})
	return observe.WithClientAddr(observe.WithRequestID(ctx, observe.NewRequestID()), "192.0.2.9")
}

// TestChangePassword: a signed-in user changes its own password with the current one; the
// old one then fails, the new one logs in, and every refresh token of the user is revoked.
// A wrong current password is refused (unauthenticated) and counts toward the account's
// throttle like a failed login, and toward the change's own key — strangers' failed logins
// never block the change; a common, too short or unchanged new
// password is refused; a service principal has no password to change. Everything is
// audited and no password appears in an error.
func TestChangePassword(t *testing.T) {
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, Options{Throttle: ThrottleOptions{AccountAttempts: 3}})
		u := e.user(t, "changer@example.org", authz.RoleClinician)
		s1, err := e.svc.Login(from("192.0.2.9"), LoginRequest{Email: u.Email, Password: pw})
		if err != nil {
			t.Fatal(err)
		}
		s2, err := e.svc.Login(from("192.0.2.10"), LoginRequest{Email: u.Email, Password: pw})
		if err != nil {
			t.Fatal(err)
		}

		for name, req := range map[string]ChangePasswordRequest{
			"no current":   {NewPassword: "a brand new passphrase"},
			"short new":    {CurrentPassword: pw, NewPassword: "short"},
			"common new":   {CurrentPassword: pw, NewPassword: "password123456"},
			"the same one": {CurrentPassword: pw, NewPassword: pw},
			"the email":    {CurrentPassword: pw, NewPassword: "Changer@Example.org"},
		} {
			err := e.svc.ChangePassword(as(u), req)
			var ee *errs.Error
			if !errors.As(err, &ee) || ee.Kind != errs.InvalidArgument {
				t.Fatalf("%s: %v, want invalid argument", name, err)
			}
			if strings.Contains(err.Error(), "password123456") || strings.Contains(err.Error(), pw) {
				t.Fatalf("%s: the error shows a password: %v", name, err)
			}
		}
		if err := e.svc.ChangePassword(authz.Service(context.Background(), "auth"), ChangePasswordRequest{CurrentPassword: pw, NewPassword: "a brand new passphrase"}); !errors.Is(err, errs.New(errs.PermissionDenied, "")) {
			t.Fatalf("service principal: %v", err)
		}

		// Two wrong current passwords count as failed logins: with a limit of 3, one more
		// failed login locks the account.
		for range 2 {
			err := e.svc.ChangePassword(as(u), ChangePasswordRequest{CurrentPassword: "not the password 1", NewPassword: "a brand new passphrase"})
			if !errors.Is(err, ErrBadCurrentPassword) {
				t.Fatalf("wrong current password: %v", err)
			}
			var ee *errs.Error
			if !errors.As(err, &ee) || ee.Kind != errs.Unauthenticated || ee.Message != "the current password is wrong" {
				t.Fatalf("wrong current password: %#v", err)
			}
		}
		if _, err := e.svc.Login(from("198.51.100.1"), LoginRequest{Email: u.Email, Password: "not the password 2"}); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("third failure: %v", err)
		}
		if _, err := e.svc.Login(from("198.51.100.1"), LoginRequest{Email: u.Email, Password: pw}); !errors.Is(err, errs.New(errs.RateLimited, "")) {
			t.Fatalf("the account's unknown-device logins after the failures: %v, want rate limited", err)
		}
		// Strangers' failed logins never block the user's own change; a third wrong current
		// password locks the change itself (its own key, limit 3).
		if err := e.svc.ChangePassword(as(u), ChangePasswordRequest{CurrentPassword: "not the password 3", NewPassword: "a brand new passphrase"}); !errors.Is(err, ErrBadCurrentPassword) {
			t.Fatalf("third wrong current password: %v", err)
		}
		if err := e.svc.ChangePassword(as(u), ChangePasswordRequest{CurrentPassword: pw, NewPassword: "a brand new passphrase"}); !errors.Is(err, errs.New(errs.RateLimited, "")) {
			t.Fatalf("locked change: %v, want rate limited", err)
		}
		e.clock.Add(2 * time.Hour)
		for range 20 { // strangers: failed logins for the account from unknown devices
			_, _ = e.svc.Login(from("203.0.113.7"), LoginRequest{Email: u.Email, Password: "a stranger's guess 1"})
		}

		if err := e.svc.ChangePassword(as(u), ChangePasswordRequest{CurrentPassword: pw, NewPassword: "a brand new passphrase"}); err != nil {
			t.Fatal(err)
		}
		// The strangers locked the account's unknown devices; the user's own device goes on.
		if _, err := e.svc.Login(from("192.0.2.9"), LoginRequest{Email: u.Email, Password: pw, DeviceToken: s1.DeviceToken}); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("old password: %v", err)
		}
		if _, err := e.svc.Login(from("192.0.2.9"), LoginRequest{Email: u.Email, Password: "a brand new passphrase", DeviceToken: s1.DeviceToken}); err != nil {
			t.Fatalf("new password: %v", err)
		}
		for _, s := range []TokenPair{s1, s2} {
			if _, err := e.svc.Refresh(from("192.0.2.9"), RefreshRequest{RefreshToken: s.RefreshToken}); !errors.Is(err, ErrBadRefreshToken) {
				t.Fatalf("a session from before the change refreshed: %v", err)
			}
		}
		got := strings.Join(e.auditActions(t, u.ID), ",")
		if !strings.Contains(got, "password_change:denied,password_change:denied,login:denied,") || !strings.Contains(got, "password_change:success") {
			t.Fatalf("audit %s", got)
		}
	})
}
