package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v4"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
)

// clock is a test clock that only moves when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().UTC().Truncate(time.Second)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testHasher counts the hashes a test's service computes.
type testHasher struct {
	Hasher
	n atomic.Int64
}

func (h *testHasher) Hash(ctx context.Context, p string) (string, error) {
	h.n.Add(1)
	return h.Hasher.Hash(ctx, p)
}

func (h *testHasher) Verify(ctx context.Context, e, p string) (bool, error) {
	h.n.Add(1)
	return h.Hasher.Verify(ctx, e, p)
}

// fastArgon2id keeps unit tests quick; TestDefaultHasherParameters checks the real cost.
var fastArgon2id = Argon2idParams{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}

type env struct {
	d      *db.DB
	store  *Store
	keys   *KeyRing
	clock  *clock
	hasher *testHasher
	svc    Service
	audit  *audit.Writer
}

func newEnv(t *testing.T, d *db.DB, o Options) *env {
	t.Helper()
	e := &env{d: d, store: NewStore(d), clock: newClock(), hasher: &testHasher{Hasher: NewArgon2id(fastArgon2id, 0)}}
	var err error
	e.keys, _, err = OpenKeyRing(filepath.Join(t.TempDir(), KeyFileName), KeyRingOptions{Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.audit = audit.NewWriter(d, audit.Options{Table: AuditTable})
	t.Cleanup(func() { _ = e.audit.Close(context.Background()) })
	o.Now, o.Hasher = e.clock.Now, e.hasher
	e.svc, err = NewService(context.Background(), e.store, e.keys, e.audit, o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// admin returns a context acting as an admin from a client address.
func admin(id string) context.Context {
	ctx := authz.WithPrincipal(context.Background(), authz.Principal{Subject: id, Role: authz.RoleAdmin})
	return observe.WithClientAddr(observe.WithRequestID(ctx, observe.NewRequestID()), "192.0.2.1")
}

// from returns a context of an anonymous caller at addr.
func from(addr string) context.Context {
	return observe.WithClientAddr(observe.WithRequestID(context.Background(), observe.NewRequestID()), addr)
}

func wantKind(t *testing.T, err error, k errs.Kind) {
	t.Helper()
	if errs.KindOf(err) != k {
		t.Fatalf("err = %v (%q), want %q", err, errs.KindOf(err), k)
	}
}

const pw = "correct horse battery"

func (e *env) user(t *testing.T, email, role string) User {
	t.Helper()
	u, err := e.svc.CreateUser(admin("root"), CreateUserRequest{Email: email, Password: pw, Role: role})
	if err != nil {
		t.Fatal(err)
	}
	if u.InviteToken != "" || u.InviteExpiresAt != nil {
		t.Fatalf("a user created with a password got an invite: %+v", u)
	}
	return u.User
}

func (e *env) auditActions(t *testing.T, userID string) []string {
	t.Helper()
	entries, err := e.svc.Audit(context.Background(), AuditQuery{UserID: userID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	entries = withoutReads(entries)
	var out []string
	for i := len(entries) - 1; i >= 0; i-- {
		out = append(out, entries[i].Action+":"+entries[i].Outcome)
	}
	return out
}

func TestUsersAndPasswordRules(t *testing.T) {
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, Options{})
		ctx := admin("root")
		_, err := e.svc.CreateUser(ctx, CreateUserRequest{Email: "not an email", Password: "short", Role: "superuser"})
		var ee *errs.Error
		if !errors.As(err, &ee) || ee.Kind != errs.InvalidArgument || ee.Fields["email"] == "" || ee.Fields["password"] == "" || ee.Fields["role"] == "" {
			t.Fatalf("validation: %#v", err)
		}
		for name, p := range map[string]string{
			"11 characters":      "abcdefghijk",
			"the email":          "Ann@Example.org",
			"blank":              strings.Repeat(" ", 12),
			"NUL":                "abcdefghijk\x00l",
			"over 1024 bytes":    strings.Repeat("x", MaxPasswordBytes+1),
			"invalid UTF-8":      "abcdefghijk\xff",
			"11 runes, 33 bytes": strings.Repeat("€", 11),
		} {
			_, err := e.svc.CreateUser(ctx, CreateUserRequest{Email: "ann@example.org", Password: p, Role: authz.RoleClinician})
			if !errors.As(err, &ee) || ee.Fields["password"] == "" {
				t.Fatalf("password %s accepted: %v", name, err)
			}
		}
		if _, err := e.svc.CreateUser(ctx, CreateUserRequest{Email: "ann@example.org", Password: "¡€urö-Pässé!", Role: authz.RoleClinician}); err != nil {
			t.Fatalf("12 characters refused: %v", err)
		}
		_, err = e.svc.CreateUser(ctx, CreateUserRequest{Email: " ANN@example.ORG ", Password: pw, Role: authz.RoleBilling})
		if !errors.Is(err, ErrEmailTaken) {
			t.Fatalf("duplicate email (case-insensitive): %v", err)
		}
		root := e.user(t, "root@example.org", authz.RoleAdmin)
		if root.Disabled || root.Role != authz.RoleAdmin || root.CreatedAt.IsZero() {
			t.Fatalf("created %+v", root)
		}
		b, _ := json.Marshal(root)
		if strings.Contains(string(b), "argon") || strings.Contains(strings.ToLower(string(b)), "password") {
			t.Fatalf("user JSON shows the password: %s", b)
		}
		var stored string
		if err := d.GetContext(context.Background(), &stored, d.Rebind(`SELECT password_hash FROM users WHERE id = ?`), root.ID); err != nil || !strings.HasPrefix(stored, "$argon2id$v=19$") {
			t.Fatalf("stored hash %q %v", stored, err)
		}
		users, err := e.svc.ListUsers(ctx)
		if err != nil || len(users) != 2 || users[0].Email != "ann@example.org" || users[1].ID != root.ID {
			t.Fatalf("list: %+v %v", users, err)
		}
		got, err := e.svc.GetUser(ctx, strings.ToUpper(root.ID))
		if err != nil || got != root {
			t.Fatalf("get: %+v %v", got, err)
		}
		_, err = e.svc.GetUser(ctx, "00000000-0000-4000-8000-000000000000")
		wantKind(t, err, errs.NotFound)
		_, err = e.svc.GetUser(ctx, "x")
		wantKind(t, err, errs.InvalidArgument)

		// The last active admin can be neither demoted nor disabled, by anyone.
		clin, no := authz.RoleClinician, true
		_, err = e.svc.UpdateUser(ctx, UpdateUserRequest{ID: root.ID, Role: &clin})
		if !errors.Is(err, ErrLastAdmin) || errs.KindOf(err) != errs.Conflict {
			t.Fatalf("demote last admin: %v", err)
		}
		_, err = e.svc.UpdateUser(ctx, UpdateUserRequest{ID: root.ID, Disabled: &no})
		if !errors.Is(err, ErrLastAdmin) {
			t.Fatalf("disable last admin: %v", err)
		}
		bad := "root"
		_, err = e.svc.UpdateUser(ctx, UpdateUserRequest{ID: root.ID, Role: &bad})
		wantKind(t, err, errs.InvalidArgument)
		_, err = e.svc.UpdateUser(ctx, UpdateUserRequest{ID: "00000000-0000-4000-8000-000000000000", Role: &clin})
		wantKind(t, err, errs.NotFound)
		// With a second admin, the first may step down.
		second := e.user(t, "second@example.org", authz.RoleAdmin)
		e.clock.Add(time.Second)
		down, err := e.svc.UpdateUser(ctx, UpdateUserRequest{ID: root.ID, Role: &clin})
		if err != nil || down.Role != authz.RoleClinician || !down.UpdatedAt.After(down.CreatedAt) {
			t.Fatalf("demote with another admin: %+v %v", down, err)
		}
		same, err := e.svc.UpdateUser(ctx, UpdateUserRequest{ID: root.ID})
		if err != nil || same != down {
			t.Fatalf("empty patch: %+v %v", same, err)
		}
		_, err = e.svc.UpdateUser(ctx, UpdateUserRequest{ID: second.ID, Disabled: &no})
		if !errors.Is(err, ErrLastAdmin) {
			t.Fatalf("disable the new last admin: %v", err)
		}
		if got := e.auditActions(t, root.ID); strings.Join(got, ",") != "user_create:success,user_update:rejected,user_update:rejected,user_update:rejected,user_update:success,user_update:success" {
			t.Fatalf("audit of root: %v", got)
		}
	})
}

// TestConcurrentDemotionsLeaveAnAdmin: two admins demoting each other at once cannot both
// succeed.
func TestConcurrentDemotionsLeaveAnAdmin(t *testing.T) {
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, Options{})
		a, b := e.user(t, "a@example.org", authz.RoleAdmin), e.user(t, "b@example.org", authz.RoleAdmin)
		clin := authz.RoleClinician
		var wg sync.WaitGroup
		errc := make(chan error, 2)
		for _, id := range []string{a.ID, b.ID} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := e.svc.UpdateUser(admin("x"), UpdateUserRequest{ID: id, Role: &clin})
				errc <- err
			}()
		}
		wg.Wait()
		close(errc)
		var ok, conflict int
		for err := range errc {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ErrLastAdmin):
				conflict++
			default:
				t.Fatalf("unexpected: %v", err)
			}
		}
		if ok != 1 || conflict != 1 {
			t.Fatalf("%d succeeded, %d refused; want 1 and 1", ok, conflict)
		}
	})
}

