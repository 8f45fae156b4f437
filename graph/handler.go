package graph

import (
	"log/slog"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"

	"github.com/wxlogin/wxlogin/internal/persisted"
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
	// PersistedQueries says which documents run; the manifest's documents are known by
	// hash (and in allow-list mode are the only ones that run).
	PersistedQueries persisted.Mode
	Manifest         *persisted.Manifest
}

// extensions are the handler's extensions, in order. None may intercept fields
// (graphql.FieldInterceptor): the generated executor marshals plain struct fields
// without the field middleware (tools/leanfields), so such an extension would not see
// them; a test holds this.
func extensions(o Options) []graphql.HandlerExtension {
	var exts []graphql.HandlerExtension
	if o.Introspection {
		exts = append(exts, extension.Introspection{})
	}
	exts = append(exts,
		newDocumentLimits(complexityLimit),
		// Last, so that it remembers only documents that passed every check before it.
		persisted.New(o.PersistedQueries, o.Manifest, persistedCacheBytes, parserTokenLimit),
	)
	return exts
}

// persistedCacheBytes bounds the documents remembered for automatic persisted queries.
const persistedCacheBytes = 8 << 20

// NewHandler builds the GraphQL HTTP handler: GraphQL over HTTP with JSON POST for
// everything and GET for queries only, persisted queries, and the limits.
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
	if o.PersistedQueries == "" {
		o.PersistedQueries = persisted.Automatic
	}
	if o.Manifest == nil {
		o.Manifest = persisted.Builtin()
	}
	srv := handler.New(NewExecutableSchema(cfg))
	srv.AddTransport(httpTransport{})
	srv.SetQueryCache(newDocumentCache(500))
	for _, ext := range extensions(o) {
		srv.Use(ext)
	}
	srv.SetDisableSuggestion(!o.Suggestions)
	srv.SetParserTokenLimit(parserTokenLimit)
	srv.SetErrorPresenter(ErrorPresenter(log))
	srv.SetRecoverFunc(Recover(log))
	return srv
}
