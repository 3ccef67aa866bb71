package authz

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v4"
	"github.com/pms/pms/pkg/platform/errs"
)

// revocationFixture is a verifier over a fresh key, obeying a deny table on a test clock.
type revocationFixture struct {
	priv  ed25519.PrivateKey
	v     *Verifier
	table *DenyTable
	now   time.Time
}

func newRevocationFixture(t *testing.T) *revocationFixture {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := &revocationFixture{priv: priv, now: time.Now()}
	f.table = NewDenyTable(10 * time.Second)
	f.table.now, f.table.base = func() time.Time { return f.now }, f.now
	f.v = NewVerifier(StaticKeys{"k": pub}, DefaultIssuer, DefaultAudience).WithRevocations(f.table)
	return f
}

func (f *revocationFixture) token(t *testing.T, sub, sid string, ver int64) string {
	now := time.Now()
	tok, err := Sign(f.priv, "k", Claims{Role: RoleClinician, SessionID: sid, Version: ver, RegisteredClaims: jwt.RegisteredClaims{
		Issuer: DefaultIssuer, Audience: jwt.ClaimStrings{DefaultAudience}, Subject: sub,
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(AccessTokenTTL)),
	}})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (f *revocationFixture) verifies(t *testing.T, tok string) bool {
	t.Helper()
	_, err := f.v.Verify(context.Background(), tok)
	if err != nil && !errors.Is(err, errs.New(errs.Unauthenticated, "")) {
		t.Fatalf("not unauthenticated: %v", err)
	}
	return err == nil
}

// TestDenyTableEndsTokens: a session entry ends that session's tokens only; a user entry
// ends the user's tokens below its version except the excepted session's, and a later entry
// without the exception supersedes it; tokens verified (and cached) before an entry arrives
// are refused after it; entries at or below the table's sequence are ignored (a replay), a
// Reset replaces everything, and entries older than a token's lifetime are forgotten.
func TestDenyTableEndsTokens(t *testing.T) {
	f := newRevocationFixture(t)
	a1 := f.token(t, "alice", "s1", 0)
	a2 := f.token(t, "alice", "s2", 0)
	b1 := f.token(t, "bob", "s3", 0)
	for _, tok := range []string{a1, a2, b1} {
		if !f.verifies(t, tok) { // verified once: now cached
			t.Fatal("a fresh token refused")
		}
	}
	f.table.Apply([]Revocation{{Seq: 1, Kind: RevokeSession, UserID: "alice", SessionID: "s1", At: f.now}}, 1)
	if f.verifies(t, a1) || !f.verifies(t, a2) || !f.verifies(t, b1) {
		t.Fatal("a session entry must end exactly that session's tokens (cached ones too)")
	}
	// A password change from s2: every other token of alice below version 1 ends.
	f.table.Apply([]Revocation{{Seq: 2, Kind: RevokeUser, UserID: "alice", MinVersion: 1, ExceptSession: "s2", At: f.now}}, 2)
	a3 := f.token(t, "alice", "s4", 0)
	if !f.verifies(t, a2) || f.verifies(t, a3) || !f.verifies(t, f.token(t, "alice", "s4", 1)) || !f.verifies(t, b1) {
		t.Fatal("a user entry must end the user's older tokens but the excepted session's")
	}
	// A replay of an old sequence changes nothing; a later disable (no exception) ends s2 too.
	f.table.Apply([]Revocation{{Seq: 2, Kind: RevokeUser, UserID: "bob", MinVersion: 5, At: f.now}}, 2)
	if !f.verifies(t, b1) {
		t.Fatal("a replayed sequence was applied")
	}
	f.table.Apply([]Revocation{{Seq: 3, Kind: RevokeUser, UserID: "alice", MinVersion: 2, At: f.now}}, 3)
	if f.verifies(t, a2) || f.verifies(t, f.token(t, "alice", "s4", 1)) || !f.verifies(t, f.token(t, "alice", "s5", 2)) {
		t.Fatal("a later user entry must supersede the exception")
	}
	if f.table.Seq() != 3 || f.table.Len() != 2 {
		t.Fatalf("seq %d len %d", f.table.Seq(), f.table.Len())
	}
	// Entries past a token's lifetime are forgotten at the next apply.
	f.now = f.now.Add(AccessTokenTTL + 2*revocationMargin)
	f.table.Apply(nil, 4)
	if f.table.Len() != 0 || f.table.Seq() != 4 {
		t.Fatalf("after the lifetime: len %d seq %d", f.table.Len(), f.table.Seq())
	}
	f.table.Reset([]Revocation{{Seq: 1, Kind: RevokeSession, UserID: "bob", SessionID: "s3", At: f.now}}, 1)
	if f.table.Seq() != 1 || f.verifies(t, b1) {
		t.Fatal("a reset must replace the table")
	}
}

// TestGuardRefusesWritesWhenStale: a followed table that has not heard from its stream for
// longer than its bound makes the guard refuse writes with 503 (reads go on, public methods
// too); news makes it fresh again. A table nobody follows is never stale.
func TestGuardRefusesWritesWhenStale(t *testing.T) {
	f := newRevocationFixture(t)
	roles := RoleTable{"Read": {RoleClinician}, "Write": {RoleClinician}, "Login": {Public}}
	g := NewGuard(f.v, roles, nil).WithReads(map[string]bool{"Read": true})
	ok := func(context.Context, any) (any, error) { return "ok", nil }
	call := func(method string) error {
		_, err := g.Middleware(method)(ok)(WithToken(context.Background(), f.token(t, "alice", "s1", 0)), nil)
		return err
	}
	if f.table.Stale() || call("Write") != nil {
		t.Fatal("a table nobody follows must never be stale")
	}
	f.table.Follow()
	f.now = f.now.Add(11 * time.Second)
	if !f.table.Stale() {
		t.Fatal("not stale past the bound")
	}
	if err := call("Write"); !errors.Is(err, errs.New(errs.Unavailable, "")) {
		t.Fatalf("write while stale: %v", err)
	}
	if call("Read") != nil || call("Login") != nil {
		t.Fatal("reads and public methods must go on while stale")
	}
	f.table.Heard()
	if f.table.Stale() || call("Write") != nil {
		t.Fatal("news must make the table fresh")
	}
}
