package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// TestStaticFilesStayInPublic: an app's public/ files are served, and
// nothing else: not through a symlink that leads out of public/ (to the
// app's app.json and its keys), not a dot file, not a folder listing.
func TestStaticFilesStayInPublic(t *testing.T) {
	tn := startTestNode(t, map[string]string{"site": `{"api_keys":{"backend":"secret-key"}}`})
	pub := filepath.Join(tn.cfg.AppsDir, "site", "public")
	for name, body := range map[string]string{
		"index.html":          "home",
		"docs/guide.html":     "guide",
		"assets/app.js":       "js",
		".env":                "TOKEN=x",
		".git/config":         "[core]",
		"docs/index.html":     "docs home",
		"assets/img/logo.svg": "<svg/>",
	} {
		p := filepath.Join(pub, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("..", filepath.Join(pub, "shared")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("docs", filepath.Join(pub, "manual")); err != nil { // inside public/: fine
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		req, _ := newGet(tn.srv.URL+path, "site.localhost")
		resp, err := tn.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for path, want := range map[string]string{
		"/":                  "home",
		"/docs/guide.html":   "guide",
		"/docs/":             "docs home",
		"/manual/guide.html": "guide",
	} {
		if code, body := get(path); code != 200 || body != want {
			t.Errorf("GET %s: %d %q, want %q", path, code, body, want)
		}
	}
	for _, path := range []string{"/shared/app.json", "/shared/public/index.html", "/.env", "/.git/config", "/assets/", "/assets/img/"} {
		if code, body := get(path); code != 404 {
			t.Errorf("GET %s: %d %q, want 404", path, code, body)
		}
	}
}

func newGet(url, host string) (*http.Request, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err == nil {
		req.Host = host
	}
	return req, err
}
