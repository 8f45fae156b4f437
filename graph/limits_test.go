package graph

import (
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

func TestDepth(t *testing.T) {
	for doc, want := range map[string]int{
		`{ me { id } }`: 2,
		`mutation { login(code: "x") { user { id } } }`:                                 3,
		`{ ...F } fragment F on Query { me { ... on User { id } } }`:                    2,
		`{ a { b { c { d { e { f { g { h { i { j { k { l { m } } } } } } } } } } } } }`: 13,
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
			if got := depth(op.SelectionSet, map[string]bool{}); got != want {
				t.Errorf("depth(%s) = %d, want %d", strings.Fields(doc)[0], got, want)
			}
		}
	}
}
