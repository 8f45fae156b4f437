package playground_test

import (
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/wxlogin/wxlogin/internal/playground"
)

// get asks the handler, mounted as internal/server mounts it, for path.
func get(t *testing.T, h http.Handler, path string) (*http.Response, string) {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", h)
	mux.Handle("GET "+playground.AssetPrefix, h)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	resp := rec.Result()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

var (
	attrs = regexp.MustCompile(`(?:src|href)="([^"]*)"`)
	urls  = regexp.MustCompile(`url\(([^)]*)\)`)
	nonce = regexp.MustCompile(`'nonce-([A-Za-z0-9+/=]+)'`)
)

// dataOf is the value of the page's data-<name> attribute.
func dataOf(page, name string) string {
	m := regexp.MustCompile(`data-` + name + `="([^"]*)"`).FindStringSubmatch(page)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

func TestPageLoadsOnlyItsOwnFiles(t *testing.T) {
	h := playground.Handler(playground.Options{Endpoint: "/graphql", DevMode: true})
	resp, page := get(t, h, "/")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET / = %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if got := dataOf(page, "endpoint"); got != "/graphql" {
		t.Errorf("endpoint = %q, want /graphql", got)
	}

	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self';", "connect-src 'self';", "font-src 'self';", "img-src 'self';"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	for _, never := range []string{"unsafe-inline", "unsafe-eval", "http:", "https:", "data:", "*"} {
		if strings.Contains(csp, never) {
			t.Errorf("Content-Security-Policy %q allows %q", csp, never)
		}
	}
	// The style nonce is the response's own: in the header, in the page, new each time.
	m := nonce.FindStringSubmatch(csp)
	if m == nil || dataOf(page, "style-nonce") != m[1] {
		t.Errorf("style nonce: header %q, page %q", csp, dataOf(page, "style-nonce"))
	}
	if again, _ := get(t, h, "/"); again.Header.Get("Content-Security-Policy") == csp {
		t.Error("two responses share a nonce")
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("page Cache-Control = %q, want no-store", cc)
	}

	// Every file the page names, and every file its stylesheet names, is served from
	// here, with its type and a long cache life (its name changes with its content).
	want := map[string]string{".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".woff2": "font/woff2", ".woff": "font/woff", ".png": "image/png"}
	var assets []string
	for _, m := range attrs.FindAllStringSubmatch(page, -1) {
		assets = append(assets, m[1])
	}
	if len(assets) != 3 {
		t.Errorf("the page names %v, want a script, a stylesheet and an icon", assets)
	}
	for i := 0; i < len(assets); i++ {
		path := assets[i]
		if !strings.HasPrefix(path, playground.AssetPrefix) {
			t.Errorf("the page loads %q, not one of its own files", path)
			continue
		}
		resp, body := get(t, h, path)
		ext := path[strings.LastIndex(path, "."):]
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), want[ext]) || want[ext] == "" {
			t.Errorf("GET %s = %d %q", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
			t.Errorf("GET %s: Cache-Control %q", path, cc)
		}
		if ext == ".css" {
			if strings.Contains(body, "@import") {
				t.Errorf("%s imports another stylesheet", path)
			}
			for _, m := range urls.FindAllStringSubmatch(body, -1) {
				ref := strings.Trim(m[1], `"'`)
				if strings.Contains(ref, ":") || strings.Contains(ref, "/") {
					t.Errorf("%s loads %q, not a file beside it", path, ref)
					continue
				}
				assets = append(assets, playground.AssetPrefix+ref)
			}
		}
	}
	if len(assets) < 10 {
		t.Errorf("found %d assets; the stylesheet's fonts are missing", len(assets))
	}
}

func TestOpeningDocument(t *testing.T) {
	_, dev := get(t, playground.Handler(playground.Options{Endpoint: "/graphql", DevMode: true}), "/")
	if q := dataOf(dev, "default-query"); !strings.Contains(q, `login(code: "dev-alice")`) || !strings.Contains(q, "me { id openid }") {
		t.Errorf("dev mode opens with %q, want a dev-alice login and how to run me", q)
	}
	if hdr := dataOf(dev, "default-headers"); !strings.Contains(hdr, `"Authorization": "Bearer <token from login>"`) {
		t.Errorf("dev mode headers = %q, want an Authorization template", hdr)
	}
	if dataOf(dev, "editor-tools") != "headers" {
		t.Error("dev mode does not open the headers editor")
	}

	_, prod := get(t, playground.Handler(playground.Options{Endpoint: "/graphql"}), "/")
	if q := dataOf(prod, "default-query"); strings.Contains(q, "dev-") || !strings.Contains(q, "Authorization") {
		t.Errorf("outside dev mode the page opens with %q, want a neutral document", q)
	}
	if hdr := dataOf(prod, "default-headers"); hdr != "" {
		t.Errorf("outside dev mode headers = %q, want none", hdr)
	}
}

func TestUnknownAssets(t *testing.T) {
	h := playground.Handler(playground.Options{Endpoint: "/graphql"})
	for _, path := range []string{"/playground/", "/playground/nope.js", "/playground/playground.go", "/playground/dist/x.css"} {
		if resp, _ := get(t, h, path); resp.StatusCode != 404 {
			t.Errorf("GET %s = %d, want 404", path, resp.StatusCode)
		}
	}
}
