package graph

import (
	"context"

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

// depthLimit refuses operations nested deeper than max, or, under __schema and __type,
// deeper than introspection.
type depthLimit struct{ max, introspection int }

var _ graphql.OperationContextMutator = depthLimit{}

func (depthLimit) ExtensionName() string                   { return "DepthLimit" }
func (depthLimit) Validate(graphql.ExecutableSchema) error { return nil }

func (d depthLimit) MutateOperationContext(_ context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	op := opCtx.Doc.Operations.ForName(opCtx.OperationName)
	if op == nil {
		return nil
	}
	if got := depth(op.SelectionSet, map[string]bool{}, false); got > d.max {
		return gqlerror.Errorf("The query is nested %d levels deep, past the limit of %d: ask for less at once.", got, d.max)
	}
	if got := depth(op.SelectionSet, map[string]bool{}, true); got > d.introspection {
		return gqlerror.Errorf("The query is nested %d levels deep with introspection, past the limit of %d: ask for fewer levels of ofType.", got, d.introspection)
	}
	return nil
}

// depth is how many levels of fields a selection set reaches; fragments add none. With
// pastIntrospection false, a __schema or __type field counts as one level whatever it
// holds.
func depth(set ast.SelectionSet, visiting map[string]bool, pastIntrospection bool) int {
	deepest := 0
	for _, sel := range set {
		d := 0
		switch s := sel.(type) {
		case *ast.Field:
			d = 1
			if pastIntrospection || (s.Name != "__schema" && s.Name != "__type") {
				d += depth(s.SelectionSet, visiting, pastIntrospection)
			}
		case *ast.InlineFragment:
			d = depth(s.SelectionSet, visiting, pastIntrospection)
		case *ast.FragmentSpread:
			if s.Definition != nil && !visiting[s.Name] {
				visiting[s.Name] = true
				d = depth(s.Definition.SelectionSet, visiting, pastIntrospection)
				delete(visiting, s.Name)
			}
		}
		deepest = max(deepest, d)
	}
	return deepest
}