func TestLoginValidateAndSameAnswerForUnknownEmail(t *testing.T) {
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, Options{})
		u := e.user(t, "Nurse@Example.org", authz.RoleClinician)
		pair, err := e.svc.Login(from("198.51.100.7"), LoginRequest{Email: " nurse@example.ORG", Password: pw})
		if err != nil {
			t.Fatal(err)
		}
		if pair.TokenType != "Bearer" || pair.ExpiresIn != 900 || len(pair.RefreshToken) < 43 || pair.Token == "" {
			t.Fatalf("pair %+v", pair)
		}
		// The token carries every claim, and verifies with the ring (as the guard does).
		p, err := authz.NewVerifier(e.keys, authz.DefaultIssuer, authz.DefaultAudience).Verify(context.Background(), pair.Token)
		if err != nil || p.Subject != u.ID || p.Role != authz.RoleClinician || p.Email != u.Email {
			t.Fatalf("verify: %+v %v", p, err)
		}
		var c map[string]any
		tok, _, err := jwt.NewParser().ParseUnverified(pair.Token, jwt.MapClaims{})
		if err != nil {
			t.Fatal(err)
		}
		c = tok.Claims.(jwt.MapClaims)
		kid, _ := e.keys.SigningKey()
		if tok.Header["kid"] != kid || tok.Header["alg"] != "EdDSA" {
			t.Fatalf("header %v", tok.Header)
		}
		for _, k := range []string{"iss", "aud", "sub", "email", "role", "iat", "nbf", "exp", "jti"} {
			if c[k] == nil {
				t.Fatalf("claim %s missing: %v", k, c)
			}
		}
		if exp, iat := c["exp"].(float64), c["iat"].(float64); exp-iat != 900 {
			t.Fatalf("lifetime %v s", exp-iat)
		}
		// The refresh token is stored only as its hash.
		var hashes []string
		if err := d.SelectContext(context.Background(), &hashes, `SELECT token_hash FROM refresh_tokens`); err != nil || len(hashes) != 1 ||
			hashes[0] != hashRefreshToken(pair.RefreshToken) || hashes[0] == pair.RefreshToken {
			t.Fatalf("stored refresh tokens %v %v", hashes, err)
		}
		// Validate reads back the token the guard verified.
		vctx := authz.WithToken(authz.WithPrincipal(context.Background(), p), pair.Token)
		v, err := e.svc.Validate(vctx)
		if err != nil || v.Sub != u.ID || v.Email != u.Email || v.Role != authz.RoleClinician || v.Exp != int64(c["exp"].(float64)) {
			t.Fatalf("validate: %+v %v", v, err)
		}
		_, err = e.svc.Validate(context.Background())
		wantKind(t, err, errs.Unauthenticated)

		// Unknown email and wrong password: the same error, and one hash each.
		before := e.hasher.n.Load()
		_, errUnknown := e.svc.Login(from("198.51.100.7"), LoginRequest{Email: "nobody@example.org", Password: pw})
		_, errWrong := e.svc.Login(from("198.51.100.7"), LoginRequest{Email: u.Email, Password: pw + "!"})
		if errUnknown == nil || errWrong == nil || errUnknown.Error() != errWrong.Error() || errs.KindOf(errUnknown) != errs.Unauthenticated ||
			!errors.Is(errWrong, ErrBadCredentials) {
			t.Fatalf("unknown email %v, wrong password %v", errUnknown, errWrong)
		}
		if n := e.hasher.n.Load() - before; n != 2 {
			t.Fatalf("%d hashes for two failed logins; want one each", n)
		}
		_, err = e.svc.Login(from("198.51.100.7"), LoginRequest{Email: "", Password: strings.Repeat("p", MaxPasswordBytes+1)})
		var ee *errs.Error
		if !errors.As(err, &ee) || ee.Fields["email"] == "" || ee.Fields["password"] == "" {
			t.Fatalf("bad login input: %v", err)
		}
		// An email no account can have (PostgreSQL cannot even store a NUL) is refused
		// before the throttle or the users table sees it.
		for _, email := range []string{"nurse\x00@example.org", "nurse\x1b@example.org", "nurse\uFFFD@example.org"} {
			_, err = e.svc.Login(from("198.51.100.7"), LoginRequest{Email: email, Password: pw})
			if !errors.As(err, &ee) || ee.Kind != errs.InvalidArgument || ee.Fields["email"] == "" {
				t.Fatalf("login as %q: %v", email, err)
			}
		}
		got := e.auditActions(t, u.ID)
		if strings.Join(got, ",") != "user_create:success,login:success,login:denied" {
			t.Fatalf("audit %v", got)
		}
		all, _ := e.svc.Audit(context.Background(), AuditQuery{})
		all = withoutReads(all)
		if all[1].Action != ActionLogin || all[1].UserID != "" || all[1].ClientAddress != "198.51.100.7" || all[0].Actor != authz.Anonymous || all[0].UserID != u.ID {
			t.Fatalf("unknown-email failure audited as %+v / %+v", all[0], all[1])
		}
		if all[2].Actor != u.ID || all[2].Role != authz.RoleClinician {
			t.Fatalf("successful login audited as %+v", all[2])
		}
	})
}

