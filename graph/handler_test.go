package graph

import (
	"testing"

	"github.com/99designs/gqlgen/graphql"

	"github.com/wxlogin/wxlogin/internal/persisted"
)

// The generated executor marshals plain struct fields without the field middleware
// (tools/leanfields): an extension that intercepts fields would silently miss them.
func TestNoExtensionInterceptsFields(t *testing.T) {
	o := Options{Introspection: true, PersistedQueries: persisted.Automatic, Manifest: persisted.Builtin()}
	exts := extensions(o, newDocumentCache(1<<20))
	if len(exts) != 4 {
		t.Fatalf("%d extensions, want introspection, persisted queries, the limits and the document cache", len(exts))
	}
	for _, ext := range exts {
		if _, ok := ext.(graphql.FieldInterceptor); ok {
			t.Errorf("%s intercepts fields: the fields tools/leanfields rewrites would bypass it", ext.ExtensionName())
		}
	}
}
