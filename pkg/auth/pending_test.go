package auth

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
)

// brokenLog is an audit log whose every append fails, as during a database outage that
// starts right after a change commits.
type brokenLog struct{}

func (brokenLog) Append(context.Context, audit.Entry) error {
	return errors.New("audit log unreachable")
}

// TestChangesRecordTheirOwnEntry (issue 17, item 2): auth's changes — a user created, updated,
// a password reset and set with the reset token, every session ended — record their audit entry in their
// own transaction: with an audit log that fails every write after the commit, each
// acknowledged change still has its pending entry, which a writer started later chains.
func TestChangesRecordTheirOwnEntry(t *testing.T) {
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		keys, _, err := OpenKeyRing(filepath.Join(t.TempDir(), KeyFileName), KeyRingOptions{})
		if err != nil {
			t.Fatal(err)
		}
		svc, err := NewService(context.Background(), NewStore(d), keys, brokenLog{},
			Options{Hasher: NewArgon2id(fastArgon2id, 0)})
		if err != nil {
			t.Fatal(err)
		}
		ctx := admin("admin-1")
		c, err := svc.CreateUser(ctx, CreateUserRequest{Email: "pending@example.org", Password: pw, Role: authz.RoleClinician})
		if err != nil {
			t.Fatal(err)
		}
		role := authz.RoleBilling
		if _, err := svc.UpdateUser(ctx, UpdateUserRequest{ID: c.ID, Role: &role}); err != nil {
			t.Fatal(err)
		}
		r, err := svc.ResetPassword(ctx, ResetPasswordRequest{ID: c.ID})
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.SetPassword(from("192.0.2.9"), SetPasswordRequest{Token: r.ResetToken, NewPassword: "Quartz-Lantern-Orbit-77"}); err != nil {
			t.Fatal(err)
		}
		// The spent token is refused, and its transaction records no success.
		if err := svc.SetPassword(from("192.0.2.9"), SetPasswordRequest{Token: r.ResetToken, NewPassword: "another pending passphrase"}); err == nil {
			t.Fatal("a spent token set a password")
		}
		mine := authz.WithPrincipal(ctx, authz.Principal{Subject: c.ID, Role: role})
		if err := svc.LogoutAll(mine); err != nil {
			t.Fatal(err)
		}
		var actions []string
		if err := d.Select(&actions, d.Rebind(`SELECT action FROM `+audit.PendingTable+` WHERE subject_id = ? ORDER BY pseq`), c.ID); err != nil {
			t.Fatal(err)
		}
		want := []string{ActionUserCreate, ActionUserUpdate, ActionPasswordReset, ActionPasswordSet, ActionLogoutAll}
		if len(actions) != len(want) {
			t.Fatalf("pending entries %v, want %v", actions, want)
		}
		for i := range want {
			if actions[i] != want[i] {
				t.Fatalf("pending entries %v, want %v", actions, want)
			}
		}
		// A writer (the restarted service's) moves them into the chain.
		w := audit.NewWriter(d, audit.Options{Table: AuditTable})
		defer w.Close(context.Background())
		if err := w.Settle(context.Background()); err != nil {
			t.Fatal(err)
		}
		got, err := audit.List(context.Background(), d, AuditTable, audit.Query{SubjectID: c.ID})
		if err != nil || len(got) != len(want) { // the refused set-password was never written (the log was down)
			t.Fatalf("chained: %+v %v", got, err)
		}
		if rep, err := audit.Verify(context.Background(), d, AuditTable); err != nil || !rep.OK {
			t.Fatalf("verify: %+v %v", rep, err)
		}
	})
}

// mfaLogDown is an audit log that refuses every MFA entry written after the fact (as during
// an outage that starts right after the MFA change commits) and passes the rest to w.
type mfaLogDown struct{ w audit.Appender }

func (l mfaLogDown) Append(ctx context.Context, e audit.Entry) error {
	switch e.Action {
	case ActionMFAEnrol, ActionMFAConfirm, ActionMFADisable, ActionRecoveryCodeUsed:
		return errors.New("audit log unreachable")
	}
	return l.w.Append(ctx, e)
}

// TestMFAChangesRecordTheirOwnEntry (issue 17, item 2): enrolling, confirming and disabling a
// TOTP factor and spending a recovery code (to disable, and to log in) record their entries in
// their own transactions: with every after-the-fact MFA audit write failing, each acknowledged
// MFA change still ends up in the chain. Written after the commit (before), none did.
func TestMFAChangesRecordTheirOwnEntry(t *testing.T) {
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, Options{})
		svc, err := NewService(context.Background(), e.store, e.keys, mfaLogDown{e.audit},
			Options{Now: e.clock.Now, Hasher: e.hasher})
		if err != nil {
			t.Fatal(err)
		}
		u := e.user(t, "mfa-pending@example.org", authz.RoleClinician)
		enrolConfirm := func() []string {
			t.Helper()
			en, err := svc.EnrolTOTP(as(u))
			if err != nil {
				t.Fatal(err)
			}
			rc, err := svc.ConfirmTOTP(as(u), ConfirmTOTPRequest{Code: code(t, en.Secret, e.clock.Now())})
			if err != nil {
				t.Fatal(err)
			}
			e.clock.Add(30 * time.Second)
			return rc.RecoveryCodes
		}
		rc := enrolConfirm()
		// Refusals change nothing and record nothing pending: a second enrolment, a wrong code.
		if _, err := svc.EnrolTOTP(as(u)); !errors.Is(err, ErrMFAEnabled) {
			t.Fatalf("enrol twice: %v", err)
		}
		if err := svc.DisableTOTP(as(u), DisableTOTPRequest{RecoveryCode: "AAAA-AAAA-AAAA-AAAA"}); !errors.Is(err, ErrBadCode) {
			t.Fatalf("disable with a wrong recovery code: %v", err)
		}
		if err := svc.DisableTOTP(as(u), DisableTOTPRequest{RecoveryCode: rc[0]}); err != nil {
			t.Fatal(err)
		}
		rc = enrolConfirm()
		_, err = svc.Login(from("192.0.2.7"), LoginRequest{Email: u.Email, Password: pw})
		ch := challengeOf(t, err, errs.MFARequired)
		if _, err := svc.LoginMFA(from("192.0.2.7"), LoginMFARequest{Challenge: ch.Challenge, RecoveryCode: rc[1]}); err != nil {
			t.Fatal(err)
		}
		if err := e.audit.Settle(context.Background()); err != nil {
			t.Fatal(err)
		}
		got, err := audit.List(context.Background(), d, AuditTable, audit.Query{SubjectID: u.ID})
		if err != nil {
			t.Fatal(err)
		}
		count := map[string]int{}
		for _, g := range got {
			if g.Outcome == audit.OutcomeSuccess {
				count[g.Action]++
			}
		}
		want := map[string]int{ActionMFAEnrol: 2, ActionMFAConfirm: 2, ActionMFADisable: 1, ActionRecoveryCodeUsed: 2, ActionLoginMFA: 1}
		for a, n := range want {
			if count[a] != n {
				t.Errorf("%s: %d successful entries, want %d (all: %v)", a, count[a], n, count)
			}
		}
		if rep, err := audit.Verify(context.Background(), d, AuditTable); err != nil || !rep.OK {
			t.Fatalf("verify: %+v %v", rep, err)
		}
	})
}
