package graph

import (
	"context"
	"strconv"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// Limits on what one document may ask, so that no request costs more than its share.
const (
	// parserTokenLimit stops a huge document before it is parsed into memory.
	parserTokenLimit = 5000
	// maxDepth bounds nesting. Today's schema is shallow (login { user { id } } is 3);
	// the limit guards whatever recursive type comes later.
	maxDepth = 12
	// maxIntrospectionDepth bounds introspection, whose type references nest by design:
	// GraphiQL's schema query is 15 levels deep, graphql-js's about as deep.
	maxIntrospectionDepth = 24
)

// shapeLimit refuses operations that ask for too many fields or nest too deep once
// their fragments are expanded. It runs before gqlgen's complexity count, which expands
// every spread anew: a 1 KB document whose fragments each spread the next twice asks
// for 2^n fields, and would keep that count busy for days. Here each fragment is
// measured once.
type shapeLimit struct{ fields, depth, introspectionDepth int }

var _ graphql.OperationContextMutator = shapeLimit{}

func (shapeLimit) ExtensionName() string                   { return "ShapeLimit" }
func (shapeLimit) Validate(graphql.ExecutableSchema) error { return nil }

func (l shapeLimit) MutateOperationContext(_ context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	op := opCtx.Doc.Operations.ForName(opCtx.OperationName)
	if op == nil {
		return nil
	}
	s := measure(op.SelectionSet)
	switch {
	case s.fields > l.fields:
		return gqlerror.Errorf("The query asks for %s fields once its fragments are expanded, past the limit of %d: ask for fewer.", count(s.fields), l.fields)
	case s.depth > l.depth:
		return gqlerror.Errorf("The query is nested %d levels deep, past the limit of %d: ask for less at once.", s.depth, l.depth)
	case s.fullDepth > l.introspectionDepth:
		return gqlerror.Errorf("The query is nested %d levels deep with introspection, past the limit of %d: ask for fewer levels of ofType.", s.fullDepth, l.introspectionDepth)
	}
	return nil
}

// shape is what a selection set asks for once its fragments are expanded: how many
// fields, how deep without looking inside __schema and __type (they count as one
// level), and how deep in full.
type shape struct{ fields, depth, fullDepth int }

// manyFields caps the field count, so that a fan-out of fragments cannot overflow it.
const manyFields = 1 << 40

// measure expands a selection set's fragments, measuring each fragment once.
func measure(set ast.SelectionSet) shape {
	m := measurer{memo: map[string]shape{}, visiting: map[string]bool{}}
	return m.set(set)
}

type measurer struct {
	memo     map[string]shape
	visiting map[string]bool // validation refuses fragment cycles; this guards anyway
}

func (m *measurer) set(set ast.SelectionSet) shape {
	var out shape
	for _, sel := range set {
		var s shape
		switch x := sel.(type) {
		case *ast.Field:
			inner := m.set(x.SelectionSet)
			s = shape{fields: 1 + inner.fields, depth: 1 + inner.depth, fullDepth: 1 + inner.fullDepth}
			if x.Name == "__schema" || x.Name == "__type" {
				s.depth = 1
			}
		case *ast.InlineFragment:
			s = m.set(x.SelectionSet)
		case *ast.FragmentSpread:
			s = m.fragment(x)
		}
		out.fields = min(out.fields+s.fields, manyFields)
		out.depth = max(out.depth, s.depth)
		out.fullDepth = max(out.fullDepth, s.fullDepth)
	}
	return out
}

func (m *measurer) fragment(spread *ast.FragmentSpread) shape {
	if s, ok := m.memo[spread.Name]; ok {
		return s
	}
	if spread.Definition == nil || m.visiting[spread.Name] {
		return shape{}
	}
	m.visiting[spread.Name] = true
	s := m.set(spread.Definition.SelectionSet)
	delete(m.visiting, spread.Name)
	m.memo[spread.Name] = s
	return s
}

func count(n int) string {
	if n >= manyFields {
		return "more than a trillion"
	}
	return strconv.Itoa(n)
}