func TestThrottleBeforeHashing(t *testing.T) {
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, Options{Throttle: ThrottleOptions{AccountAttempts: 3, AddressAttempts: 5, Window: time.Hour, Lockout: time.Minute, MaxLockout: 3 * time.Minute}})
		u := e.user(t, "doc@example.org", authz.RoleClinician)
		login := func(addr, email, password string) error {
			_, err := e.svc.Login(from(addr), LoginRequest{Email: email, Password: password})
			return err
		}
		failAccount := func(n int) {
			t.Helper()
			for i := range n {
				if err := login(fmt.Sprintf("203.0.113.%d", 10+i), u.Email, "wrong password!"); !errors.Is(err, ErrBadCredentials) {
					t.Fatalf("failure %d: %v", i+1, err)
				}
			}
		}
		locked := func(want time.Duration, password string) {
			t.Helper()
			before := e.hasher.n.Load()
			err := login("203.0.113.99", u.Email, password)
			var ee *errs.Error
			if !errors.As(err, &ee) || ee.Kind != errs.RateLimited || ee.RetryAfter != want {
				t.Fatalf("got %v (retry %v); want rate_limited for %v", err, ee.RetryAfter, want)
			}
			if n := e.hasher.n.Load() - before; n != 0 {
				t.Fatalf("a throttled login computed %d hashes", n)
			}
		}
		failAccount(3)
		locked(time.Minute, "wrong password!")
		e.clock.Add(20 * time.Second)
		locked(40*time.Second, pw) // even the right password waits
		e.clock.Add(40 * time.Second)
		// The lock is over; further failures lock for twice as long, then capped.
		failAccount(3)
		locked(2*time.Minute, pw)
		e.clock.Add(2 * time.Minute)
		failAccount(3)
		locked(3*time.Minute, pw)
		e.clock.Add(3 * time.Minute)
		failAccount(3)
		locked(3*time.Minute, pw) // never longer than MaxLockout: never permanent
		e.clock.Add(3 * time.Minute)
		if err := login("203.0.113.99", u.Email, pw); err != nil {
			t.Fatalf("login after the lock-out: %v", err)
		}
		st, err := e.store.throttleOf(context.Background(), accountKey(u.Email))
		if err != nil || st.Failures != 0 || st.Level != 0 {
			t.Fatalf("a good login did not clear the account: %+v %v", st, err)
		}
		// Per address: failures on different (even unknown) accounts from one address add up.
		for i := range 5 {
			if err := login("198.51.100.1", fmt.Sprintf("x%d@example.org", i), "wrong password!"); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("address failure %d: %v", i, err)
			}
		}
		before := e.hasher.n.Load()
		err = login("198.51.100.1", u.Email, pw)
		wantKind(t, err, errs.RateLimited)
		if e.hasher.n.Load() != before {
			t.Fatal("a throttled address computed a hash")
		}
		if err := login("198.51.100.2", u.Email, pw); err != nil {
			t.Fatalf("another address is not throttled: %v", err)
		}
		got := strings.Join(e.auditActions(t, u.ID), ",")
		if strings.Count(got, "lockout:denied") != 4 {
			t.Fatalf("lock-outs not audited: %s", got)
		}
		entries, _ := e.svc.Audit(context.Background(), AuditQuery{Limit: 1000})
		var addressLocks int
		for _, en := range entries {
			if en.Action == ActionLockout+"_address" && en.ClientAddress == "198.51.100.1" {
				addressLocks++
			}
		}
		if addressLocks != 1 {
			t.Fatalf("%d address lock-outs audited, want 1", addressLocks)
		}
	})
}

