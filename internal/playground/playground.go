// Package playground serves GraphiQL from the binary: the page at / and its assets under
// /playground/, so that the playground works offline and loads nothing from another
// host. The assets are built from web/ by `make playground` and committed in dist/.
package playground

import (
	"crypto/rand"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// AssetPrefix is where the page's scripts, styles and fonts are served.
const AssetPrefix = "/playground/"

//go:embed dist
var dist embed.FS

// csp allows the page nothing but its own files and its own endpoint: no inline script,
// no data: URLs, no other host. The one exception is a <style> element carrying the
// response's nonce: GraphiQL's dialogs add one while open (to lock the page's scroll).
func csp(nonce string) string {
	return "default-src 'none'; script-src 'self'; style-src 'self' 'nonce-" + nonce + "'; font-src 'self'; " +
		"img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

// contentTypes are the kinds of file the build writes; anything else in dist is not served.
var contentTypes = map[string]string{
	".js":    "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".woff2": "font/woff2",
	".woff":  "font/woff",
	".png":   "image/png",
	".svg":   "image/svg+xml",
}

// The opening documents. GraphiQL shows them until the person edits the editors (it
// keeps their edits in the browser's storage).
const (
	devQuery = `# wxlogin playground, dev mode: logins go to a
# built-in fake WeChat. Any code dev-<name> logs in as
# the dev user <name>, every time.
#
# 1. Run this mutation: the ▶ button or Ctrl-Enter.
# 2. Copy the token from the result into the Headers
#    editor below, in place of <token from login>.
# 3. Replace this document with
#      { me { id openid } }
#    and run it: me answers for the token's user.

mutation {
  login(code: "dev-alice") {
    token
    expiresAt
    isNewUser
    user { id openid }
  }
}
`
	devHeaders = `{
  "Authorization": "Bearer <token from login>"
}
`
	neutralQuery = `# wxlogin's GraphQL API. Log in with a code from
# wx.login:
#
#   mutation {
#     login(code: "…") { token user { id openid } }
#   }
#
# then put the token in the Headers editor below,
#   { "Authorization": "Bearer <token>" }
# for the fields that need a session, such as me.

{
  me { id openid }
}
`
)

var page = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wxlogin playground</title>
<link rel="icon" href="{{.Icon}}">
<link rel="stylesheet" href="{{.CSS}}">
<script defer src="{{.JS}}"></script>
</head>
<body>
<div id="graphiql" data-endpoint="{{.Endpoint}}" data-default-query="{{.Query}}" data-default-headers="{{.Headers}}" data-editor-tools="{{.EditorTools}}" data-style-nonce="{{.Nonce}}"></div>
</body>
</html>
`))

// Options configure the page.
type Options struct {
	// Endpoint is the GraphQL endpoint the page sends its requests to, such as "/graphql".
	Endpoint string
	// DevMode opens the page with a ready login mutation for a dev code and an
	// Authorization header to fill in; otherwise it opens with a neutral document.
	DevMode bool
}

// Handler serves the page at / and the assets under AssetPrefix; mount it on both. It
// panics when the embedded build lacks its script, stylesheet or icon, which
// `make playground` always writes.
func Handler(o Options) http.Handler {
	type pageData struct{ JS, CSS, Icon, Endpoint, Query, Headers, EditorTools, Nonce string }
	base := pageData{
		JS: built("playground", "js"), CSS: built("playground", "css"), Icon: built("favicon", "svg"),
		Endpoint: o.Endpoint, Query: neutralQuery,
	}
	if o.DevMode {
		base.Query, base.Headers, base.EditorTools = devQuery, devHeaders, "headers"
	}
	assets := http.StripPrefix(AssetPrefix, http.HandlerFunc(serveAsset))

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, AssetPrefix) {
			assets.ServeHTTP(w, r)
			return
		}
		data := base
		data.Nonce = rand.Text()
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", csp(data.Nonce))
		h.Set("Cache-Control", "no-store") // a fresh nonce each time; it also names the current assets
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		page.Execute(w, data)
	})
}

// serveAsset serves one built file. Every name carries a hash of its content, so a
// browser may keep it for good: a new build has new names.
func serveAsset(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Path
	ctype, known := contentTypes[path.Ext(name)]
	if !known || strings.Contains(name, "/") {
		http.NotFound(w, r)
		return
	}
	b, err := fs.ReadFile(dist, "dist/"+name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("X-Content-Type-Options", "nosniff")
	w.Write(b)
}

// built is the path the built file <name>-<hash>.<ext> is served at.
func built(name, ext string) string {
	names, _ := fs.Glob(dist, "dist/"+name+"-*."+ext)
	if len(names) != 1 {
		panic(fmt.Sprintf("playground: want one %s-*.%s in dist, found %d: run make playground", name, ext, len(names)))
	}
	return AssetPrefix + path.Base(names[0])
}
