package graph

import (
	"log/slog"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
)

// NewHandler builds the GraphQL HTTP handler: JSON POST for everything, GET for queries
// only, and a coded refusal for anything else.
func NewHandler(r *Resolver, log *slog.Logger) *handler.Server {
	srv := handler.New(NewExecutableSchema(Config{
		Resolvers:  r,
		Directives: DirectiveRoot{Authenticated: authenticated},
	}))
	srv.AddTransport(transport.Options{})
	srv.AddTransport(queryOnlyGET{})
	srv.AddTransport(transport.POST{})
	srv.AddTransport(unsupported{})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	srv.Use(extension.Introspection{})
	srv.Use(extension.FixedComplexityLimit(200))
	srv.SetErrorPresenter(ErrorPresenter(log))
	srv.SetRecoverFunc(Recover(log))
	return srv
}