// TestThrottleConcurrentGuesses: attempts are counted before hashing, so a burst of parallel
// guesses gets no more hashes than the limit.
func TestThrottleConcurrentGuesses(t *testing.T) {
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, Options{Throttle: ThrottleOptions{AccountAttempts: 4, AddressAttempts: 1000}})
		e.user(t, "target@example.org", authz.RoleAdmin)
		before := e.hasher.n.Load()
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = e.svc.Login(from(fmt.Sprintf("203.0.113.%d", i)), LoginRequest{Email: "target@example.org", Password: "guess guess guess"})
			}()
		}
		wg.Wait()
		if n := e.hasher.n.Load() - before; n != 4 {
			t.Fatalf("%d hashes for 20 parallel guesses; want the limit, 4", n)
		}
	})
}

func TestThrottlePolicy(t *testing.T) {
	o := ThrottleOptions{Window: 10 * time.Minute, Lockout: time.Minute, MaxLockout: 5 * time.Minute}.withDefaults()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var st throttleState
	var locks []time.Duration
	for range 40 {
		next, retry, locked := o.admit(st, 2, now)
		st = next
		if locked {
			locks = append(locks, retry)
			now = now.Add(retry)
		}
	}
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 5 * time.Minute, 5 * time.Minute}
	if fmt.Sprint(locks[:5]) != fmt.Sprint(want) {
		t.Fatalf("lock-outs %v, want %v…", locks, want)
	}
	// A whole quiet window after the last lock, the next lock-out is short again.
	now = now.Add(11 * time.Minute)
	st, _, _ = o.admit(st, 2, now)
	st, _, _ = o.admit(st, 2, now)
	_, retry, locked := o.admit(st, 2, now)
	if !locked || retry != time.Minute {
		t.Fatalf("after a quiet window: locked %v for %v", locked, retry)
	}
	// Huge levels do not overflow the shift.
	_, retry, _ = o.admit(throttleState{Failures: 2, WindowStart: now, Level: 500}, 2, now)
	if retry != 5*time.Minute {
		t.Fatalf("level 500: %v", retry)
	}
}

