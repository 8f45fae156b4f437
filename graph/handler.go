package graph

import (
	"log/slog"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
)

// Query complexity: every field costs 1 by default.
const (
	complexityLimit = 1000
	weChatCallCost  = 600
)

// Options are the switches for exploring the API: on in dev mode, off outside it.
type Options struct {
	Introspection bool
	Suggestions   bool // "Did you mean …" in validation errors
}

// NewHandler builds the GraphQL HTTP handler: JSON POST for everything, GET for queries
// only, and a coded refusal for anything else.
func NewHandler(r *Resolver, log *slog.Logger, o Options) *handler.Server {
	cfg := Config{
		Resolvers:  r,
		Directives: DirectiveRoot{Authenticated: authenticated},
	}
	// A field that calls WeChat costs most of the budget, so that one request carries
	// at most one, however it is aliased.
	cfg.Complexity.Mutation.Login = func(childComplexity int, _ string, _ *string) int {
		return weChatCallCost + childComplexity
	}
	cfg.Complexity.Mutation.BindPhoneNumber = func(childComplexity int, _ string) int {
		return weChatCallCost + childComplexity
	}
	cfg.Complexity.Query.DecryptOpenData = func(childComplexity int, _, _ string, _, _ *string) int {
		return weChatCallCost + childComplexity // may ask WeChat about the session key
	}
	srv := handler.New(NewExecutableSchema(cfg))
	srv.AddTransport(transport.Options{})
	srv.AddTransport(queryOnlyGET{})
	srv.AddTransport(transport.POST{})
	srv.AddTransport(unsupported{})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	if o.Introspection {
		srv.Use(extension.Introspection{})
	}
	srv.SetDisableSuggestion(!o.Suggestions)
	srv.Use(extension.FixedComplexityLimit(complexityLimit))
	srv.Use(depthLimit{max: maxDepth})
	srv.SetParserTokenLimit(parserTokenLimit)
	srv.SetErrorPresenter(ErrorPresenter(log))
	srv.SetRecoverFunc(Recover(log))
	return srv
}
