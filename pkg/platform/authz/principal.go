// Package authz says who is acting. Today it carries the principal through the context and
// marks, in Authenticate, the one place where token verification plugs in: the auth issue
// replaces its body with JWT verification (go-kit auth/jwt) and a per-endpoint role table.
package authz

import (
	"context"

	"github.com/go-kit/kit/endpoint"
)

// Anonymous is the actor recorded while no authentication is configured.
const Anonymous = "anonymous"

// Principal is the caller: the token's subject, email and role.
type Principal struct {
	Subject string
	Email   string
	Role    string
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

// Actor returns the subject acting in ctx, or Anonymous; this is what audit rows record.
func Actor(ctx context.Context) (subject, role string) {
	if p, ok := FromContext(ctx); ok && p.Subject != "" {
		return p.Subject, p.Role
	}
	return Anonymous, ""
}

// Authenticate is the endpoint middleware where authentication plugs in. Until the auth
// service exists it lets every caller through as Anonymous; it is already wired in front of
// every endpoint, so adding JWT checks changes this function and nothing else.
func Authenticate(method string) endpoint.Middleware {
	_ = method // the role table will be keyed by endpoint method
	return func(next endpoint.Endpoint) endpoint.Endpoint { return next }
}
