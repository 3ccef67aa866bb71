package grpctransport

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/pms/pms/migrations"
	"github.com/pms/pms/pkg/auth"
	"github.com/pms/pms/pkg/platform/audit"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/db"
	"github.com/pms/pms/pkg/platform/db/dbtest"
	"github.com/pms/pms/pkg/platform/errs"
	authv1 "github.com/pms/pms/proto/pms/auth/v1"
)

const authPassword = "a long enough password"

// startAuth serves the real auth service (SQLite, cheap hasher) with its real guard on a
// loopback gRPC server and returns a client of it.
func startAuth(t *testing.T, throttle auth.ThrottleOptions, opts ...func(*auth.Options)) (auth.Set, authv1.AuthServiceClient) {
	t.Helper()
	ctx := context.Background()
	d := dbtest.Open(t, db.SQLite, migrations.Auth())
	keys, _, err := auth.OpenKeyRing(filepath.Join(t.TempDir(), auth.KeyFileName), auth.KeyRingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := audit.NewWriter(d, audit.Options{Table: auth.AuditTable})
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	store := auth.NewStore(d)
	o := auth.Options{
		Hasher:   auth.NewArgon2id(auth.Argon2idParams{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}, 0),
		Throttle: throttle,
	}
	for _, f := range opts {
		f(&o)
	}
	svc, err := auth.NewService(ctx, store, keys, w, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := auth.BootstrapAdmin(ctx, store, svc, "admin@example.org", authPassword); err != nil {
		t.Fatal(err)
	}
	guard := authz.NewGuard(authz.NewVerifier(keys, authz.DefaultIssuer, authz.DefaultAudience), auth.Roles, auth.DeniedAuditor(w))
	srv := NewServer(ServerOptions{})
	RegisterAuthServer(srv, auth.NewEndpoints(svc, auth.EndpointOptions{Guard: guard}))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn := dial(t, lis.Addr().String())
	return NewAuthClient(conn), authv1.NewAuthServiceClient(conn)
}

func TestAuthOverGRPC(t *testing.T) {
	c, raw := startAuth(t, auth.ThrottleOptions{AccountAttempts: 2})
	ctx := testContext(t)
	pair, err := c.Login(ctx, auth.LoginRequest{Email: "admin@example.org", Password: authPassword})
	if err != nil || pair.TokenType != "Bearer" || pair.ExpiresIn != 900 || pair.Token == "" || pair.RefreshToken == "" {
		t.Fatalf("login: %+v %v", pair, err)
	}
	actx := authz.WithToken(ctx, pair.Token)
	v, err := c.Validate(actx)
	if err != nil || v.Role != authz.RoleAdmin || v.Exp == 0 || v.Sub == "" {
		t.Fatalf("validate: %+v %v", v, err)
	}
	if _, err := c.Validate(ctx); errs.KindOf(err) != errs.Unauthenticated {
		t.Fatalf("validate without a token: %v", err)
	}
	u, err := c.CreateUser(actx, auth.CreateUserRequest{Email: "n@example.org", Password: authPassword, Role: authz.RoleBilling})
	if err != nil || u.Role != authz.RoleBilling || u.CreatedAt.IsZero() {
		t.Fatalf("create: %+v %v", u, err)
	}
	_, err = c.CreateUser(actx, auth.CreateUserRequest{Email: "N@example.org", Password: authPassword, Role: authz.RoleBilling})
	if !errors.Is(err, auth.ErrEmailTaken) {
		t.Fatalf("duplicate: %v", err)
	}
	_, err = c.CreateUser(actx, auth.CreateUserRequest{Email: "m@example.org", Password: "short", Role: "x"})
	var ee *errs.Error
	if !errors.As(err, &ee) || ee.Fields["password"] == "" || ee.Fields["role"] == "" {
		t.Fatalf("validation over gRPC: %v", err)
	}
	yes := true
	got, err := c.UpdateUser(actx, auth.UpdateUserRequest{ID: u.ID, Disabled: &yes})
	if err != nil || !got.Disabled || got.Role != authz.RoleBilling {
		t.Fatalf("update (role absent stays): %+v %v", got, err)
	}
	if _, err := c.UpdateUser(actx, auth.UpdateUserRequest{ID: v.Sub, Disabled: &yes}); !errors.Is(err, auth.ErrLastAdmin) {
		t.Fatalf("last admin: %v", err)
	}
	if g, err := c.GetUser(actx, u.ID); err != nil || g != got {
		t.Fatalf("get: %+v %v", g, err)
	}
	if users, err := c.ListUsers(actx); err != nil || len(users) != 2 {
		t.Fatalf("list: %v %v", users, err)
	}
	if entries, err := c.Audit(actx, auth.AuditQuery{UserID: u.ID}); err != nil || len(withoutAuthReads(entries)) != 2 {
		t.Fatalf("audit: %v %v", entries, err)
	}
	if set, err := c.JWKS(ctx); err != nil || len(set.Keys) != 1 || set.Keys[0].Crv != "Ed25519" {
		t.Fatalf("jwks: %+v %v", set, err)
	}
	next, err := c.Refresh(ctx, auth.RefreshRequest{RefreshToken: pair.RefreshToken})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Refresh(ctx, auth.RefreshRequest{RefreshToken: pair.RefreshToken}); !errors.Is(err, auth.ErrBadRefreshToken) {
		t.Fatalf("reuse: %v", err)
	}
	if _, err := c.Refresh(ctx, auth.RefreshRequest{RefreshToken: next.RefreshToken}); errs.KindOf(err) != errs.Unauthenticated {
		t.Fatalf("family after reuse: %v", err)
	}
	if err := c.Logout(ctx, auth.LogoutRequest{RefreshToken: next.RefreshToken}); err != nil {
		t.Fatal(err)
	}
	// A billing user may not manage users: 403, and 401 before anything else.
	if _, err := c.ListUsers(ctx); errs.KindOf(err) != errs.Unauthenticated {
		t.Fatalf("no token: %v", err)
	}
	// Throttling: ResourceExhausted with the retry hint.
	for range 2 {
		if _, err := c.Login(ctx, auth.LoginRequest{Email: "admin@example.org", Password: "wrong wrong wrong"}); !errors.Is(err, auth.ErrBadCredentials) {
			t.Fatal(err)
		}
	}
	_, err = c.Login(ctx, auth.LoginRequest{Email: "admin@example.org", Password: authPassword})
	if !errors.As(err, &ee) || ee.Kind != errs.RateLimited || ee.RetryAfter <= 0 {
		t.Fatalf("throttled: %v", err)
	}
	_, rerr := raw.Login(ctx, &authv1.LoginRequest{Email: "admin@example.org", Password: authPassword})
	if status.Code(rerr) != codes.ResourceExhausted {
		t.Fatalf("raw code %v", rerr)
	}
	// Nil and empty messages never panic.
	if _, err := raw.UpdateUser(authz.WithToken(ctx, pair.Token), &authv1.UpdateUserRequest{}); err == nil {
		t.Fatal("empty update accepted")
	}
	if _, err := raw.GetJwks(ctx, nil); err != nil {
		t.Fatalf("nil request: %v", err)
	}
}

// TestInviteOverGRPC: CreateUser without a password answers the invite token and its expiry;
// the invited user cannot log in (Unauthenticated, as a wrong password); SetPassword needs
// no access token, sets the password once, and then answers InvalidArgument with the
// field "token"; a weak password is InvalidArgument naming new_password's contract field.
// A raw client reading CreateUser's answer sees the invite fields on the wire.
func TestInviteOverGRPC(t *testing.T) {
	c, raw := startAuth(t, auth.ThrottleOptions{})
	ctx := testContext(t)
	pair, err := c.Login(ctx, auth.LoginRequest{Email: "admin@example.org", Password: authPassword})
	if err != nil {
		t.Fatal(err)
	}
	actx := authz.WithToken(ctx, pair.Token)
	inv, err := c.CreateUser(actx, auth.CreateUserRequest{Email: "invitee@example.org", Role: authz.RoleClinician})
	if err != nil || len(inv.InviteToken) != 43 || inv.InviteExpiresAt == nil || inv.InviteExpiresAt.Sub(inv.CreatedAt) != auth.DefaultInviteTTL ||
		inv.ID == "" || inv.Role != authz.RoleClinician {
		t.Fatalf("invite: %+v %v", inv, err)
	}
	if _, err := c.Login(ctx, auth.LoginRequest{Email: "invitee@example.org", Password: authPassword}); !errors.Is(err, auth.ErrBadCredentials) {
		t.Fatalf("invited login: %v", err)
	}
	var ee *errs.Error
	err = c.SetPassword(ctx, auth.SetPasswordRequest{Token: inv.InviteToken, NewPassword: "short"})
	if !errors.As(err, &ee) || ee.Kind != errs.InvalidArgument || ee.Fields["newPassword"] == "" {
		t.Fatalf("weak password: %v", err)
	}
	if err := c.SetPassword(ctx, auth.SetPasswordRequest{Token: inv.InviteToken, NewPassword: authPassword}); err != nil {
		t.Fatalf("set password: %v", err)
	}
	if _, err := c.Login(ctx, auth.LoginRequest{Email: "invitee@example.org", Password: authPassword}); err != nil {
		t.Fatalf("login after set: %v", err)
	}
	err = c.SetPassword(ctx, auth.SetPasswordRequest{Token: inv.InviteToken, NewPassword: authPassword})
	if !errors.As(err, &ee) || ee.Kind != errs.InvalidArgument || ee.Fields["token"] == "" || !errors.Is(err, auth.ErrBadSetPasswordToken) {
		t.Fatalf("reuse: %v", err)
	}
	_, rerr := raw.SetPassword(ctx, &authv1.SetPasswordRequest{Token: inv.InviteToken, NewPassword: authPassword})
	if status.Code(rerr) != codes.InvalidArgument {
		t.Fatalf("raw reuse: %v", rerr)
	}
	if _, err := raw.SetPassword(ctx, nil); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("nil request: %v", err)
	}
	mctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+pair.Token)
	got, err := raw.CreateUser(mctx, &authv1.CreateUserRequest{Email: "raw@example.org", Role: authz.RoleAnalyst})
	if err != nil || len(got.GetInviteToken()) != 43 || got.GetInviteExpiresAt() == nil || got.GetId() == "" {
		t.Fatalf("raw invite: %v %v", got, err)
	}
	got, err = raw.CreateUser(mctx, &authv1.CreateUserRequest{Email: "pw@example.org", Password: authPassword, Role: authz.RoleAnalyst})
	if err != nil || got.GetInviteToken() != "" || got.GetInviteExpiresAt() != nil {
		t.Fatalf("raw create with a password: %v %v", got, err)
	}
	// CreatedUser's fields 1-6 are User's: a client built before invites reads it as a User.
	b, _ := proto.Marshal(got)
	var old authv1.User
	if err := proto.Unmarshal(b, &old); err != nil || old.GetId() != got.GetId() || old.GetEmail() != "pw@example.org" || old.GetCreatedAt() == nil {
		t.Fatalf("CreatedUser read as User: %v %v", &old, err)
	}
}

