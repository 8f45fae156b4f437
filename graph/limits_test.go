package graph

import (
	"fmt"
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
			if s := measure(op.SelectionSet); s.depth != want[0] || s.fullDepth != want[1] {
				t.Errorf("measure(%.40s) depths = %d, %d; want %d, %d", doc, s.depth, s.fullDepth, want[0], want[1])
			}
		}
	}
}

func TestFragmentFanOutIsCountedOnce(t *testing.T) {
	// Each fragment spreads the next twice: 2^40 fields from a 1 KB document.
	var doc strings.Builder
	doc.WriteString("query Q { ...F0 }\n")
	for i := range 40 {
		fmt.Fprintf(&doc, "fragment F%d on Query { ...F%d ...F%d }\n", i, i+1, i+1)
	}
	doc.WriteString("fragment F40 on Query { __typename }\n")
	q, err := parser.ParseQuery(&ast.Source{Input: doc.String()})
	if err != nil {
		t.Fatal(err)
	}
	var link func(ast.SelectionSet)
	link = func(set ast.SelectionSet) {
		for _, sel := range set {
			if s, ok := sel.(*ast.FragmentSpread); ok && s.Definition == nil {
				s.Definition = q.Fragments.ForName(s.Name)
				link(s.Definition.SelectionSet)
			}
		}
	}
	link(q.Operations[0].SelectionSet)
	if s := measure(q.Operations[0].SelectionSet); s.fields != manyFields || s.depth != 1 {
		t.Errorf("measure = %+v, want the field count capped at %d and depth 1", s, manyFields)
	}
}
