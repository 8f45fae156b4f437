package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"

	"github.com/wxlogin/wxlogin/internal/auth"
)

// authenticated implements @authenticated: the field runs only with a valid session.
func authenticated(ctx context.Context, _ any, next graphql.Resolver) (any, error) {
	if _, err := auth.CurrentFrom(ctx); err != nil {
		return nil, err
	}
	return next(ctx)
}
