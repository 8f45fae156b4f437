package graph

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

// parsed parses a document as the limits see it: not yet validated.
func parsed(t *testing.T, doc string) *ast.QueryDocument {
	t.Helper()
	q, err := parser.ParseQuery(&ast.Source{Input: doc})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestDepth(t *testing.T) {
	ofTypes := "{ __schema { types { fields { type " + strings.Repeat("{ ofType ", 10) + "{ name }" + strings.Repeat(" }", 10) + " } } } }"
	for doc, want := range map[string][2]int{ // without, with introspection counted
		`{ me { id } }`: {2, 2},
		`mutation { login(code: "x") { user { id } } }`:                                 {3, 3},
		`{ ...F } fragment F on Query { me { ... on User { id } } }`:                    {2, 2},
		`{ a { b { c { d { e { f { g { h { i { j { k { l { m } } } } } } } } } } } } }`: {13, 13},
		ofTypes: {1, 15},
		`{ me { id } __type(name: "User") { fields { type { name } } } }`: {2, 4},
	} {
		if s := measureDocument(parsed(t, doc)); s.depth != want[0] || s.fullDepth != want[1] {
			t.Errorf("measureDocument(%.40s) depths = %d, %d; want %d, %d", doc, s.depth, s.fullDepth, want[0], want[1])
		}
	}
}

// TestShape: what the limits count, before validation, on documents as clients write
// them and as attackers do.
func TestShape(t *testing.T) {
	for _, c := range []struct {
		doc                             string
		fields, spreads, mutationFields int
		introspects                     bool
	}{
		{`{ me { id } }`, 2, 0, 0, false},
		{`{ a: me { id } b: me { id } }`, 4, 0, 0, false},
		{`{ ...F ...F } fragment F on Query { me { id } }`, 4, 2, 0, false},
		{`{ ...F } fragment F on Query { ...G } fragment G on Query { __typename }`, 1, 2, 0, false},
		// A fragment no operation spreads is walked by validation all the same.
		{`{ __typename } fragment F on Query { a: __typename b: __typename }`, 3, 0, 0, false},
		// So is a second fragment of a name (validation refuses it, after walking it).
		{`{ ...F } fragment F on Query { __typename } fragment F on Query { a: __typename b: __typename }`, 3, 1, 0, false},
		// Every operation of a document is validated.
		{`query A { __typename } query B { a: __typename b: __typename }`, 3, 0, 0, false},
		{`mutation { logout a: logout ...M ... on Mutation { b: logout } } fragment M on Mutation { c: logout d: logout }`, 5, 1, 5, false},
		{`mutation A { logout } mutation B { a: logout b: logout }`, 3, 0, 2, false},
		// A cycle, which validation refuses, is counted once round.
		{`{ ...F } fragment F on Query { __typename ...G } fragment G on Query { ...F }`, 1, 3, 0, false},
		{`mutation { ...M } fragment M on Mutation { logout ...M }`, 1, 2, 1, false},
		{`{ __schema { types { name } } }`, 3, 0, 0, true},
		{`{ ...F } fragment F on Query { __type(name: "User") { name } }`, 2, 1, 0, true},
		{`{ __typename }`, 1, 0, 0, false},
	} {
		s := measureDocument(parsed(t, c.doc))
		if s.fields != c.fields || s.spreads != c.spreads || s.mutationFields != c.mutationFields || s.introspects != c.introspects {
			t.Errorf("%s: %d fields, %d spreads, %d mutation fields, introspection %v; want %d, %d, %d, %v",
				c.doc, s.fields, s.spreads, s.mutationFields, s.introspects, c.fields, c.spreads, c.mutationFields, c.introspects)
		}
	}
}

func TestFragmentFanOutIsCountedOnce(t *testing.T) {
	// Each fragment spreads the next twice: 2^40 fields from a 1 KB document.
	var doc strings.Builder
	doc.WriteString("mutation Q { ...F0 }\n")
	for i := range 40 {
		fmt.Fprintf(&doc, "fragment F%d on Mutation { ...F%d ...F%d }\n", i, i+1, i+1)
	}
	doc.WriteString("fragment F40 on Mutation { logout }\n")
	s := measureDocument(parsed(t, doc.String()))
	if s.fields != manyFields || s.spreads != manyFields || s.mutationFields != manyFields || s.depth != 1 {
		t.Errorf("measureDocument = %+v, want the counts capped at %d and depth 1", s, manyFields)
	}
}

// TestClientDocumentsPassTheLimits: every document the SDK sends, and the schema query
// GraphiQL sends on opening (the playground's), fit within every limit, with room.
func TestClientDocumentsPassTheLimits(t *testing.T) {
	l := newDocumentLimits(newDocumentCache(1<<20), complexityLimit, true)
	paths, _ := filepath.Glob("../clients/documents/*.graphql")
	paths = append(paths, "testdata/graphiql-introspection.graphql")
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		s := measureDocument(parsed(t, string(b)))
		if err := l.check(s); err != nil {
			t.Errorf("%s: %v", path, err)
		}
		t.Logf("%s: %d fields, %d spreads, depth %d (%d with introspection), %d mutation fields", filepath.Base(path), s.fields, s.spreads, s.depth, s.fullDepth, s.mutationFields)
	}
}