func TestRefreshRotationReuseAndLogout(t *testing.T) {
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, Options{RefreshTTL: time.Hour, Sessions: SessionOptions{Idle: time.Hour}}) // the absolute lifetime, not idleness, ends it below
		u := e.user(t, "billing@example.org", authz.RoleBilling)
		ctx := from("192.0.2.9")
		first, err := e.svc.Login(ctx, LoginRequest{Email: u.Email, Password: pw})
		if err != nil {
			t.Fatal(err)
		}
		second, err := e.svc.Refresh(ctx, RefreshRequest{RefreshToken: first.RefreshToken})
		if err != nil || second.RefreshToken == first.RefreshToken || second.Token == "" || second.TokenType != "Bearer" {
			t.Fatalf("refresh: %+v %v", second, err)
		}
		third, err := e.svc.Refresh(ctx, RefreshRequest{RefreshToken: second.RefreshToken})
		if err != nil {
			t.Fatal(err)
		}
		// The first token comes back: someone holds a copy. The whole family ends.
		_, err = e.svc.Refresh(ctx, RefreshRequest{RefreshToken: first.RefreshToken})
		if !errors.Is(err, ErrBadRefreshToken) {
			t.Fatalf("reuse: %v", err)
		}
		_, err = e.svc.Refresh(ctx, RefreshRequest{RefreshToken: third.RefreshToken})
		if !errors.Is(err, ErrBadRefreshToken) {
			t.Fatalf("the family's newest token survived reuse: %v", err)
		}
		if revoked, err := e.store.familyRevoked(context.Background(), hashRefreshToken(third.RefreshToken)); err != nil || !revoked {
			t.Fatalf("family revoked = %v, %v", revoked, err)
		}
		// Another login is another family, untouched.
		other, err := e.svc.Login(ctx, LoginRequest{Email: u.Email, Password: pw})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Refresh(ctx, RefreshRequest{RefreshToken: other.RefreshToken}); err != nil {
			t.Fatalf("an unrelated family was revoked: %v", err)
		}
		// Garbage and access tokens are not refresh tokens.
		for _, tok := range []string{"garbage", first.Token[:200]} {
			_, err = e.svc.Refresh(ctx, RefreshRequest{RefreshToken: tok})
			wantKind(t, err, errs.Unauthenticated)
		}
		_, err = e.svc.Refresh(ctx, RefreshRequest{})
		wantKind(t, err, errs.InvalidArgument)

		// Logout ends the family; logging out an unknown token is not an error.
		sess, _ := e.svc.Login(ctx, LoginRequest{Email: u.Email, Password: pw})
		next, _ := e.svc.Refresh(ctx, RefreshRequest{RefreshToken: sess.RefreshToken})
		if err := e.svc.Logout(ctx, LogoutRequest{RefreshToken: next.RefreshToken}); err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.Refresh(ctx, RefreshRequest{RefreshToken: next.RefreshToken})
		wantKind(t, err, errs.Unauthenticated)
		if err := e.svc.Logout(ctx, LogoutRequest{RefreshToken: "unknown"}); err != nil {
			t.Fatalf("logout of an unknown token: %v", err)
		}
		// A login's refresh tokens end with its lifetime, however often rotated.
		sess, _ = e.svc.Login(ctx, LoginRequest{Email: u.Email, Password: pw})
		e.clock.Add(40 * time.Minute)
		sess, err = e.svc.Refresh(ctx, RefreshRequest{RefreshToken: sess.RefreshToken})
		if err != nil {
			t.Fatal(err)
		}
		e.clock.Add(20 * time.Minute)
		_, err = e.svc.Refresh(ctx, RefreshRequest{RefreshToken: sess.RefreshToken})
		wantKind(t, err, errs.Unauthenticated)

		got := strings.Join(e.auditActions(t, u.ID), ",")
		for _, want := range []string{"refresh:success", "refresh_reuse:denied", "refresh:denied", "logout:success"} {
			if !strings.Contains(got, want) {
				t.Fatalf("audit lacks %s: %s", want, got)
			}
		}
	})
}

