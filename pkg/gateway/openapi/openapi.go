// Package openapi embeds the OpenAPI 3 document of the gateway's public API and a page that
// renders it with no network access (no CDN: the page and its script are embedded too).
package openapi

import (
	"embed"
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
	mux.HandleFunc("GET /api-docs", func(w http.ResponseWriter, _ *http.Request) {
		page, _ := files.ReadFile("docs.html")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'")
		_, _ = w.Write(page)
	})
	return mux
}
