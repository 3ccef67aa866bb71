package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v4"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
)

// retryOf returns the Retry-After of a rate-limited error, failing the test for any other.
func retryOf(t *testing.T, err error) time.Duration {
	t.Helper()
	var ee *errs.Error
	if !errors.As(err, &ee) || ee.Kind != errs.RateLimited || ee.RetryAfter <= 0 {
		t.Fatalf("err = %v, want rate limited with a Retry-After", err)
	}
	return ee.RetryAfter
}

// TestKnownDeviceNotLockedOut is issue 16's lock-out test: 100 failed logins for the admin's
// (predictable) email from unknown devices at several addresses lock only the account's
// unknown-device key; the admin signing in with the device token of an earlier login
// succeeds at once, even from one of the attackers' addresses (a shared NAT). A device token
// is bound to its user: another user's is an unknown device here. Only the first attempts
// are hashed (throttling before hashing).
func TestKnownDeviceNotLockedOut(t *testing.T) {
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, Options{})
		u := e.user(t, "admin@pms.local", authz.RoleAdmin)
		other := e.user(t, "other@example.org", authz.RoleClinician)
		earlier, err := e.svc.Login(from("192.0.2.1"), LoginRequest{Email: u.Email, Password: pw})
		if err != nil || earlier.DeviceToken == "" || earlier.DeviceToken == earlier.RefreshToken {
			t.Fatalf("login: %+v %v", earlier, err)
		}
		otherPair, err := e.svc.Login(from("192.0.2.2"), LoginRequest{Email: other.Email, Password: pw})
		if err != nil || otherPair.DeviceToken == "" {
			t.Fatal(err)
		}

		before := e.hasher.n.Load()
		limited := 0
		for i := range 100 {
			req := LoginRequest{Email: "Admin@PMS.local", Password: fmt.Sprintf("guess number %d", i)}
			switch i % 3 {
			case 1:
				req.DeviceToken = otherPair.DeviceToken // another user's device is unknown here
			case 2:
				req.DeviceToken = "an unknown device token"
			}
			_, err := e.svc.Login(from(fmt.Sprintf("198.51.100.%d", i%10)), req)
			switch {
			case errors.Is(err, ErrBadCredentials):
			case errs.KindOf(err) == errs.RateLimited:
				limited++
			default:
				t.Fatalf("attempt %d: %v", i, err)
			}
		}
		if hashes := e.hasher.n.Load() - before; hashes != 5 || limited != 95 {
			t.Fatalf("%d hashes and %d refusals of 100 failures; want 5 and 95", hashes, limited)
		}
		// From an unknown device the right password is refused too (429, no hash)...
		_, err = e.svc.Login(from("203.0.113.7"), LoginRequest{Email: u.Email, Password: pw})
		retryOf(t, err)
		_, err = e.svc.Login(from("203.0.113.7"), LoginRequest{Email: u.Email, Password: pw, DeviceToken: otherPair.DeviceToken})
		retryOf(t, err)
		// ...but the admin's known device signs in at once, from an attacker's address too.
		for _, addr := range []string{"192.0.2.1", "198.51.100.3"} {
			p, err := e.svc.Login(from(addr), LoginRequest{Email: u.Email, Password: pw, DeviceToken: earlier.DeviceToken})
			if err != nil {
				t.Fatalf("known device from %s: %v", addr, err)
			}
			if p.DeviceToken != earlier.DeviceToken {
				t.Fatal("a known device got a new device token")
			}
		}
		// Its success does not clear the strangers' count: they get no fresh attempts.
		_, err = e.svc.Login(from("203.0.113.8"), LoginRequest{Email: u.Email, Password: "another guess 1"})
		retryOf(t, err)
		if n := e.hasher.n.Load() - before; n != 7 {
			t.Fatalf("%d hashes; want 7 (5 failures, 2 known-device logins)", n)
		}

		// A known device's own failures lock that device only (growing, like any key).
		for i := range 5 {
			_, err := e.svc.Login(from("192.0.2.1"), LoginRequest{Email: u.Email, Password: fmt.Sprint("typo ", i), DeviceToken: earlier.DeviceToken})
			if !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("device typo %d: %v", i, err)
			}
		}
		_, err = e.svc.Login(from("192.0.2.1"), LoginRequest{Email: u.Email, Password: pw, DeviceToken: earlier.DeviceToken})
		if retryOf(t, err) != time.Minute {
			t.Fatalf("first device lock-out: %v", err)
		}
		got := strings.Join(e.auditActions(t, u.ID), ",")
		if !strings.Contains(got, "lockout:denied") || !strings.Contains(got, "lockout_device:denied") {
			t.Fatalf("audit %s", got)
		}
		e.clock.Add(time.Minute)
		if _, err := e.svc.Login(from("192.0.2.1"), LoginRequest{Email: u.Email, Password: pw, DeviceToken: earlier.DeviceToken}); err != nil {
			t.Fatalf("after the device's lock-out: %v", err)
		}

		// A device token that cannot be ours is a 400 naming it.
		_, err = e.svc.Login(from("192.0.2.1"), LoginRequest{Email: u.Email, Password: pw, DeviceToken: strings.Repeat("d", 257)})
		var ee *errs.Error
		if !errors.As(err, &ee) || ee.Fields["deviceToken"] == "" {
			t.Fatalf("oversized device token: %v", err)
		}
	})
}