// TestConcurrentRefreshOfOneToken: exactly one of two simultaneous presentations of a token
// wins; the other is reuse.
func TestConcurrentRefreshOfOneToken(t *testing.T) {
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, Options{})
		u := e.user(t, "r@example.org", authz.RoleAnalyst)
		pair, err := e.svc.Login(from("192.0.2.1"), LoginRequest{Email: u.Email, Password: pw})
		if err != nil {
			t.Fatal(err)
		}
		var ok atomic.Int32
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := e.svc.Refresh(from("192.0.2.1"), RefreshRequest{RefreshToken: pair.RefreshToken}); err == nil {
					ok.Add(1)
				} else if errs.KindOf(err) != errs.Unauthenticated {
					t.Errorf("concurrent refresh: %v", err)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 1 {
			t.Fatalf("%d refreshes of one token succeeded", ok.Load())
		}
	})
}

func TestDisabledUserCannotLogInOrRefresh(t *testing.T) {
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, Options{})
		e.user(t, "boss@example.org", authz.RoleAdmin)
		u := e.user(t, "leaver@example.org", authz.RoleClinician)
		pair, err := e.svc.Login(from("192.0.2.1"), LoginRequest{Email: u.Email, Password: pw})
		if err != nil {
			t.Fatal(err)
		}
		yes := true
		if _, err := e.svc.UpdateUser(admin("boss"), UpdateUserRequest{ID: u.ID, Disabled: &yes}); err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.Login(from("192.0.2.1"), LoginRequest{Email: u.Email, Password: pw})
		if !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("disabled login: %v", err)
		}
		_, err = e.svc.Refresh(from("192.0.2.1"), RefreshRequest{RefreshToken: pair.RefreshToken})
		if !errors.Is(err, ErrBadRefreshToken) {
			t.Fatalf("disabled refresh: %v", err)
		}
		// Re-enabled, the old session stays ended; a new login works.
		no := false
		if _, err := e.svc.UpdateUser(admin("boss"), UpdateUserRequest{ID: u.ID, Disabled: &no}); err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.Refresh(from("192.0.2.1"), RefreshRequest{RefreshToken: pair.RefreshToken})
		wantKind(t, err, errs.Unauthenticated)
		if _, err := e.svc.Login(from("192.0.2.1"), LoginRequest{Email: u.Email, Password: pw}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestBootstrapAdmin(t *testing.T) {
	dbtest.Each(t, migrations.Auth(), func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, Options{})
		u, generated, created, err := BootstrapAdmin(context.Background(), e.store, e.svc, "admin@pms.local", "")
		if err != nil || !created || len(generated) < 20 || u.Role != authz.RoleAdmin {
			t.Fatalf("bootstrap: %+v %q %v %v", u, generated, created, err)
		}
		// The generated password must be changed first, as a user would (TestPasswordChangeRequired).
		_, err = e.svc.Login(from("192.0.2.1"), LoginRequest{Email: "admin@pms.local", Password: generated})
		ch := errs.As(err)
		if ch == nil || ch.Kind != errs.PasswordChangeRequired || ch.Challenge == "" {
			t.Fatalf("login with the generated password: %v", err)
		}
		if err := e.svc.SetPassword(from("192.0.2.1"), SetPasswordRequest{Token: ch.Challenge, NewPassword: "a new first-start passphrase"}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Login(from("192.0.2.1"), LoginRequest{Email: "admin@pms.local", Password: "a new first-start passphrase"}); err != nil {
			t.Fatalf("login with the changed password: %v", err)
		}
		_, again, created, err := BootstrapAdmin(context.Background(), e.store, e.svc, "other@pms.local", "")
		if err != nil || created || again != "" {
			t.Fatalf("second bootstrap: %q %v %v", again, created, err)
		}
		entries, _ := e.svc.Audit(context.Background(), AuditQuery{UserID: u.ID})
		if len(entries) != 4 || entries[3].Action != ActionUserCreate || entries[3].Actor != "svc:auth" {
			t.Fatalf("bootstrap audit: %+v", entries)
		}
		// A configured password must follow the rules.
		d2 := dbtest.Open(t, d.Dialect, migrations.Auth())
		e2 := newEnv(t, d2, Options{})
		if _, _, _, err := BootstrapAdmin(context.Background(), e2.store, e2.svc, "admin@pms.local", "short"); err == nil {
			t.Fatal("a short bootstrap password was accepted")
		}
	})
}

