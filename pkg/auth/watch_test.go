package auth

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	eventsv1 "github.com/pms/pms/proto/pms/events/v1"
	"google.golang.org/protobuf/proto"
)

// waitSeq waits (with a deadline) until table has applied sequence seq.
func waitSeq(t *testing.T, table *authz.DenyTable, seq int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := table.Wait(ctx, seq); err != nil {
		t.Fatalf("table at %d, want %d: %v", table.Seq(), seq, err)
	}
}

// TestRevocationsReachAFollower: on both databases, every lifecycle change that must end
// access tokens — logout, disable, role change, password change (keeping the changing
// session), admin reset — appends a revocation in sequence and publishes its event through
// the outbox; a table following the feed in this process applies each (the token it ends is
// refused, the others are not), and a second follower starting later gets them as a
// snapshot, and one resuming from a sequence only what came after.
func TestRevocationsReachAFollower(t *testing.T) {
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, Options{})
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		t.Cleanup(func() { cancel(); wg.Wait() })
		feed := NewRevocationFeed(e.store, 10*time.Millisecond, 50*time.Millisecond)
		feed.now = e.clock.Now
		table := authz.NewDenyTable(0)
		wg.Add(2)
		go func() { defer wg.Done(); feed.Run(ctx) }()
		go func() { defer wg.Done(); feed.Follow(ctx, table, log.NewNopLogger()) }()
		verifier := authz.NewVerifier(authz.KeyFunc(e.keys.PublicKey), authz.DefaultIssuer, authz.DefaultAudience).WithRevocations(table)
		works := func(tok string) bool { _, err := verifier.Verify(ctx, tok); return err == nil }

		root := e.user(t, "root@example.org", authz.RoleAdmin)
		u := e.user(t, "nurse@example.org", authz.RoleClinician)
		s1, err := e.svc.Login(from("192.0.2.9"), LoginRequest{Email: u.Email, Password: pw})
		if err != nil {
			t.Fatal(err)
		}
		s2, err := e.svc.Login(from("192.0.2.9"), LoginRequest{Email: u.Email, Password: pw})
		if err != nil {
			t.Fatal(err)
		}
		if !works(s1.Token) || !works(s2.Token) {
			t.Fatal("fresh tokens refused")
		}
		head := func() int64 {
			h, err := e.store.revocationHead(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return h
		}
		// Logout ends that session only.
		if err := e.svc.Logout(from("192.0.2.9"), LogoutRequest{RefreshToken: s1.RefreshToken}); err != nil {
			t.Fatal(err)
		}
		waitSeq(t, table, head())
		if works(s1.Token) || !works(s2.Token) {
			t.Fatal("logout must end that session's access token only")
		}
		// A role change ends the access tokens but not the session: a refresh carries the new role.
		billingRole := authz.RoleBilling
		if _, err := e.svc.UpdateUser(admin(root.ID), UpdateUserRequest{ID: u.ID, Role: &billingRole}); err != nil {
			t.Fatal(err)
		}
		waitSeq(t, table, head())
		if works(s2.Token) {
			t.Fatal("a role change must end the access tokens of the old role")
		}
		s2, err = e.svc.Refresh(from("192.0.2.9"), RefreshRequest{RefreshToken: s2.RefreshToken})
		if err != nil {
			t.Fatal(err)
		}
		if p, err := verifier.Verify(ctx, s2.Token); err != nil || p.Role != authz.RoleBilling {
			t.Fatalf("refreshed after the role change: %+v %v", p, err)
		}
		// A password change keeps the changing session and ends the others.
		s3, err := e.svc.Login(from("192.0.2.9"), LoginRequest{Email: u.Email, Password: pw})
		if err != nil {
			t.Fatal(err)
		}
		p2, err := verifier.Verify(ctx, s2.Token)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.svc.ChangePassword(authz.WithPrincipal(from("192.0.2.9"), p2), ChangePasswordRequest{CurrentPassword: pw, NewPassword: "a brand new passphrase"}); err != nil {
			t.Fatal(err)
		}
		waitSeq(t, table, head())
		if !works(s2.Token) || works(s3.Token) {
			t.Fatal("a password change must keep the changing session and end the others")
		}
		// Disabling ends everything.
		yes := true
		if _, err := e.svc.UpdateUser(admin(root.ID), UpdateUserRequest{ID: u.ID, Disabled: &yes}); err != nil {
			t.Fatal(err)
		}
		waitSeq(t, table, head())
		if works(s2.Token) {
			t.Fatal("a disabled user's token still works")
		}
		if _, err := e.svc.Refresh(from("192.0.2.9"), RefreshRequest{RefreshToken: s2.RefreshToken}); err == nil {
			t.Fatal("a disabled user refreshed")
		}

		// Every revocation went to the outbox as an event on the auth topic, in order.
		var values [][]byte
		if err := d.SelectContext(ctx, &values, d.Rebind(`SELECT value FROM outbox WHERE topic = ? ORDER BY id`), TopicEvents); err != nil {
			t.Fatal(err)
		}
		var reasons []string
		for _, v := range values {
			var ev eventsv1.Revocation
			if err := proto.Unmarshal(v, &ev); err != nil || ev.GetUserId() != u.ID {
				t.Fatalf("event %v %v", &ev, err)
			}
			reasons = append(reasons, ev.GetReason())
		}
		want := []string{ReasonLogout, ReasonRoleChanged, ReasonPasswordChange, ReasonDisabled}
		if len(reasons) != len(want) {
			t.Fatalf("events %v, want %v", reasons, want)
		}
		for i := range want {
			if reasons[i] != want[i] {
				t.Fatalf("events %v, want %v", reasons, want)
			}
		}

		// A follower from scratch gets a snapshot; one resuming from sequence 2 only the rest.
		var first []Update
		wctx, wcancel := context.WithCancel(ctx)
		_ = feed.Watch(wctx, 0, func(u Update) error { first = append(first, u); wcancel(); return nil })
		if len(first) != 1 || !first[0].Reset || len(first[0].Entries) != 4 || first[0].Head != head() {
			t.Fatalf("snapshot %+v", first)
		}
		var resumed []Update
		wctx, wcancel = context.WithCancel(ctx)
		_ = feed.Watch(wctx, first[0].Entries[1].Seq, func(u Update) error { resumed = append(resumed, u); wcancel(); return nil })
		if len(resumed) != 1 || resumed[0].Reset || len(resumed[0].Entries) != 2 || resumed[0].Entries[0].Reason != ReasonPasswordChange {
			t.Fatalf("resumed %+v", resumed)
		}
		// A follower ahead of the database (restored from a backup) gets a snapshot.
		var ahead []Update
		wctx, wcancel = context.WithCancel(ctx)
		_ = feed.Watch(wctx, head()+100, func(u Update) error { ahead = append(ahead, u); wcancel(); return nil })
		if len(ahead) != 1 || !ahead[0].Reset || ahead[0].Head != head() {
			t.Fatalf("ahead %+v", ahead)
		}
	})
}
