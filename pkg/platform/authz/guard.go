package authz

import (
	"context"
	"fmt"
	"strings"

	"github.com/go-kit/kit/endpoint"
	"github.com/pms/pms/pkg/platform/errs"
)

// Special entries of a role table.
const (
	// Public marks an endpoint that needs no token (login, refresh, JWKS).
	Public = "public"
	// Authenticated marks an endpoint any valid token may call (validate).
	Authenticated = "authenticated"
)

// RoleTable maps an endpoint method to the roles allowed to call it. Admin may call every
// non-public endpoint ("admin: everything"), so it need not be listed.
type RoleTable map[string][]string

// Allows reports whether role may call method.
func (t RoleTable) Allows(method, role string) bool {
	for _, r := range t[method] {
		if r == role || r == Authenticated || r == Public {
			return true
		}
	}
	return role == RoleAdmin && len(t[method]) > 0
}

// DeniedFunc learns of every refused call (to audit it): the method, the request as decoded
// (it may be a rejected decode) and the error (unauthenticated or permission_denied).
type DeniedFunc func(ctx context.Context, method string, request any, err error)

// Guard is the authentication and authorisation endpoint middleware of one service.
type Guard struct {
	verifier  *Verifier
	roles     RoleTable
	reads     map[string]bool
	onDenied  DeniedFunc
	anonymous bool
}

// NewGuard checks tokens with v against roles, reporting refusals to onDenied (may be nil).
func NewGuard(v *Verifier, roles RoleTable, onDenied DeniedFunc) *Guard {
	return &Guard{verifier: v, roles: roles, onDenied: onDenied}
}

// WithReads tells the guard which methods only read (op.Table.Reads): while the verifier's
// revocation table is stale (authz.DenyTable) every other method is refused with 503, since
// a token revoked meanwhile could otherwise go on writing. Without it every method counts as
// a write.
func (g *Guard) WithReads(reads map[string]bool) *Guard {
	g.reads = reads
	return g
}

// AllowAnonymous returns a guard that lets every call through as Anonymous. It exists for
// transport tests that exercise encoding, not security; no command wires it.
func AllowAnonymous() *Guard { return &Guard{anonymous: true} }

// Middleware guards the endpoint method: 401 without a valid token, 403 when the token's
// role may not call it, and only then the endpoint (where a rejected decode turns into its
// 400/413/415). A method missing from the role table panics at wiring time: fail closed.
func (g *Guard) Middleware(method string) endpoint.Middleware {
	if g == nil {
		panic("authz: nil guard for " + method)
	}
	if g.anonymous {
		return func(next endpoint.Endpoint) endpoint.Endpoint { return next }
	}
	allowed, ok := g.roles[method]
	if !ok || len(allowed) == 0 {
		panic(fmt.Sprintf("authz: method %s has no entry in the role table", method))
	}
	public := len(allowed) == 1 && allowed[0] == Public
	return func(next endpoint.Endpoint) endpoint.Endpoint {
		return func(ctx context.Context, req any) (any, error) {
			if public {
				return next(ctx, req)
			}
			p, err := g.verifier.Verify(ctx, Token(ctx))
			if name, ok := strings.CutPrefix(p.Subject, "svc:"); err == nil && ok && PeerService(ctx) != name {
				// A service acts as itself only from its own certificate: a token naming it
				// proves nothing, since any holder of the signing key could mint one.
				err = errs.New(errs.PermissionDenied, "a service identity needs that service's client certificate")
			}
			if err == nil && !g.roles.Allows(method, p.Role) {
				err = errs.New(errs.PermissionDenied, "your role may not do this")
			}
			if err == nil && !g.reads[method] && g.verifier.deny.Stale() {
				err = ErrRevocationsStale
			}
			if err != nil {
				if p.Subject != "" {
					ctx = WithPrincipal(ctx, p)
				}
				if g.onDenied != nil {
					g.onDenied(ctx, method, req, err)
				}
				return nil, err
			}
			return next(WithPrincipal(ctx, p), req)
		}
	}
}
