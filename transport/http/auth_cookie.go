package httptransport

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/pms/pms/pkg/auth"
	"github.com/pms/pms/pkg/platform/errs"
)

// Cookie sessions (issue 18): a browser client keeps its refresh token out of reach of
// scripts. A request carrying HeaderRefreshCookie opts in: a login (with or without the MFA
// step) and a refresh answer the refresh token in the RefreshCookie cookie (HttpOnly, Secure,
// SameSite=Strict, Path=/auth) and blank it in the JSON body; a refresh and a logout read it
// from that cookie instead of the body. The custom header is the CSRF defence: a cross-site
// form or a simple request cannot send it, a cross-site script needs a CORS preflight the
// gateway does not grant, and a request whose Origin (or Sec-Fetch-Site) names another site
// is refused with 403 before anything else. Without the header the cookie is never read, so
// a request riding on the cookie alone is the JSON route's 415/400.
const (
	// HeaderRefreshCookie opts a request in to the cookie session; its value must be "1".
	HeaderRefreshCookie = "X-PMS-Refresh-Cookie"
	// RefreshCookie is the name of the refresh token's cookie.
	RefreshCookie = "pms_refresh"
	// refreshCookiePath is where browsers send the cookie: refresh and logout, nothing else.
	refreshCookiePath = "/auth"
	// refreshCookieMaxAge is the cookie's lifetime (seconds): a session's absolute limit (12 h);
	// the server ends an idle or revoked one earlier whatever the browser keeps.
	refreshCookieMaxAge = 12 * 60 * 60
)

// cookieSession is what a request that opted in to the cookie session carries in its context.
type cookieSession struct {
	// secure is false only for plain HTTP to a loopback host (a developer's laptop).
	secure bool
	// token is the refresh cookie's value, "" without one.
	token string
	// crossSite is why the request is refused, "" when it comes from the same site.
	crossSite string
	// malformed is set when the opt-in header is present but not exactly one "1".
	malformed bool
	// ambiguous is set when the request carries more than one refresh cookie (one may have
	// been planted by a sibling host for a parent domain): which session is meant is unknown.
	ambiguous bool
}

type cookieCtxKey struct{}

// cookieSessionToContext is a ServerBefore of the cookie-capable auth routes: it records
// whether the request opted in (HeaderRefreshCookie), its refresh cookie and its origin.
func cookieSessionToContext(ctx context.Context, r *http.Request) context.Context {
	values := r.Header.Values(HeaderRefreshCookie)
	if len(values) == 0 {
		return ctx
	}
	s := cookieSession{secure: r.TLS != nil || !loopbackHost(r.Host), malformed: len(values) != 1 || values[0] != "1"}
	if cs := r.CookiesNamed(RefreshCookie); len(cs) > 0 {
		s.token, s.ambiguous = cs[0].Value, len(cs) > 1
	}
	s.crossSite = crossSite(r)
	return context.WithValue(ctx, cookieCtxKey{}, s)
}

// sessionFrom returns the request's cookie session, if it opted in.
func sessionFrom(ctx context.Context) (cookieSession, bool) {
	s, ok := ctx.Value(cookieCtxKey{}).(cookieSession)
	return s, ok
}

// check refuses an opted-in request that is malformed or cross-site.
func (s cookieSession) check() error {
	if s.malformed {
		return errs.Invalid(map[string]string{HeaderRefreshCookie: `must be given once, as "1"`})
	}
	if s.crossSite != "" {
		return errs.New(errs.PermissionDenied, s.crossSite)
	}
	if s.ambiguous {
		return errs.Invalid(map[string]string{RefreshCookie: "must be sent once"})
	}
	return nil
}

// crossSite says why r does not come from the site it is sent to, or "" when it does (or
// when the client, not a browser, sends neither Origin nor Sec-Fetch-Site).
func crossSite(r *http.Request) string {
	if origins := r.Header.Values("Origin"); len(origins) > 0 {
		u, err := url.Parse(origins[0])
		if len(origins) != 1 || err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
			return "the request comes from another origin"
		}
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return "the request comes from another site"
	}
	return ""
}

// loopbackHost reports whether a Host header names this machine (localhost or a loopback
// address, with or without a port).
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// refreshCookie is the Set-Cookie value carrying token (an empty token with maxAge -1
// deletes the cookie).
func (s cookieSession) refreshCookie(token string, maxAge int) string {
	return (&http.Cookie{Name: RefreshCookie, Value: token, Path: refreshCookiePath, MaxAge: maxAge,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteStrictMode}).String()
}

// decodeRefreshToken reads the refresh token of POST /refresh or /logout: from the JSON body,
// or, for a request that opted in to the cookie session, from its cookie (the body then
// empty or "{}"; no cookie is 401).
func decodeRefreshToken(ctx context.Context, r *http.Request) (string, error) {
	if err := noQuery(r); err != nil {
		return "", err
	}
	s, ok := sessionFrom(ctx)
	if !ok {
		req, err := DecodeJSON[auth.RefreshRequest](r)
		return req.RefreshToken, err
	}
	if err := s.check(); err != nil {
		return "", err
	}
	if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		if _, err := DecodeJSON[struct{}](r); err != nil {
			return "", err
		}
	}
	if s.token == "" {
		return "", errs.New(errs.Unauthenticated, "no session cookie: sign in again")
	}
	return s.token, nil
}

// encodeTokens writes 200 with a token pair; for a cookie session the refresh token goes in
// the cookie and the body's is blank.
func encodeTokens[Resp any](pair func(*Resp) *auth.TokenPair) func(context.Context, http.Header, Resp) (int, any) {
	return func(ctx context.Context, h http.Header, resp Resp) (int, any) {
		if s, ok := sessionFrom(ctx); ok {
			p := pair(&resp)
			h.Add("Set-Cookie", s.refreshCookie(p.RefreshToken, refreshCookieMaxAge))
			p.RefreshToken = ""
		}
		return http.StatusOK, resp
	}
}

// encodeLogout writes 204; for a cookie session it also deletes the cookie.
func encodeLogout(ctx context.Context, h http.Header, _ auth.LogoutResponse) (int, any) {
	if s, ok := sessionFrom(ctx); ok {
		h.Add("Set-Cookie", s.refreshCookie("", -1))
	}
	return http.StatusNoContent, nil
}

// decodeCookieLogin wraps a login decoder: an opted-in request is checked (malformed
// header, cross-site) before its body.
func decodeCookieLogin[Req any](dec func(context.Context, *http.Request) (Req, error)) func(context.Context, *http.Request) (Req, error) {
	return func(ctx context.Context, r *http.Request) (Req, error) {
		if s, ok := sessionFrom(ctx); ok {
			if err := s.check(); err != nil {
				var zero Req
				return zero, err
			}
		}
		return dec(ctx, r)
	}
}

// tokenPair and mfaTokenPair give encodeTokens the pair inside each response type.
func tokenPair(p *auth.TokenPair) *auth.TokenPair   { return p }
func mfaTokenPair(m *auth.MFALogin) *auth.TokenPair { return &m.TokenPair }