// TestChangePasswordOverGRPC: ChangePassword with the caller's token changes its own
// password; a wrong current password is unauthenticated (ErrBadCurrentPassword through the
// client), a common one invalid_argument, no token unauthenticated; another session's refresh
// token from before the change no longer works, the changing session's does, and the new
// password logs in.
func TestChangePasswordOverGRPC(t *testing.T) {
	c, raw := startAuth(t, auth.ThrottleOptions{})
	ctx := testContext(t)
	pair, err := c.Login(ctx, auth.LoginRequest{Email: "admin@example.org", Password: authPassword})
	if err != nil {
		t.Fatal(err)
	}
	other, err := c.Login(ctx, auth.LoginRequest{Email: "admin@example.org", Password: authPassword})
	if err != nil {
		t.Fatal(err)
	}
	actx := authz.WithToken(ctx, pair.Token)
	if _, err := raw.ChangePassword(ctx, &authv1.ChangePasswordRequest{CurrentPassword: authPassword, NewPassword: "a changed long password"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no token: %v", err)
	}
	if err := c.ChangePassword(actx, auth.ChangePasswordRequest{CurrentPassword: "not the password 1", NewPassword: "a changed long password"}); !errors.Is(err, auth.ErrBadCurrentPassword) {
		t.Fatalf("wrong current: %v", err)
	}
	var ee *errs.Error
	err = c.ChangePassword(actx, auth.ChangePasswordRequest{CurrentPassword: authPassword, NewPassword: "password123456"})
	if !errors.As(err, &ee) || ee.Kind != errs.InvalidArgument || ee.Fields["newPassword"] == "" {
		t.Fatalf("common password: %v", err)
	}
	if err := c.ChangePassword(actx, auth.ChangePasswordRequest{CurrentPassword: authPassword, NewPassword: "a changed long password"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Refresh(ctx, auth.RefreshRequest{RefreshToken: other.RefreshToken}); !errors.Is(err, auth.ErrBadRefreshToken) {
		t.Fatalf("another session's refresh from before: %v", err)
	}
	if _, err := c.Refresh(ctx, auth.RefreshRequest{RefreshToken: pair.RefreshToken}); err != nil {
		t.Fatalf("the changing session's refresh: %v", err)
	}
	if _, err := c.Login(ctx, auth.LoginRequest{Email: "admin@example.org", Password: authPassword}); !errors.Is(err, auth.ErrBadCredentials) {
		t.Fatalf("old password: %v", err)
	}
	if _, err := c.Login(ctx, auth.LoginRequest{Email: "admin@example.org", Password: "a changed long password"}); err != nil {
		t.Fatal(err)
	}
}

// TestResetPasswordOverGRPC: ResetPassword (admin) returns a token and its expiry; the
// user's old password then fails and SetPassword with the token works once.
func TestResetPasswordOverGRPC(t *testing.T) {
	c, _ := startAuth(t, auth.ThrottleOptions{})
	ctx := testContext(t)
	pair, err := c.Login(ctx, auth.LoginRequest{Email: "admin@example.org", Password: authPassword})
	if err != nil {
		t.Fatal(err)
	}
	actx := authz.WithToken(ctx, pair.Token)
	u, err := c.CreateUser(actx, auth.CreateUserRequest{Email: "reset@example.org", Password: authPassword, Role: authz.RoleAnalyst})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ResetPassword(actx, auth.ResetPasswordRequest{ID: pair.Token}); errs.KindOf(err) != errs.InvalidArgument {
		t.Fatalf("malformed id: %v", err)
	}
	r, err := c.ResetPassword(actx, auth.ResetPasswordRequest{ID: u.ID})
	if err != nil || len(r.ResetToken) != 43 || r.ResetExpiresAt.Sub(u.CreatedAt) < 59*time.Minute {
		t.Fatalf("reset: %+v %v", r, err)
	}
	if _, err := c.Login(ctx, auth.LoginRequest{Email: "reset@example.org", Password: authPassword}); !errors.Is(err, auth.ErrBadCredentials) {
		t.Fatalf("old password: %v", err)
	}
	if err := c.SetPassword(ctx, auth.SetPasswordRequest{Token: r.ResetToken, NewPassword: "a brand new long passphrase"}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetPassword(ctx, auth.SetPasswordRequest{Token: r.ResetToken, NewPassword: "a brand new long passphrase"}); !errors.Is(err, auth.ErrBadSetPasswordToken) {
		t.Fatalf("reuse: %v", err)
	}
	if _, err := c.Login(ctx, auth.LoginRequest{Email: "reset@example.org", Password: "a brand new long passphrase"}); err != nil {
		t.Fatal(err)
	}
}

// withoutAuthReads drops the audited reads of users and of the audit log (issue 17).
func withoutAuthReads(entries []auth.AuditEntry) []auth.AuditEntry {
	var out []auth.AuditEntry
	for _, e := range entries {
		if e.Action != auth.ActionUserRead && e.Action != auth.ActionAuditRead {
			out = append(out, e)
		}
	}
	return out
}