// TestUnknownDeviceDelaysGrow: failures from unknown devices get lock-outs that grow (1, 2,
// 4 minutes, then the cap) but always end: after each one the right password from an unknown
// device works, and one success starts the account afresh.
func TestUnknownDeviceDelaysGrow(t *testing.T) {
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, Options{Throttle: ThrottleOptions{AccountAttempts: 3, Window: time.Hour, Lockout: time.Minute, MaxLockout: 4 * time.Minute}})
		u := e.user(t, "nurse@example.org", authz.RoleClinician)
		var delays []time.Duration
		for round := range 4 {
			for i := range 3 {
				_, err := e.svc.Login(from(fmt.Sprintf("198.51.100.%d", round)), LoginRequest{Email: u.Email, Password: fmt.Sprint("wrong ", round, i)})
				if !errors.Is(err, ErrBadCredentials) {
					t.Fatalf("round %d attempt %d: %v", round, i, err)
				}
			}
			_, err := e.svc.Login(from("198.51.100.99"), LoginRequest{Email: u.Email, Password: "wrong again"})
			delays = append(delays, retryOf(t, err))
			e.clock.Add(delays[len(delays)-1])
		}
		if fmt.Sprint(delays) != "[1m0s 2m0s 4m0s 4m0s]" {
			t.Fatalf("delays %v", delays)
		}
		// Never permanent: once the lock-out ends, the right password works from anywhere.
		p, err := e.svc.Login(from("203.0.113.1"), LoginRequest{Email: u.Email, Password: pw})
		if err != nil || p.DeviceToken == "" {
			t.Fatalf("after the lock-outs: %v", err)
		}
		st, err := e.store.throttleOf(context.Background(), accountKey(u.Email))
		if err != nil || st.Failures != 0 || st.Level != 0 {
			t.Fatalf("a success did not clear the account: %+v %v", st, err)
		}
	})
}

// TestAddressLimitConfigurable: the per-address limit (AddressAttempts) counts unknown
// devices' attempts on any account from one address; a known device at that address is not
// held by it. The default is DefaultAddressAttempts.
func TestAddressLimitConfigurable(t *testing.T) {
	if got := (ThrottleOptions{}).withDefaults().AddressAttempts; got != DefaultAddressAttempts || got < 100 {
		t.Fatalf("default address limit %d", got)
	}
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, Options{Throttle: ThrottleOptions{AddressAttempts: 3}})
		u := e.user(t, "ward@example.org", authz.RoleClinician)
		known, err := e.svc.Login(from("192.0.2.50"), LoginRequest{Email: u.Email, Password: pw})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if _, err := e.svc.Login(from("203.0.113.5"), LoginRequest{Email: fmt.Sprintf("n%d@example.org", i), Password: "a wrong password"}); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("attempt %d: %v", i, err)
			}
		}
		_, err = e.svc.Login(from("203.0.113.5"), LoginRequest{Email: u.Email, Password: pw})
		retryOf(t, err)
		if _, err := e.svc.Login(from("203.0.113.5"), LoginRequest{Email: u.Email, Password: pw, DeviceToken: known.DeviceToken}); err != nil {
			t.Fatalf("known device behind a locked address: %v", err)
		}
	})
}

