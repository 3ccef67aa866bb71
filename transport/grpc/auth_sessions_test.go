package grpctransport

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pms/pms/pkg/auth"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/errs"
	"github.com/pms/pms/pkg/platform/observe"
	authv1 "github.com/pms/pms/proto/pms/auth/v1"
)

// TestSessionsOverGRPC: a login returns a device token, which the next login carries back;
// ListSessions shows the caller's sessions with the user agent the client forwarded
// (x-pms-user-agent, as the gateway does) and marks the current one; DeleteSession ends one
// (its refresh token fails), an unknown id is not_found (ErrSessionNotFound through the
// client), a malformed one invalid_argument, no token unauthenticated; LogoutAll ends every
// refresh token.
func TestSessionsOverGRPC(t *testing.T) {
	c, raw := startAuth(t, auth.ThrottleOptions{})
	ctx := observe.WithUserAgent(testContext(t), "Mozilla/5.0 (X11) Firefox/140")
	first, err := c.Login(ctx, auth.LoginRequest{Email: "admin@example.org", Password: authPassword})
	if err != nil || first.DeviceToken == "" {
		t.Fatalf("login: %+v %v", first, err)
	}
	second, err := c.Login(testContext(t), auth.LoginRequest{Email: "admin@example.org", Password: authPassword, DeviceToken: first.DeviceToken})
	if err != nil || second.DeviceToken != first.DeviceToken {
		t.Fatalf("login on a known device: %+v %v", second, err)
	}
	actx := authz.WithToken(testContext(t), first.Token)
	list, err := c.ListSessions(actx)
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %+v %v", list, err)
	}
	var current auth.Session
	for _, s := range list {
		if s.Current {
			current = s
		}
	}
	if current.UserAgent != "Mozilla/5.0 (X11) Firefox/140" || current.ClientAddress != "127.0.0.1" || current.CreatedAt.IsZero() {
		t.Fatalf("current session: %+v (all %+v)", current, list)
	}
	if _, err := raw.ListSessions(testContext(t), &authv1.ListSessionsRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no token: %v", err)
	}
	if err := c.DeleteSession(actx, auth.DeleteSessionRequest{ID: "00000000-0000-4000-8000-000000000000"}); !errors.Is(err, auth.ErrSessionNotFound) {
		t.Fatalf("unknown session: %v", err)
	}
	if err := c.DeleteSession(actx, auth.DeleteSessionRequest{ID: "nope"}); errs.KindOf(err) != errs.InvalidArgument {
		t.Fatalf("malformed id: %v", err)
	}
	other := list[0].ID
	if other == current.ID {
		other = list[1].ID
	}
	if err := c.DeleteSession(actx, auth.DeleteSessionRequest{ID: other}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Refresh(testContext(t), auth.RefreshRequest{RefreshToken: second.RefreshToken}); !errors.Is(err, auth.ErrBadRefreshToken) {
		t.Fatalf("refresh of the deleted session: %v", err)
	}
	if err := c.LogoutAll(actx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Refresh(context.Background(), auth.RefreshRequest{RefreshToken: first.RefreshToken}); !errors.Is(err, auth.ErrBadRefreshToken) {
		t.Fatalf("refresh after logout everywhere: %v", err)
	}
}
