package openapi

import (
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
	for _, remote := range []string{"http://", "https://", "//cdn", "unpkg", "jsdelivr"} {
		if strings.Contains(page, "src=\""+remote) || strings.Contains(page, "href=\""+remote) {
			t.Fatalf("page loads a remote asset (%s)", remote)
		}
	}
}
