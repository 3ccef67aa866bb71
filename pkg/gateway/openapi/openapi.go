// Package openapi embeds the OpenAPI 3 document of the gateway's public API and a page that
// renders it with no network access (no CDN: the page and its script are embedded too).
package openapi

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
)

//go:embed openapi.json docs.html
var files embed.FS

// Document returns the OpenAPI document as stored.
func Document() []byte {
	b, err := files.ReadFile("openapi.json")
	if err != nil {
		panic(err) // embedded at build time
	}
	return b
}

// Route is one documented operation: an HTTP method and a path template.
type Route struct{ Method, Path string }

// Routes lists every operation the document describes, sorted; tests compare it with the
// routes the gateway really serves.
func Routes() ([]Route, error) {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(Document(), &doc); err != nil {
		return nil, err
	}
	var out []Route
	for p, ops := range doc.Paths {
		for m := range ops {
			out = append(out, Route{Method: strings.ToUpper(m), Path: p})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Method < out[j].Method
	})
	return out, nil
}

// Handler serves GET /openapi.json and GET /api-docs.
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(Document())
	})
	page, _ := files.ReadFile("docs.html")
	csp := DocsPolicy(page)
	mux.HandleFunc("GET /api-docs", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", csp)
		_, _ = w.Write(page)
	})
	return mux
}

// DocsPolicy is the page's Content-Security-Policy: nothing is allowed but the page's own
// inline script and style, each by its SHA-256 (no 'unsafe-inline'), and fetching the
// document from this origin; the page cannot be framed, post forms or change its base.
func DocsPolicy(page []byte) string {
	hashes := func(tag string) string {
		var out []string
		for _, block := range inlineBlocks(string(page), tag) {
			sum := sha256.Sum256([]byte(block))
			out = append(out, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
		}
		if len(out) == 0 {
			return "'none'"
		}
		return strings.Join(out, " ")
	}
	return "default-src 'none'; script-src " + hashes("script") + "; style-src " + hashes("style") +
		"; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

// inlineBlocks returns the contents of every <tag>…</tag> of page (tags without attributes).
func inlineBlocks(page, tag string) []string {
	var out []string
	open, end := "<"+tag+">", "</"+tag+">"
	for {
		i := strings.Index(page, open)
		if i < 0 {
			return out
		}
		page = page[i+len(open):]
		j := strings.Index(page, end)
		if j < 0 {
			return out
		}
		out = append(out, page[:j])
		page = page[j+len(end):]
	}
}
