// Package weblogindemo serves, in dev mode, a web page that logs in by scanning the
// mini-program's code (GET /weblogin): it starts a web login, shows the code, follows
// it over Server-Sent Events and shows who logged in. Since dev mode has no phone, a
// panel on the page plays the mini-program's confirm page as a dev user, so that the
// whole flow runs on one machine. Everything is embedded; the page loads nothing from
// another host.
package weblogindemo

import (
	"embed"
	"net/http"
)

// Path is where the page is served; its script and stylesheet are under Path + "/".
const Path = "/weblogin"

//go:embed page.html demo.js demo.css
var files embed.FS

// csp allows the page its own script, stylesheet and endpoint, and images from data:
// URLs (startWebLogin gives the code as one): no inline script, no other host.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

var served = map[string]struct{ file, contentType string }{
	Path:               {"page.html", "text/html; charset=utf-8"},
	Path + "/demo.js":  {"demo.js", "text/javascript; charset=utf-8"},
	Path + "/demo.css": {"demo.css", "text/css; charset=utf-8"},
}

// Handler serves the page at Path and its files under Path + "/"; mount it on both.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == Path+"/" {
			http.Redirect(w, r, Path, http.StatusFound)
			return
		}
		f, ok := served[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		b, _ := files.ReadFile(f.file) // embedded: always there
		h := w.Header()
		h.Set("Content-Type", f.contentType)
		h.Set("Content-Security-Policy", csp)
		h.Set("Cache-Control", "no-store") // dev mode: a rebuilt binary's files at once
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		w.Write(b)
	})
}
