package graph

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/wxlogin/wxlogin/internal/persisted"
)

// devOptions are the switches of a dev-mode server.
var devOptions = Options{Introspection: true, Suggestions: true, PersistedQueries: persisted.Automatic, Manifest: persisted.Builtin()}

// send posts a document to a handler and returns the status and the body.
func send(h http.Handler, query string) (int, string) {
	body, _ := json.Marshal(map[string]any{"query": query})
	r := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

// wide is a document of n aliased fields, distinct by seed: each a different text.
func wide(seed, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "query Q%d {", seed)
	for i := range n {
		fmt.Fprintf(&b, " f%d: __typename", i)
	}
	b.WriteString(" }")
	return b.String()
}

// TestDocumentSizeIsTheHeapItTakes: the bytes the cache accounts for its documents are
// the heap they really take once they ran, give or take a little: an
// estimate far below it would let the cache take more memory than its budget says.
func TestDocumentSizeIsTheHeapItTakes(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap")
	}
	graphiql, err := os.ReadFile("testdata/graphiql-introspection.graphql")
	if err != nil {
		t.Fatal(err)
	}
	for name, doc := range map[string]func(i int) string{
		"typename": func(i int) string { return fmt.Sprintf("query Q%d { __typename }", i) },
		"wide":     func(i int) string { return wide(i, 240) },
		"nested": func(i int) string {
			return fmt.Sprintf(`query Q%d { __type(name: "User") { name kind fields { name type { kind name ofType { name } } } } }`, i)
		},
		"fragments": func(i int) string {
			return fmt.Sprintf(`query Q%d { __type(name: "User") { ...T name } } fragment T on __Type { kind name }`, i)
		},
		"strings": func(i int) string {
			return fmt.Sprintf(`query Q%d { __type(name: "User\u00e9%s") { name } }`, i, strings.Repeat("x", 500))
		},
		"comments": func(i int) string {
			return fmt.Sprintf("# a comment\n# another\nquery Q%d {\n  # the field\n  __typename\n}", i)
		},
		"variables": func(i int) string {
			return fmt.Sprintf(`query Q%d($n: String! = "User", $f: Boolean = true) { __type(name: $n) @include(if: $f) { name } }`, i)
		},
		"directives": func(i int) string {
			return fmt.Sprintf(`query Q%d { __typename @skip(if: false) a: __typename @include(if: true) }`, i)
		},
		"graphiql": func(i int) string {
			return strings.Replace(string(graphiql), "query IntrospectionQuery", fmt.Sprintf("query Q%d", i), 1)
		},
	} {
		t.Run(name, func(t *testing.T) {
			srv, docs := newHandler(&Resolver{}, slog.New(slog.DiscardHandler), devOptions)
			docs.budget = 1 << 40 // keeps every document
			const n = 400
			texts := make([]string, n)
			for i := range texts {
				texts[i] = doc(i)
			}
			send(srv, "{ __typename }")
			before := heapAfterGC()
			for _, q := range texts {
				if code, body := send(srv, q); code != http.StatusOK || strings.Contains(body, `"errors"`) {
					t.Fatalf("%s: %d %s", q, code, body)
				}
			}
			after := heapAfterGC()
			used, kept := docs.used()
			if kept != n+1 {
				t.Fatalf("the cache kept %d documents, want %d", kept, n)
			}
			heap := float64(after-before) / n
			estimate := float64(used) / n
			t.Logf("%s: the cache accounts %.0f bytes a document; the heap grew %.0f (%.2f×)", name, estimate, heap, estimate/heap)
			if estimate < 0.85*heap || estimate > 1.6*heap {
				t.Errorf("%s: the cache accounts %.0f bytes a document, the heap grew %.0f: want the estimate within 0.85× to 1.6× of the heap", name, estimate, heap)
			}
			runtime.KeepAlive(texts)
			runtime.KeepAlive(srv)
		})
	}
}

