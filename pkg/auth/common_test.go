package auth

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
)

// TestCommonPasswords: the list and its variations are refused, whatever the case; the
// passwords the tests and a careful user choose are not.
func TestCommonPasswords(t *testing.T) {
	for _, p := range []string{
		"password123456", "Password123456", "PASSWORD2024!!", "p@ssw0rd12345", "!!qwerty123456",
		"qwertyuiop123", "123456789012", "098765432109", "aaaaaaaaaaaa", "abcabcabcabc",
		"121212121212", "abcdefghijkl", "qwertyqwerty", "dragondragon", "letmein123456",
		"iloveyou1234", "1q2w3e4r5t6y", "Welcome12345", "zxcvbnm12345", "admin1234567",
	} {
		if !isCommonPassword(p) {
			t.Errorf("%q passes, want refused", p)
		}
		if msg := checkPassword(p, ""); !strings.Contains(msg, "common") {
			t.Errorf("checkPassword(%q) = %q, want the common-password refusal", p, msg)
		}
	}
	for _, p := range []string{
		"a long enough password", "clinician password", "the-admin-password", "correct horse battery staple",
		"invited password", "Tr0ub4dor&3xyz", "837261948372", "wrong password!",
	} {
		if isCommonPassword(p) {
			t.Errorf("%q refused, want accepted", p)
		}
	}
	g, err := GeneratePassword()
	if err != nil || isCommonPassword(g) {
		t.Fatalf("generated %q: %v", g, err)
	}
}

// TestCommonPasswordRefusedEverywhere: creating a user and setting a password with a token
// refuse password123456 with a field error (the password is in no message).
func TestCommonPasswordRefusedEverywhere(t *testing.T) {
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, Options{})
		_, err := e.svc.CreateUser(admin("root"), CreateUserRequest{Email: "common@example.org", Password: "password123456", Role: authz.RoleClinician})
		wantCommon(t, err, "password")
		c := e.invite(t, "invited-common@example.org", authz.RoleClinician)
		err = e.svc.SetPassword(context.Background(), SetPasswordRequest{Token: c.InviteToken, NewPassword: "password123456"})
		wantCommon(t, err, "newPassword")
		// The token was not used up by the refusal.
		if err := e.svc.SetPassword(context.Background(), SetPasswordRequest{Token: c.InviteToken, NewPassword: "a long enough password"}); err != nil {
			t.Fatal(err)
		}
	})
}

func wantCommon(t *testing.T, err error, field string) {
	t.Helper()
	var ee *errs.Error
	if !errors.As(err, &ee) || ee.Kind != errs.InvalidArgument || !strings.Contains(ee.Fields[field], "common") {
		t.Fatalf("err = %v, want %s refused as common", err, field)
	}
	if strings.Contains(ee.Error(), "password123456") {
		t.Fatalf("the error shows the password: %v", ee)
	}
}