func TestKeyRingRotation(t *testing.T) {
	c := newClock()
	path := filepath.Join(t.TempDir(), "keys", KeyFileName)
	ring, created, err := OpenKeyRing(path, KeyRingOptions{Now: c.Now})
	if err != nil || !created {
		t.Fatalf("open: %v %v", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v %v", fi.Mode(), err)
	}
	if again, created, err := OpenKeyRing(path, KeyRingOptions{Now: c.Now}); err != nil || created || len(again.JWKS().Keys) != 1 {
		t.Fatalf("reopen: %v %v", created, err)
	}
	oldKid, _ := ring.SigningKey()
	verifier := authz.NewVerifier(ring, authz.DefaultIssuer, authz.DefaultAudience)
	claims := func() authz.Claims {
		now := time.Now()
		return authz.Claims{Email: "a@example.org", Role: authz.RoleAnalyst, RegisteredClaims: jwt.RegisteredClaims{
			Issuer: authz.DefaultIssuer, Audience: jwt.ClaimStrings{authz.DefaultAudience}, Subject: "u1",
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(authz.AccessTokenTTL))}}
	}
	oldToken, err := ring.Sign(claims())
	if err != nil {
		t.Fatal(err)
	}
	// Rotation happens in another process; the running ring picks it up from the file.
	newKid, retired, err := RotateKeyFile(path, c.Now(), false)
	if err != nil || retired != oldKid || newKid == oldKid {
		t.Fatalf("rotate: %q %q %v", newKid, retired, err)
	}
	newToken, err := ring.Sign(claims())
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := ring.SigningKey(); k != newKid {
		t.Fatalf("signing with %q after rotation, want %q", k, newKid)
	}
	set := ring.JWKS()
	if len(set.Keys) != 2 || set.Keys[0].Kid != newKid || set.Keys[1].Kid != oldKid || set.Keys[1].Kty != "OKP" {
		t.Fatalf("JWKS after rotation: %+v", set)
	}
	raw, _ := os.ReadFile(path)
	var kf keyFile
	_ = json.Unmarshal(raw, &kf)
	if kf.Keys[1].PrivateKey != "" || kf.Keys[1].RetiredAt == nil {
		t.Fatal("a retired key kept its private half")
	}
	for _, tok := range []string{oldToken, newToken} {
		if _, err := verifier.Verify(context.Background(), tok); err != nil {
			t.Fatalf("token after rotation: %v", err)
		}
	}
	// Once every token of the old key has expired, it is no longer listed or trusted.
	c.Add(keyRetention)
	if set := ring.JWKS(); len(set.Keys) != 1 || set.Keys[0].Kid != newKid {
		t.Fatalf("JWKS after retention: %+v", set)
	}
	if _, err := verifier.Verify(context.Background(), oldToken); err == nil {
		t.Fatal("a token of a key past retention still verifies")
	}
	// The next rotation drops it from the file.
	if _, _, err := RotateKeyFile(path, c.Now(), false); err != nil {
		t.Fatal(err)
	}
	raw, _ = os.ReadFile(path)
	if strings.Contains(string(raw), oldKid) {
		t.Fatal("the expired key is still in the file")
	}
	// A broken file does not take the ring down.
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ring.Sign(claims()); err != nil {
		t.Fatalf("sign with a broken file: %v", err)
	}
	if _, _, err := OpenKeyRing(path, KeyRingOptions{}); err == nil {
		t.Fatal("a broken key file opened")
	}
}

