package gateway

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
)

// CORS configures cross-origin access to the gateway. It is off by default (no
// AllowedOrigins): browsers then allow only same-origin calls.
type CORS struct {
	// AllowedOrigins are the origins allowed ("https://app.example.org"), or "*" for any,
	// which AllowCredentials forbids.
	AllowedOrigins []string
	// AllowCredentials lets browsers send cookies and Authorization on cross-origin calls.
	AllowCredentials bool
	// MaxAge is how long a browser may keep a preflight answer (seconds; 0 = 600).
	MaxAge int
}

func (c CORS) validate() error {
	for _, o := range c.AllowedOrigins {
		if o == "*" && c.AllowCredentials {
			return errors.New("gateway: CORS origin * is not allowed with credentials")
		}
	}
	return nil
}

// origin returns the value of Access-Control-Allow-Origin for a request's Origin, or "".
func (c CORS) origin(o string) string {
	for _, a := range c.AllowedOrigins {
		if a == "*" {
			return "*"
		}
		if o != "" && strings.EqualFold(a, o) {
			return o
		}
	}
	return ""
}

// wrap answers preflights and marks allowed cross-origin responses.
func (c CORS) wrap(next http.Handler) http.Handler {
	if len(c.AllowedOrigins) == 0 {
		return next
	}
	maxAge := c.MaxAge
	if maxAge <= 0 {
		maxAge = 600
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		allowed := c.origin(origin)
		if origin != "" {
			w.Header().Add("Vary", "Origin")
		}
		if allowed != "" {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", allowed)
			if c.AllowCredentials {
				h.Set("Access-Control-Allow-Credentials", "true")
			}
			h.Set("Access-Control-Expose-Headers", "Location, Link, ETag, X-Request-ID, X-Total-Count, X-Total-Count-Estimated, Retry-After, X-Possible-Duplicates")
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match, Idempotency-Key, X-Confirm-Not-Duplicate, Prefer, X-Request-ID")
				h.Set("Access-Control-Max-Age", strconv.Itoa(maxAge))
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
