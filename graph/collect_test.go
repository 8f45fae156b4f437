package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/wxlogin/wxlogin/internal/persisted"
)

// TestCollectFieldsMemo: remembering collected fields across requests changes no
// answer. Each document runs eight times (four at once, twice), its variables
// alternating, through a handler whose query cache keeps the memo and through one that
// caches nothing (so that gqlgen collects every time); the answers must be the same
// bytes. The documents cover what
// makes a selection set not plain (directives that depend on variables, fragments,
// inline fragments) next to plain ones, and fields merged from two selections.
func TestCollectFieldsMemo(t *testing.T) {
	o := Options{Introspection: true, PersistedQueries: persisted.Automatic, Manifest: persisted.Builtin()}
	log := slog.New(slog.DiscardHandler)
	memo, cache := newHandler(&Resolver{}, log, o)
	plain := NewHandler(&Resolver{}, log, o)
	plain.SetQueryCache(graphql.NoCache[*ast.QueryDocument]{})

	type document struct {
		query string
		// plainSets is how many of its selection sets only list fields, with no
		// directive: the memo's entries once it has run.
		plainSets int
	}
	for _, d := range []document{
		{`{ __typename }`, 1},
		{`{ __type(name: "User") { name kind fields { name type { kind name ofType { name } } } } }`, 5},
		{`query ($f: Boolean!) { __type(name: "User") { name kind @include(if: $f) description } }`, 1},
		{`query ($f: Boolean!) { a: __type(name: "User") @skip(if: $f) { name } b: __type(name: "Query") { name kind } }`, 2},
		{`query ($f: Boolean!) { __type(name: "User") { fields { name } fields @include(if: $f) { description } } }`, 3},
		{`{ __type(name: "User") { ...T name } } fragment T on __Type { kind name }`, 1},
		{`{ __type(name: "User") { ... on __Type { name } kind } }`, 1},
		{`{ __type(name: "User") { name } __type(name: "User") { kind } }`, 2},
		{`{ t: __type(name: "User") { name } t: __type(name: "User") { name kind } }`, 2},
	} {
		// Four requests at once, the first a document's memo sees, then four more.
		var wg sync.WaitGroup
		for i, f := range []bool{true, false, true, false, true, false, true, false} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				vars := map[string]any{"f": f}
				got, want := post(t, memo, d.query, vars), post(t, plain, d.query, vars)
				if got != want {
					t.Errorf("run %d of %s with %v:\nmemo:    %s\ngraphql: %s", i+1, d.query, vars, got, want)
				}
			}()
			if i == 3 {
				wg.Wait()
			}
		}
		wg.Wait()
		doc, ok := cache.Get(context.Background(), d.query)
		if !ok {
			t.Fatalf("%s is not in the query cache", d.query)
		}
		m, ok := memos.Load(doc)
		if !ok {
			t.Fatalf("%s has no memo", d.query)
		}
		n := 0
		m.(*fieldsMemo).m.Range(func(_, c any) bool {
			if c.(*collected).sel != nil { // a set not plain is kept without its fields
				n++
			}
			return true
		})
		if n != d.plainSets {
			t.Errorf("%s: %d selection sets remembered, want %d", d.query, n, d.plainSets)
		}
	}
}

func post(t *testing.T, h http.Handler, query string, vars map[string]any) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	r := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusOK || bytes.Contains(w.Body.Bytes(), []byte(`"errors"`)) {
		t.Errorf("%s: status %d: %s", query, w.Code, w.Body)
	}
	return w.Body.String()
}