// TestDevicesExpireAndAreCapped: a user keeps at most MaxDevices devices (the least recently
// used is forgotten) and a device unused for DeviceTTL is unknown again.
func TestDevicesExpireAndAreCapped(t *testing.T) {
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, Options{Sessions: SessionOptions{MaxDevices: 2, DeviceTTL: time.Hour}, Throttle: ThrottleOptions{AccountAttempts: 1}})
		u := e.user(t, "many@example.org", authz.RoleAnalyst)
		var tokens []string
		for range 3 {
			p, err := e.svc.Login(from("192.0.2.1"), LoginRequest{Email: u.Email, Password: pw})
			if err != nil {
				t.Fatal(err)
			}
			tokens = append(tokens, p.DeviceToken)
			e.clock.Add(time.Second)
		}
		if n, err := e.store.deviceCount(context.Background(), u.ID); err != nil || n != 2 {
			t.Fatalf("%d devices, %v; want 2", n, err)
		}
		// Lock the unknown-device key; the forgotten first device is unknown now, the last known.
		if _, err := e.svc.Login(from("198.51.100.1"), LoginRequest{Email: u.Email, Password: "a wrong password"}); !errors.Is(err, ErrBadCredentials) {
			t.Fatal(err)
		}
		_, err := e.svc.Login(from("192.0.2.1"), LoginRequest{Email: u.Email, Password: pw, DeviceToken: tokens[0]})
		retryOf(t, err)
		if _, err := e.svc.Login(from("192.0.2.1"), LoginRequest{Email: u.Email, Password: pw, DeviceToken: tokens[2]}); err != nil {
			t.Fatalf("a known device: %v", err)
		}
		// An hour unused: the device is unknown again, so with the unknown-device key locked
		// once more its login is refused.
		e.clock.Add(time.Hour)
		if _, err := e.svc.Login(from("198.51.100.1"), LoginRequest{Email: u.Email, Password: "a wrong password"}); !errors.Is(err, ErrBadCredentials) {
			t.Fatal(err)
		}
		_, err = e.svc.Login(from("192.0.2.1"), LoginRequest{Email: u.Email, Password: pw, DeviceToken: tokens[2]})
		retryOf(t, err)
	})
}

// sidOf returns the session id (claim sid) of an access token the test's service issued.
func sidOf(t *testing.T, token string) string {
	t.Helper()
	var c authz.Claims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &c); err != nil || c.SessionID == "" {
		t.Fatalf("no sid in the token: %v", err)
	}
	return c.SessionID
}

// asSession returns a context acting as u in session sid, from addr with user agent ua.
func asSession(u User, sid, addr string) context.Context {
	ctx := authz.WithPrincipal(context.Background(), authz.Principal{Subject: u.ID, Email: u.Email, Role: u.Role, SessionID: sid})
	return observe.WithClientAddr(observe.WithRequestID(ctx, observe.NewRequestID()), addr)
}

func withUA(ctx context.Context, ua string) context.Context { return observe.WithUserAgent(ctx, ua) }

