package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
)

// invite creates email as an invited user (no password) and returns it with its token.
func (e *env) invite(t *testing.T, email, role string) CreatedUser {
	t.Helper()
	c, err := e.svc.CreateUser(admin("root"), CreateUserRequest{Email: email, Role: role})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func wantBadToken(t *testing.T, err error) {
	t.Helper()
	var ee *errs.Error
	if !errors.As(err, &ee) || ee.Kind != errs.InvalidArgument || ee.Fields["token"] == "" || ee.Message != ErrBadSetPasswordToken.Message {
		t.Fatalf("err = %v, want the bad set-password token error", err)
	}
}

// TestInviteSetPasswordLogin: a user created without a password is invited: the answer
// carries a one-time token (32 random bytes, base64url) that expires after the invite TTL
// and is stored only as its SHA-256; the invited user's login is refused exactly like a
// wrong password (same error, one hash); the token sets a password (the password rules
// apply, the email included), after which the user logs in, and the token (and any other
// of the user's) no longer works; everything is audited.
func TestInviteSetPasswordLogin(t *testing.T) {
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, Options{})
		c := e.invite(t, "Invited@Example.org", authz.RoleClinician)
		raw, err := base64.RawURLEncoding.DecodeString(c.InviteToken)
		if err != nil || len(raw) != 32 {
			t.Fatalf("invite token %q: %d bytes, %v", c.InviteToken, len(raw), err)
		}
		if c.InviteExpiresAt == nil || !c.InviteExpiresAt.Equal(e.clock.Now().Add(DefaultInviteTTL)) {
			t.Fatalf("expires %v, want now + %s", c.InviteExpiresAt, DefaultInviteTTL)
		}
		b, _ := json.Marshal(c)
		var shown map[string]any
		_ = json.Unmarshal(b, &shown)
		if shown["inviteToken"] != c.InviteToken || shown["inviteExpiresAt"] == nil || shown["id"] != c.ID || shown["email"] != "Invited@Example.org" {
			t.Fatalf("JSON %s", b)
		}
		// Stored: the hash only; the user has no password hash.
		var hashes []string
		if err := d.SelectContext(context.Background(), &hashes, `SELECT token_hash FROM set_password_tokens`); err != nil ||
			len(hashes) != 1 || hashes[0] != hashRefreshToken(c.InviteToken) {
			t.Fatalf("stored tokens %v %v", hashes, err)
		}
		var stored string
		if err := d.GetContext(context.Background(), &stored, d.Rebind(`SELECT password_hash FROM users WHERE id = ?`), c.ID); err != nil || stored != "" {
			t.Fatalf("invited user's password hash %q %v", stored, err)
		}
		got, err := e.svc.GetUser(admin("root"), c.ID)
		if err != nil || got != c.User {
			t.Fatalf("get %+v %v", got, err)
		}

		// Login before the password is set: the wrong-password answer, after one hash; no
		// guess (the empty string is refused as input anyway) gets in.
		before := e.hasher.n.Load()
		_, errInvited := e.svc.Login(from("198.51.100.9"), LoginRequest{Email: c.Email, Password: pw})
		_, errUnknown := e.svc.Login(from("198.51.100.9"), LoginRequest{Email: "nobody@example.org", Password: pw})
		if !errors.Is(errInvited, ErrBadCredentials) || errInvited.Error() != errUnknown.Error() || errs.KindOf(errInvited) != errs.Unauthenticated {
			t.Fatalf("invited login %v, unknown %v", errInvited, errUnknown)
		}
		if n := e.hasher.n.Load() - before; n != 2 {
			t.Fatalf("%d hashes for two refused logins; want one each", n)
		}

		// The password rules of CreateUser apply, the user's own email included; a refused
		// password leaves the token usable.
		for name, p := range map[string]string{"short": "eleven char", "blank": strings.Repeat(" ", 12), "the email": "invited@example.ORG", "NUL": "abcdefghijk\x00l"} {
			err := e.svc.SetPassword(from("198.51.100.9"), SetPasswordRequest{Token: c.InviteToken, NewPassword: p})
			var ee *errs.Error
			if !errors.As(err, &ee) || ee.Kind != errs.InvalidArgument || ee.Fields["newPassword"] == "" {
				t.Fatalf("password %s: %v", name, err)
			}
		}
		var ee *errs.Error
		err = e.svc.SetPassword(from("198.51.100.9"), SetPasswordRequest{})
		if !errors.As(err, &ee) || ee.Fields["token"] == "" || ee.Fields["newPassword"] == "" {
			t.Fatalf("empty request: %v", err)
		}
		err = e.svc.SetPassword(from("198.51.100.9"), SetPasswordRequest{Token: strings.Repeat("t", 257), NewPassword: pw})
		if !errors.As(err, &ee) || ee.Fields["token"] == "" {
			t.Fatalf("257-character token: %v", err)
		}
		// An unknown token costs no password hash.
		before = e.hasher.n.Load()
		wantBadToken(t, e.svc.SetPassword(from("198.51.100.9"), SetPasswordRequest{Token: strings.Repeat("A", 43), NewPassword: pw}))
		if n := e.hasher.n.Load() - before; n != 0 {
			t.Fatalf("%d hashes for an unknown token", n)
		}

		e.clock.Add(time.Hour)
		if err := e.svc.SetPassword(from("198.51.100.9"), SetPasswordRequest{Token: c.InviteToken, NewPassword: pw}); err != nil {
			t.Fatal(err)
		}
		pair, err := e.svc.Login(from("198.51.100.9"), LoginRequest{Email: c.Email, Password: pw})
		if err != nil || pair.Token == "" {
			t.Fatalf("login after set: %+v %v", pair, err)
		}
		after, _ := e.svc.GetUser(admin("root"), c.ID)
		if !after.UpdatedAt.Equal(e.clock.Now()) {
			t.Fatalf("updatedAt %v, want %v", after.UpdatedAt, e.clock.Now())
		}
		// Single use: the same token again, even with another good password, is refused and
		// changes nothing.
		wantBadToken(t, e.svc.SetPassword(from("198.51.100.9"), SetPasswordRequest{Token: c.InviteToken, NewPassword: pw + " two"}))
		if _, err := e.svc.Login(from("198.51.100.9"), LoginRequest{Email: c.Email, Password: pw}); err != nil {
			t.Fatalf("login after a refused reuse: %v", err)
		}
		if got := e.auditActions(t, c.ID); strings.Join(got, ",") != "user_create:success,login:denied,password_set:success,login:success,password_set:denied,login:success" {
			t.Fatalf("audit %v", got)
		}
		all, _ := e.svc.Audit(context.Background(), AuditQuery{UserID: c.ID, Limit: 10})
		all = withoutReads(all)
		if all[3].Action != ActionPasswordSet || all[3].Actor != c.ID || all[3].Role != authz.RoleClinician ||
			all[1].Action != ActionPasswordSet || all[1].Actor != authz.Anonymous {
			t.Fatalf("password_set audited as %+v, reuse as %+v", all[3], all[1])
		}
	})
}

