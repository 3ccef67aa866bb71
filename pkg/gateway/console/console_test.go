package console

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

// TestAssetList: every embedded file is listed and every listed file is embedded, so
// nothing is served by accident and nothing listed is missing.
func TestAssetList(t *testing.T) {
	listed := map[string]bool{}
	for _, a := range Assets {
		listed[a.File] = true
	}
	err := fs.WalkDir(files, "assets", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name := strings.TrimPrefix(path, "assets/")
		if !listed[name] {
			t.Errorf("%s is embedded but not in Assets", name)
		}
		delete(listed, name)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name := range listed {
		t.Errorf("%s is listed but not embedded", name)
	}
	New(nil) // panics on a listed file that is missing
}

// TestFirstLoadBudget: the sign-in page loads index.html, the stylesheet, the icon and every
// module app.js imports (all of them): together under 150 KB, uncompressed.
func TestFirstLoadBudget(t *testing.T) {
	total := 0
	for path, a := range Assets {
		if path == "/console/" {
			continue
		}
		b, err := files.ReadFile("assets/" + a.File)
		if err != nil {
			t.Fatal(err)
		}
		total += len(b)
	}
	t.Logf("first load: %d bytes", total)
	if total >= 150*1024 {
		t.Errorf("first load is %d bytes, over the 150 KB budget", total)
	}
}

// TestNoMarkupFromStrings: the scripts never parse strings as markup or code (innerHTML,
// outerHTML, insertAdjacentHTML, document.write, eval, new Function, string timers), and
// index.html has no inline script or style: text reaches the page only as text nodes.
func TestNoMarkupFromStrings(t *testing.T) {
	bad := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|setTimeout\(['"]|setInterval\(['"]|\.style\s*=|localStorage`)
	for _, a := range Assets {
		b, _ := files.ReadFile("assets/" + a.File)
		if strings.HasSuffix(a.File, ".js") {
			if m := bad.Find(b); m != nil {
				t.Errorf("%s uses %s", a.File, m)
			}
		}
		if a.File == "index.html" && (regexp.MustCompile(`<script[^>]*>\s*[^<\s]|<style|\son[a-z]+=|javascript:`).Match(b)) {
			t.Errorf("index.html has inline script, style or handlers")
		}
	}
}
