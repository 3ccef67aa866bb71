// Package console is the staff console (issue 18): a browser application of plain ES modules,
// embedded in the binary and served by the gateway at exactly "/" and "/console/…" from an
// explicit list of assets, as the first client of the same REST API. Every response carries
// a strict Content-Security-Policy (scripts and styles from this origin only: no inline
// script, no eval, no third-party request) and the usual hardening headers.
package console

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"

	"github.com/pms/pms/pkg/platform/errs"
)

//go:embed assets
var files embed.FS

// CSP is the Content-Security-Policy of every console response: everything from this origin,
// nothing inline, no eval, no frames, no plugins; images may be data: URLs (the MFA QR code).
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Assets is the explicit list of what the console serves: URL path → file under assets/ and
// its content type. A file embedded but not listed is never served (and a test fails).
var Assets = map[string]Asset{
	"/":                     {File: "index.html", Type: "text/html; charset=utf-8"},
	"/console/":             {File: "index.html", Type: "text/html; charset=utf-8"},
	"/console/app.css":      {File: "app.css", Type: "text/css; charset=utf-8"},
	"/console/app.js":       {File: "app.js", Type: "text/javascript; charset=utf-8"},
	"/console/api.js":       {File: "api.js", Type: "text/javascript; charset=utf-8"},
	"/console/dom.js":       {File: "dom.js", Type: "text/javascript; charset=utf-8"},
	"/console/signin.js":    {File: "signin.js", Type: "text/javascript; charset=utf-8"},
	"/console/patients.js":  {File: "patients.js", Type: "text/javascript; charset=utf-8"},
	"/console/billing.js":   {File: "billing.js", Type: "text/javascript; charset=utf-8"},
	"/console/dashboard.js": {File: "dashboard.js", Type: "text/javascript; charset=utf-8"},
	"/console/admin.js":     {File: "admin.js", Type: "text/javascript; charset=utf-8"},
	"/console/favicon.svg":  {File: "favicon.svg", Type: "image/svg+xml"},
}

// Asset is one served file.
type Asset struct {
	File, Type string
}

// loaded is an asset read once at start: its bytes and strong ETag.
type loaded struct {
	Asset
	data []byte
	etag string
}

// ErrorEncoder writes an error in the contract's JSON shape (httptransport.EncodeError).
type ErrorEncoder func(context.Context, error, http.ResponseWriter)

// Handler serves the console's assets; every other path under /console is the contract's
// JSON 404, and a method other than GET or HEAD is its 405 with Allow.
type Handler struct {
	assets map[string]loaded
	fail   ErrorEncoder
}

// New reads the listed assets from the embedded files (a listed file that is missing is a
// build mistake and panics at start); fail writes the JSON errors.
func New(fail ErrorEncoder) *Handler {
	h := &Handler{assets: map[string]loaded{}, fail: fail}
	for path, a := range Assets {
		data, err := files.ReadFile("assets/" + a.File)
		if err != nil {
			panic("console: listed asset missing: " + a.File)
		}
		sum := sha256.Sum256(data)
		h.assets[path] = loaded{Asset: a, data: data, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	}
	return h
}

// Serves reports whether path belongs to the console: "/" and everything under "/console".
func Serves(path string) bool {
	return path == "/" || path == "/console" || strings.HasPrefix(path, "/console/")
}

// SecurityHeaders sets the console's hardening headers on h.
func SecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	SecurityHeaders(w.Header())
	a, ok := h.assets[r.URL.Path]
	if !ok {
		h.fail(r.Context(), errs.New(errs.NotFound, "no such resource"), w)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		h.fail(r.Context(), errs.New(errs.MethodNotAllowed, "method not allowed on this resource"), w)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", a.Type)
	hd.Set("Cache-Control", "no-cache")
	hd.Set("ETag", a.etag)
	if match := r.Header.Get("If-None-Match"); match != "" && match == a.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hd.Set("Content-Length", strconv.Itoa(len(a.data)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(a.data)
	}
}