// TestInviteExpires: the token works until the invite TTL (injected clock) and not a
// moment after; a disabled invited user's token does not work either; housekeeping deletes
// expired tokens a day after.
func TestInviteExpires(t *testing.T) {
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, Options{InviteTTL: 2 * time.Hour})
		c := e.invite(t, "late@example.org", authz.RoleBilling)
		if !c.InviteExpiresAt.Equal(e.clock.Now().Add(2 * time.Hour)) {
			t.Fatalf("expires %v", c.InviteExpiresAt)
		}
		e.clock.Add(2 * time.Hour)
		wantBadToken(t, e.svc.SetPassword(from("192.0.2.5"), SetPasswordRequest{Token: c.InviteToken, NewPassword: pw}))
		if _, err := e.svc.Login(from("192.0.2.5"), LoginRequest{Email: c.Email, Password: pw}); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("login with an expired invite: %v", err)
		}

		e.user(t, "boss@example.org", authz.RoleAdmin)
		c2 := e.invite(t, "gone@example.org", authz.RoleBilling)
		yes := true
		if _, err := e.svc.UpdateUser(admin("boss"), UpdateUserRequest{ID: c2.ID, Disabled: &yes}); err != nil {
			t.Fatal(err)
		}
		wantBadToken(t, e.svc.SetPassword(from("192.0.2.5"), SetPasswordRequest{Token: c2.InviteToken, NewPassword: pw}))
		if got := e.auditActions(t, c2.ID); strings.Join(got, ",") != "user_create:success,user_update:success,password_set:denied" {
			t.Fatalf("audit %v", got)
		}

		if err := e.store.prune(context.Background(), e.clock.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := d.GetContext(context.Background(), &n, `SELECT count(*) FROM set_password_tokens`); err != nil || n != 1 {
			t.Fatalf("%d tokens after pruning, want the live one (%v)", n, err)
		}
	})
}

// TestConcurrentSetPasswordOfOneToken: of four simultaneous uses of one token exactly one
// succeeds.
func TestConcurrentSetPasswordOfOneToken(t *testing.T) {
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, Options{})
		c := e.invite(t, "race@example.org", authz.RoleAnalyst)
		var ok atomic.Int32
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := e.svc.SetPassword(from("192.0.2.1"), SetPasswordRequest{Token: c.InviteToken, NewPassword: pw + strings.Repeat("!", i)})
				if err == nil {
					ok.Add(1)
				} else if !errors.Is(err, ErrBadSetPasswordToken) {
					t.Errorf("concurrent set: %v", err)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 1 {
			t.Fatalf("%d uses of one token succeeded", ok.Load())
		}
	})
}

// TestInvitedAdminIsNotActive: an invited admin (no password yet) does not count as an active
// admin, so the last real admin cannot step down in its favour; once it has set its
// password, it does.
func TestInvitedAdminIsNotActive(t *testing.T) {
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, Options{})
		root := e.user(t, "root@example.org", authz.RoleAdmin)
		inv := e.invite(t, "next-admin@example.org", authz.RoleAdmin)
		clin := authz.RoleClinician
		if _, err := e.svc.UpdateUser(admin(root.ID), UpdateUserRequest{ID: root.ID, Role: &clin}); !errors.Is(err, ErrLastAdmin) {
			t.Fatalf("demote the last admin beside an invited one: %v", err)
		}
		// The invited admin itself may be demoted or disabled freely.
		if _, err := e.svc.UpdateUser(admin(root.ID), UpdateUserRequest{ID: inv.ID, Role: &clin}); err != nil {
			t.Fatalf("demote the invited admin: %v", err)
		}
		adm := authz.RoleAdmin
		if _, err := e.svc.UpdateUser(admin(root.ID), UpdateUserRequest{ID: inv.ID, Role: &adm}); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.SetPassword(from("192.0.2.1"), SetPasswordRequest{Token: inv.InviteToken, NewPassword: pw}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.UpdateUser(admin(root.ID), UpdateUserRequest{ID: root.ID, Role: &clin}); err != nil {
			t.Fatalf("demote with an active second admin: %v", err)
		}
	})
}
