package graph

import (
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

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
		q, err := parser.ParseQuery(&ast.Source{Input: doc})
		if err != nil {
			t.Fatal(err)
		}
		// Resolve spreads as the validator would, for the fragment case.
		for _, op := range q.Operations {
			for _, sel := range op.SelectionSet {
				if s, ok := sel.(*ast.FragmentSpread); ok {
					s.Definition = q.Fragments.ForName(s.Name)
				}
			}
			for i, past := range []bool{false, true} {
				if got := depth(op.SelectionSet, map[string]bool{}, past); got != want[i] {
					t.Errorf("depth(%.40s, introspection %v) = %d, want %d", doc, past, got, want[i])
				}
			}
		}
	}
}
