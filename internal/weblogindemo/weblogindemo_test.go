package weblogindemo_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/wxlogin/wxlogin/internal/weblogindemo"
)

// The page, its script and stylesheet are served with a policy that forbids inline
// script and other hosts, and nothing else is served. TestWebLoginInBrowser (at the
// repository's root) uses the page.
func TestHandler(t *testing.T) {
	srv := httptest.NewServer(weblogindemo.Handler())
	defer srv.Close()
	get := func(path string) (*http.Response, string) {
		t.Helper()
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}

	res, page := get("/weblogin/") // redirected to /weblogin
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /weblogin: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	policy := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self';", "connect-src 'self';", "img-src 'self' data:;"} {
		if !strings.Contains(policy, want) {
			t.Errorf("the policy %q lacks %q", policy, want)
		}
	}
	if strings.Contains(page, "<script>") || strings.Contains(page, " style=") || strings.Contains(page, "http") {
		t.Error("the page has an inline script or style, or names a host")
	}

	refs := regexp.MustCompile(`(?:src|href)="(/[^"]*)"`).FindAllStringSubmatch(page, -1)
	if len(refs) != 2 {
		t.Fatalf("the page refers to %d files, want its script and stylesheet: %q", len(refs), refs)
	}
	for _, ref := range refs {
		if res, _ := get(ref[1]); res.StatusCode != 200 || res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: %d", ref[1], res.StatusCode)
		}
	}
	for _, path := range []string{"/weblogin/page.html", "/weblogin/weblogindemo.go", "/other"} {
		if res, _ := get(path); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, res.StatusCode)
		}
	}
}
