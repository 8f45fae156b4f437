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
)

// depthLimit refuses operations nested deeper than max.
type depthLimit struct{ max int }

var _ graphql.OperationContextMutator = depthLimit{}

func (depthLimit) ExtensionName() string                   { return "DepthLimit" }
func (depthLimit) Validate(graphql.ExecutableSchema) error { return nil }

func (d depthLimit) MutateOperationContext(_ context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	op := opCtx.Doc.Operations.ForName(opCtx.OperationName)
	if op == nil {
		return nil
	}
	if got := depth(op.SelectionSet, map[string]bool{}); got > d.max {
		return gqlerror.Errorf("The query is nested %d levels deep, past the limit of %d: ask for less at once.", got, d.max)
	}
	return nil
}

// depth is how many levels of fields a selection set reaches; fragments add none.
func depth(set ast.SelectionSet, visiting map[string]bool) int {
	deepest := 0
	for _, sel := range set {
		d := 0
		switch s := sel.(type) {
		case *ast.Field:
			d = 1 + depth(s.SelectionSet, visiting)
		case *ast.InlineFragment:
			d = depth(s.SelectionSet, visiting)
		case *ast.FragmentSpread:
			if s.Definition != nil && !visiting[s.Name] {
				visiting[s.Name] = true
				d = depth(s.Definition.SelectionSet, visiting)
				delete(visiting, s.Name)
			}
		}
		deepest = max(deepest, d)
	}
	return deepest
}