// TestSessions: a user lists its live sessions (created, last used, client address, user
// agent, current), a refresh moves last-used and the address; it deletes one of its own (its
// refresh token then fails, a session_deleted revocation is written), another user's or an
// unknown id is not found, a malformed one invalid; a session unused for the idle timeout is
// refused at refresh and no longer listed; logout everywhere ends every refresh token and
// raises the token version. A service principal has no sessions. All audited.
func TestSessions(t *testing.T) {
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, Options{Sessions: SessionOptions{Idle: 30 * time.Minute}})
		u := e.user(t, "sessions@example.org", authz.RoleBilling)
		stranger := e.user(t, "stranger@example.org", authz.RoleBilling)
		start := e.clock.Now()
		s1, err := e.svc.Login(withUA(from("192.0.2.1"), "Firefox/140\x00\x1b[31m"), LoginRequest{Email: u.Email, Password: pw})
		if err != nil {
			t.Fatal(err)
		}
		e.clock.Add(time.Minute)
		s2, err := e.svc.Login(withUA(from("192.0.2.2"), strings.Repeat("A", 1000)), LoginRequest{Email: u.Email, Password: pw})
		if err != nil {
			t.Fatal(err)
		}
		sx, err := e.svc.Login(from("192.0.2.3"), LoginRequest{Email: stranger.Email, Password: pw})
		if err != nil {
			t.Fatal(err)
		}
		sid1, sid2 := sidOf(t, s1.Token), sidOf(t, s2.Token)
		ctx := asSession(u, sid1, "192.0.2.1")

		list, err := e.svc.ListSessions(ctx)
		if err != nil || len(list) != 2 {
			t.Fatalf("list: %+v %v", list, err)
		}
		if list[0].ID != sid2 || list[0].Current || len(list[0].UserAgent) != observe.MaxUserAgentBytes || list[0].ClientAddress != "192.0.2.2" {
			t.Fatalf("newest session: %+v", list[0])
		}
		if list[1].ID != sid1 || !list[1].Current || list[1].UserAgent != "Firefox/140[31m" || !list[1].CreatedAt.Equal(start) || !list[1].LastUsedAt.Equal(start) {
			t.Fatalf("current session: %+v", list[1])
		}

		// A refresh is a use: last-used, address and user agent move; created stays.
		e.clock.Add(10 * time.Minute)
		r1, err := e.svc.Refresh(withUA(from("198.51.100.9"), "Firefox/141"), RefreshRequest{RefreshToken: s1.RefreshToken})
		if err != nil {
			t.Fatal(err)
		}
		list, _ = e.svc.ListSessions(ctx)
		if len(list) != 2 || list[0].ID != sid1 || !list[0].LastUsedAt.Equal(e.clock.Now()) || list[0].ClientAddress != "198.51.100.9" || list[0].UserAgent != "Firefox/141" || !list[0].CreatedAt.Equal(start) {
			t.Fatalf("after a refresh: %+v", list)
		}

		// Deleting: a malformed id, another user's session and an unknown one change nothing.
		wantKind(t, e.svc.DeleteSession(ctx, DeleteSessionRequest{ID: "not-a-session"}), errs.InvalidArgument)
		for _, id := range []string{sidOf(t, sx.Token), "00000000-0000-4000-8000-000000000000"} {
			if err := e.svc.DeleteSession(ctx, DeleteSessionRequest{ID: id}); !errors.Is(err, ErrSessionNotFound) || errs.KindOf(err) != errs.NotFound {
				t.Fatalf("delete %s: %v", id, err)
			}
		}
		if _, err := e.svc.Refresh(from("192.0.2.3"), RefreshRequest{RefreshToken: sx.RefreshToken}); err != nil {
			t.Fatalf("the stranger's session was touched: %v", err)
		}
		if err := e.svc.DeleteSession(ctx, DeleteSessionRequest{ID: strings.ToUpper(sid2)}); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.DeleteSession(ctx, DeleteSessionRequest{ID: sid2}); err != nil {
			t.Fatalf("deleting an ended session again: %v", err)
		}
		if _, err := e.svc.Refresh(from("192.0.2.2"), RefreshRequest{RefreshToken: s2.RefreshToken}); !errors.Is(err, ErrBadRefreshToken) {
			t.Fatalf("a deleted session refreshed: %v", err)
		}
		var reasons []string
		if err := d.SelectContext(context.Background(), &reasons, d.Rebind(`SELECT reason FROM revocations WHERE kind = 'session' AND session_id = ?`), sid2); err != nil || len(reasons) != 1 || reasons[0] != ReasonSessionDeleted {
			t.Fatalf("revocations of the deleted session: %v %v", reasons, err)
		}
		if list, _ = e.svc.ListSessions(ctx); len(list) != 1 || list[0].ID != sid1 {
			t.Fatalf("after the delete: %+v", list)
		}

		// Idle: within the timeout a refresh works; past it the session is refused and gone.
		e.clock.Add(29 * time.Minute)
		r1, err = e.svc.Refresh(from("192.0.2.1"), RefreshRequest{RefreshToken: r1.RefreshToken})
		if err != nil {
			t.Fatalf("29 minutes idle: %v", err)
		}
		e.clock.Add(30 * time.Minute)
		if list, _ = e.svc.ListSessions(ctx); len(list) != 0 {
			t.Fatalf("an idle session is listed: %+v", list)
		}
		if _, err := e.svc.Refresh(from("192.0.2.1"), RefreshRequest{RefreshToken: r1.RefreshToken}); !errors.Is(err, ErrBadRefreshToken) {
			t.Fatalf("30 minutes idle: %v", err)
		}

		// Logout everywhere ends every refresh token of the user and raises its version.
		a, _ := e.svc.Login(from("192.0.2.1"), LoginRequest{Email: u.Email, Password: pw})
		b, _ := e.svc.Login(from("192.0.2.2"), LoginRequest{Email: u.Email, Password: pw})
		y, _ := e.svc.Login(from("192.0.2.3"), LoginRequest{Email: stranger.Email, Password: pw})
		before, _ := e.store.userByID(context.Background(), d, u.ID)
		if err := e.svc.LogoutAll(asSession(u, sidOf(t, a.Token), "192.0.2.1")); err != nil {
			t.Fatal(err)
		}
		for _, p := range []TokenPair{a, b} {
			if _, err := e.svc.Refresh(from("192.0.2.1"), RefreshRequest{RefreshToken: p.RefreshToken}); !errors.Is(err, ErrBadRefreshToken) {
				t.Fatalf("a session survived logout everywhere: %v", err)
			}
		}
		after, _ := e.store.userByID(context.Background(), d, u.ID)
		var n int
		if err := d.GetContext(context.Background(), &n, d.Rebind(`SELECT count(*) FROM revocations WHERE kind = 'user' AND user_id = ? AND reason = ? AND min_version = ? AND except_session IS NULL`),
			u.ID, ReasonLogoutAll, after.TokenVersion); err != nil || n != 1 || after.TokenVersion != before.TokenVersion+1 {
			t.Fatalf("logout everywhere revocation: %d %v (version %d -> %d)", n, err, before.TokenVersion, after.TokenVersion)
		}
		if _, err := e.svc.Refresh(from("192.0.2.3"), RefreshRequest{RefreshToken: y.RefreshToken}); err != nil {
			t.Fatalf("another user's session ended: %v", err)
		}

		svc := authz.Service(context.Background(), "patient")
		if _, err := e.svc.ListSessions(svc); errs.KindOf(err) != errs.PermissionDenied {
			t.Fatalf("service principal list: %v", err)
		}
		wantKind(t, e.svc.LogoutAll(svc), errs.PermissionDenied)
		wantKind(t, e.svc.DeleteSession(svc, DeleteSessionRequest{ID: sid1}), errs.PermissionDenied)

		got := strings.Join(e.auditActions(t, u.ID), ",")
		for _, want := range []string{"session_list:success", "session_delete:rejected", "session_delete:not_found", "session_delete:success", "refresh:denied", "logout_all:success"} {
			if !strings.Contains(got, want) {
				t.Fatalf("audit lacks %s: %s", want, got)
			}
		}
	})
}
