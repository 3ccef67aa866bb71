// Package authz decides who is acting and whether they may: it verifies access tokens
// (EdDSA JWTs from the auth service, through go-kit's auth/jwt), keeps the principal and the
// raw token in the context (the token is forwarded on calls made on the user's behalf), and
// checks each endpoint against a role table. Order, as API.md requires: 401, then 403, then
// everything else.
package authz

import (
	"context"
	"crypto/x509"
	"strings"

	kitjwt "github.com/go-kit/kit/auth/jwt"
)

// Roles of the contract.
const (
	RoleAdmin     = "admin"
	RoleClinician = "clinician"
	RoleBilling   = "billing"
	RoleAnalyst   = "analyst"
	// RolePrivacy is the privacy officer's: read-only access to audit logs and patients'
	// access logs, nothing clinical (issue 17).
	RolePrivacy = "privacy"
)

// Roles lists every role.
var Roles = []string{RoleAdmin, RoleClinician, RoleBilling, RoleAnalyst, RolePrivacy}

// ValidRole reports whether r is one of the contract's roles.
func ValidRole(r string) bool {
	for _, x := range Roles {
		if x == r {
			return true
		}
	}
	return false
}

// Anonymous is the actor recorded when nobody is authenticated (tests with auth off).
const Anonymous = "anonymous"

// Principal is the caller: the token's subject, email and role, or a service acting on its
// own behalf (Subject "svc:<name>").
type Principal struct {
	Subject string
	Email   string
	Role    string
	// SessionID and Version are the token's session (refresh family) and the user's token
	// version it was issued under: what revocations (authz.DenyTable) are checked against.
	SessionID string
	Version   int64
}

type ctxKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the principal carried by ctx, if any.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok
}

// Actor returns who is acting in ctx (subject and role), or Anonymous; this is what audit
// rows and history record.
func Actor(ctx context.Context) (subject, role string) {
	if p, ok := FromContext(ctx); ok && p.Subject != "" {
		return p.Subject, p.Role
	}
	return Anonymous, ""
}

// Service returns ctx acting as the service itself ("svc:<name>"), for work no user asked
// for in that moment (event consumers, relays).
func Service(ctx context.Context, name string) context.Context {
	return WithPrincipal(ctx, Principal{Subject: "svc:" + name, Role: "service"})
}

// WithToken returns ctx carrying the caller's raw bearer token. It uses go-kit's
// JWTContextKey, so go-kit's HTTPToContext/GRPCToContext/ContextToGRPC interoperate.
func WithToken(ctx context.Context, token string) context.Context {
	return context.WithValue(ctx, kitjwt.JWTContextKey, token)
}

// Token returns the raw bearer token carried by ctx, or "".
func Token(ctx context.Context) string {
	s, _ := ctx.Value(kitjwt.JWTContextKey).(string)
	return s
}

// BearerToken returns the token of an Authorization value "Bearer <token>" (the scheme in
// any case, RFC 6750), or "" when v is not one. The token must have RFC 6750's b64token
// syntax (letters, digits, -._~+/ and trailing =), as every token PMS issues has: anything
// else is no token of ours, and carried on it would break the metadata of the upstream call
// that forwards it (gRPC refuses a non-printable value) into an internal error.
func BearerToken(v string) string {
	scheme, token, ok := strings.Cut(strings.TrimSpace(v), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || !b64token(token) {
		return ""
	}
	return token
}

// b64token reports whether s is 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func b64token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			return false
		}
	}
	return true
}

type peerKey struct{}

// WithPeerService returns ctx knowing that the caller proved, with a client certificate the
// platform's CA signed, to be the service name (its URI SAN spiffe://pms/<name>).
func WithPeerService(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, peerKey{}, name)
}

// PeerService is the service the caller's verified client certificate names, or "".
func PeerService(ctx context.Context) string {
	name, _ := ctx.Value(peerKey{}).(string)
	return name
}

// ServiceOf reports the service a verified certificate chain names: the first URI SAN of the
// form spiffe://pms/<name> of its leaf.
func ServiceOf(chains [][]*x509.Certificate) string {
	if len(chains) == 0 || len(chains[0]) == 0 {
		return ""
	}
	for _, u := range chains[0][0].URIs {
		if u.Scheme == "spiffe" && u.Host == "pms" && len(u.Path) > 1 && !strings.Contains(u.Path[1:], "/") {
			return u.Path[1:]
		}
	}
	return ""
}