// heapAfterGC is the live heap, in bytes, after a few collections.
func heapAfterGC() uint64 {
	for range 3 {
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestDocumentCacheStaysWithinItsBudget: a flood of distinct valid documents, each near
// the largest the limits take, leaves the cache within its budget and the heap with it.
func TestDocumentCacheStaysWithinItsBudget(t *testing.T) {
	srv, docs := newHandler(&Resolver{}, slog.New(slog.DiscardHandler), devOptions)
	send(srv, "{ __typename }")
	before := heapAfterGC()
	for i := range 3000 {
		if code, body := send(srv, wide(i, 240)); code != http.StatusOK || strings.Contains(body, `"errors"`) {
			t.Fatalf("document %d: %d %s", i, code, body)
		}
		if used, _ := docs.used(); used > documentCacheBytes {
			t.Fatalf("after %d documents the cache accounts %d bytes, past its budget of %d", i+1, used, documentCacheBytes)
		}
	}
	grew := int64(heapAfterGC()) - int64(before)
	used, kept := docs.used()
	t.Logf("3,000 documents of %d bytes: the cache keeps %d, accounting %d bytes; the heap grew %d bytes", len(wide(0, 240)), kept, used, grew)
	if kept == 0 || kept == 3000 {
		t.Errorf("the cache keeps %d of 3,000 documents: want some, within its budget", kept)
	}
	if grew > documentCacheBytes+documentCacheBytes/2 {
		t.Errorf("the heap grew %d bytes, past the cache's budget of %d and half as much again", grew, documentCacheBytes)
	}
	runtime.KeepAlive(srv)
}

// TestDocumentCacheKeepsOnlyWhatRan: a document is kept only once an operation of it
// runs: not one that validates and is then refused by a limit, nor one whose operation
// GET may not run.
func TestDocumentCacheKeepsOnlyWhatRan(t *testing.T) {
	srv, docs := newHandler(&Resolver{}, slog.New(slog.DiscardHandler), devOptions)
	costly := `mutation { a: login(code: "x") { token } b: login(code: "y") { token } }`
	if code, body := send(srv, costly); code != http.StatusOK || !strings.Contains(body, "past the complexity limit") {
		t.Fatalf("two logins: %d %s", code, body)
	}
	get := httptest.NewRequest(http.MethodGet, "/graphql?query="+strings.ReplaceAll("mutation { logout }", " ", "+"), nil)
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, get)
	if w.Code != http.StatusOK && w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("a mutation by GET: %d %s", w.Code, w.Body)
	}
	if _, n := docs.used(); n != 0 {
		t.Errorf("the cache keeps %d documents after a refused one and a mutation by GET, want none", n)
	}
	send(srv, "{ __typename }")
	if !docs.has("{ __typename }") {
		t.Error("a document that ran is not kept")
	}
}

// TestDocumentCacheEvictsTheLeastRecent: past its budget the cache drops the document
// used longest ago; a second parse of a kept text does not replace the first, and a
// document too large for the budget is not kept at all.
func TestDocumentCacheEvictsTheLeastRecent(t *testing.T) {
	parse := func(q string) *ast.QueryDocument {
		doc, err := parser.ParseQuery(&ast.Source{Input: q})
		if err != nil {
			t.Fatal(err)
		}
		return doc
	}
	a, b, again := parse("{ a }"), parse("{ b }"), parse("{ a }")
	size := documentSize("{ a }", a)
	c := newDocumentCache(8*size + size/2) // room for eight

	c.keep("{ a }", a)
	c.keep("{ b }", b)
	c.keep("{ a }", again) // two requests parsed it at once: the first stays
	if got, _ := c.Get(t.Context(), "{ a }"); got != a {
		t.Error("a second parse of a cached query replaced the first")
	}
	for _, q := range []string{"{ c }", "{ d }", "{ e }", "{ f }", "{ g }", "{ h }", "{ i }"} {
		c.keep(q, parse(q)) // the last evicts { b }, the least recently used
	}
	if c.has("{ b }") {
		t.Error("the least recently used document is still there")
	}
	if !c.has("{ a }") || !c.has("{ i }") {
		t.Error("a recently used document was evicted")
	}
	if used, n := c.used(); used > 8*size+size/2 || n != 8 {
		t.Errorf("the cache accounts %d bytes for %d documents, want 8 within %d", used, n, 8*size+size/2)
	}
	long := "{ " + strings.Repeat("a ", size) + "}"
	c.keep(long, parse(long))
	if c.has(long) || !c.has("{ a }") {
		t.Error("a document of more than an eighth of the budget was kept")
	}
}
