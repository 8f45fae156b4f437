package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/wxlogin/wxlogin/internal/auth"
)

// authenticated implements @authenticated: the field runs only with a valid session.
// A mutation reads it afresh, so that it changes the session and user as they are now;
// a query may be answered from the instance's few-second cache.
func authenticated(ctx context.Context, _ any, next graphql.Resolver) (any, error) {
	if op := graphql.GetOperationContext(ctx); op != nil && op.Operation != nil && op.Operation.Operation == ast.Mutation {
		auth.ReadFresh(ctx)
	}
	if _, err := auth.CurrentFrom(ctx); err != nil {
		return nil, err
	}
	return next(ctx)
}
