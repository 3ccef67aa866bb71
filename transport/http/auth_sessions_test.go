package httptransport

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/golang-jwt/jwt/v4"

	"github.com/pms/pms/pkg/auth"
	"github.com/pms/pms/pkg/platform/authz"
	"github.com/pms/pms/pkg/platform/errs"
)

// TestSessionsOverHTTP: POST /login returns a deviceToken and accepts one back; GET
// /sessions lists the caller's sessions (user agent from the request, current marked); DELETE
// /sessions/{id} is 204 for one's own, 404 for an unknown id, 400 for a malformed one or a
// query; no token is 401; DELETE /sessions ends every session (204). The client does the same.
func TestSessionsOverHTTP(t *testing.T) {
	e := newAuthEnv(t, auth.ThrottleOptions{})
	resp, b := e.do(t, "POST", "/login", "", `{"email":"clin@example.org","password":"`+authPassword+`"}`, append(jsonCT, "User-Agent", "PMS-Tablet/2.1")...)
	var first auth.TokenPair
	if resp.StatusCode != 200 || json.Unmarshal(b, &first) != nil || first.DeviceToken == "" {
		t.Fatalf("login: %d %s", resp.StatusCode, b)
	}
	resp, b = e.do(t, "POST", "/login", "", `{"email":"clin@example.org","password":"`+authPassword+`","deviceToken":"`+first.DeviceToken+`"}`, jsonCT...)
	var second auth.TokenPair
	if resp.StatusCode != 200 || json.Unmarshal(b, &second) != nil || second.DeviceToken != first.DeviceToken {
		t.Fatalf("login on a known device: %d %s", resp.StatusCode, b)
	}

	resp, b = e.do(t, "GET", "/sessions", first.Token, "")
	var list []auth.Session
	// Three: newAuthEnv's own login of the clinician, and the two above.
	if resp.StatusCode != 200 || json.Unmarshal(b, &list) != nil || len(list) != 3 {
		t.Fatalf("list: %d %s", resp.StatusCode, b)
	}
	var claims authz.Claims
	if _, _, err := jwt.NewParser().ParseUnverified(second.Token, &claims); err != nil {
		t.Fatal(err)
	}
	var current, other auth.Session
	for _, s := range list {
		if s.Current {
			current = s
		} else if s.ID == claims.SessionID {
			other = s
		}
	}
	if current.UserAgent != "PMS-Tablet/2.1" || current.ClientAddress != "127.0.0.1" || other.ID == "" {
		t.Fatalf("sessions: %s", b)
	}
	resp, b = e.do(t, "GET", "/sessions", "", "")
	checkError(t, resp, b, 401, errs.Unauthenticated)
	resp, b = e.do(t, "GET", "/sessions?all=1", first.Token, "")
	checkError(t, resp, b, 400, errs.InvalidArgument)
	resp, b = e.do(t, "DELETE", "/sessions/not-a-uuid", first.Token, "")
	checkError(t, resp, b, 400, errs.InvalidArgument)
	resp, b = e.do(t, "DELETE", "/sessions/00000000-0000-4000-8000-000000000000", first.Token, "")
	checkError(t, resp, b, 404, errs.NotFound)
	// The admin cannot end the clinician's session: it is not the admin's.
	resp, b = e.do(t, "DELETE", "/sessions/"+other.ID, e.admin, "")
	checkError(t, resp, b, 404, errs.NotFound)
	resp, b = e.do(t, "DELETE", "/sessions/"+other.ID, first.Token, "")
	if resp.StatusCode != 204 || len(b) != 0 {
		t.Fatalf("delete: %d %s", resp.StatusCode, b)
	}
	resp, b = e.do(t, "POST", "/refresh", "", `{"refreshToken":"`+second.RefreshToken+`"}`, jsonCT...)
	checkError(t, resp, b, 401, errs.Unauthenticated)

	// The client: list, an unknown id, logout everywhere.
	ctx := authz.WithToken(context.Background(), first.Token)
	if l, err := e.client.ListSessions(ctx); err != nil || len(l) != 2 {
		t.Fatalf("client list: %+v %v", l, err)
	}
	if err := e.client.DeleteSession(ctx, auth.DeleteSessionRequest{ID: "00000000-0000-4000-8000-000000000001"}); !errors.Is(err, auth.ErrSessionNotFound) {
		t.Fatalf("client unknown session: %v", err)
	}
	resp, b = e.do(t, "DELETE", "/sessions?x=1", first.Token, "")
	checkError(t, resp, b, 400, errs.InvalidArgument)
	resp, b = e.do(t, "DELETE", "/sessions", first.Token, "")
	if resp.StatusCode != 204 || len(b) != 0 {
		t.Fatalf("logout everywhere: %d %s", resp.StatusCode, b)
	}
	resp, b = e.do(t, "POST", "/refresh", "", `{"refreshToken":"`+first.RefreshToken+`"}`, jsonCT...)
	checkError(t, resp, b, 401, errs.Unauthenticated)
	third := e.login(t, "clin@example.org")
	if err := e.client.LogoutAll(authz.WithToken(context.Background(), third.Token)); err != nil {
		t.Fatalf("client logout everywhere: %v", err)
	}
}