func TestHasher(t *testing.T) {
	h := NewArgon2id(Argon2idParams{}, 1)
	if h.Params != DefaultArgon2id || DefaultArgon2id.Memory != 19*1024 || DefaultArgon2id.Time != 2 || DefaultArgon2id.Threads != 1 {
		t.Fatalf("default parameters %+v", h.Params)
	}
	ctx := context.Background()
	enc, err := h.Hash(ctx, pw)
	if err != nil || !strings.HasPrefix(enc, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q %v", enc, err)
	}
	if ok, err := h.Verify(ctx, enc, pw); !ok || err != nil {
		t.Fatalf("verify: %v %v", ok, err)
	}
	if ok, err := h.Verify(ctx, enc, pw+"x"); ok || err != nil {
		t.Fatalf("wrong password: %v %v", ok, err)
	}
	for _, bad := range []string{"", "$2a$12$abc", "$argon2id$v=19$m=999999999,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", strings.Replace(enc, "v=19", "v=16", 1)} {
		if _, err := h.Verify(ctx, bad, pw); err == nil {
			t.Fatalf("malformed hash %q accepted", bad)
		}
	}
	// The slot is taken: a caller whose context ends gets unavailable, not a hang.
	h.sem <- struct{}{}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = h.Hash(cctx, pw)
	wantKind(t, err, errs.Unavailable)
	<-h.sem
}

// BenchmarkArgon2id is the cost of one password check at the contract's parameters: its
// inverse is the logins per second one core sustains.
func BenchmarkArgon2id(b *testing.B) {
	h := NewArgon2id(DefaultArgon2id, 0)
	ctx := context.Background()
	enc, err := h.Hash(ctx, pw)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if ok, err := h.Verify(ctx, enc, pw); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
	})
}
