package openapi

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDocumentIsValidOpenAPI3(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(Document(), &doc); err != nil {
		t.Fatal(err)
	}
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.") {
		t.Fatalf("openapi version %q", v)
	}
	routes, err := Routes()
	if err != nil || len(routes) < 20 {
		t.Fatalf("%d routes, %v", len(routes), err)
	}
	// Every $ref resolves.
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if r, ok := x["$ref"].(string); ok {
				if _, ok := schemas[strings.TrimPrefix(r, "#/components/schemas/")]; !ok {
					t.Fatalf("dangling $ref %s", r)
				}
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(doc)
}

func TestHandlerServesDocumentAndOfflinePage(t *testing.T) {
	h := Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/openapi.json", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("/openapi.json: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api-docs", nil))
	page := rec.Body.String()
	if rec.Code != 200 || !strings.Contains(page, "/openapi.json") {
		t.Fatalf("/api-docs: %d", rec.Code)
	}
	// A strict policy: no 'unsafe-inline'; the page's one script and one style by hash.
	csp := rec.Header().Get("Content-Security-Policy")
	for _, tag := range []string{"script", "style"} {
		blocks := inlineBlocks(page, tag)
		sum := sha256.Sum256([]byte(blocks[0]))
		if len(blocks) != 1 || !strings.Contains(csp, tag+"-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") {
			t.Fatalf("CSP %q does not allow the page's %s by its hash", csp, tag)
		}
	}
	if strings.Contains(csp, "unsafe") || !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("CSP %q is not strict", csp)
	}
	for _, remote := range []string{"http://", "https://", "//cdn", "unpkg", "jsdelivr"} {
		if strings.Contains(page, "src=\""+remote) || strings.Contains(page, "href=\""+remote) {
			t.Fatalf("page loads a remote asset (%s)", remote)
		}
	}
}
