package graph

import (
	"log/slog"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/ravilushqa/otelgqlgen"
	"github.com/vektah/gqlparser/v2/validator/core"
	"github.com/vektah/gqlparser/v2/validator/rules"

	"github.com/wxlogin/wxlogin/graph/model"
	"github.com/wxlogin/wxlogin/internal/persisted"
	"github.com/wxlogin/wxlogin/internal/tracing"
)

// Query complexity: what each field costs of a request's budget. A field that calls
// WeChat costs most of it, so that a request carries at most one however it is aliased;
// one that writes to the database costs more than one that reads it, and every other
// field 1.
const (
	complexityLimit   = 1000
	weChatCallCost    = 600
	databaseWriteCost = 100
	databaseReadCost  = 50
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

// extensions are the handler's extensions, in order.
func extensions(o Options, docs *documentCache) []graphql.HandlerExtension {
	var exts []graphql.HandlerExtension
	if o.Introspection {
		exts = append(exts, extension.Introspection{})
	}
	return append(exts,
		// It fills in a document sent by hash, and remembers a document sent with its
		// hash once it runs: after every check.
		persisted.New(o.PersistedQueries, o.Manifest, persistedCacheBytes, parserTokenLimit),
		// After it, so that it measures a document sent by hash.
		newDocumentLimits(docs, complexityLimit, o.Introspection),
		// It keeps a document once it runs: after every check.
		docs,
	)
}

// persistedCacheBytes bounds the documents remembered for automatic persisted queries.
const persistedCacheBytes = 8 << 20

// NewHandler builds the GraphQL HTTP handler: GraphQL over HTTP with JSON POST for
// everything and GET for queries only, persisted queries, and the limits.
func NewHandler(r *Resolver, log *slog.Logger, o Options) *handler.Server {
	srv, _ := newHandler(r, log, o)
	return srv
}

// newHandler is NewHandler, with its query cache for tests to look into.
func newHandler(r *Resolver, log *slog.Logger, o Options) (*handler.Server, *documentCache) {
	cfg := Config{
		Resolvers:  r,
		Directives: DirectiveRoot{Authenticated: authenticated},
	}
	// Every field that calls WeChat or reaches the database has a cost; the complexity
	// functions ignore their arguments (documentLimits relies on it).
	weChat := func(childComplexity int) int { return weChatCallCost + childComplexity }
	write := func(childComplexity int) int { return databaseWriteCost + childComplexity }
	read := func(childComplexity int) int { return databaseReadCost + childComplexity }
	cfg.Complexity.Mutation.Login = func(childComplexity int, _ string, _ *string) int { return weChat(childComplexity) }
	cfg.Complexity.Mutation.BindPhoneNumber = func(childComplexity int, _ string) int { return weChat(childComplexity) }
	// decryptOpenData may ask WeChat whether the session key is current.
	cfg.Complexity.Query.DecryptOpenData = func(childComplexity int, _, _ string, _, _ *string) int { return weChat(childComplexity) }
	cfg.Complexity.Mutation.Logout = write
	cfg.Complexity.Mutation.LogoutAll = func(childComplexity int, _ *bool) int { return write(childComplexity) }
	cfg.Complexity.Mutation.RevokeSession = func(childComplexity int, _ string) int { return write(childComplexity) }
	cfg.Complexity.Mutation.UpdateProfile = func(childComplexity int, _ model.UpdateProfileInput) int { return write(childComplexity) }
	cfg.Complexity.Query.Me = read // the session's lookup
	cfg.Complexity.Query.Sessions = read
	cfg.Complexity.Query.MyData = read
	cfg.Complexity.Mutation.DeleteAccount = write
	// A web login's code comes from WeChat; its steps write, and its status may (the
	// session is made when the browser takes it).
	cfg.Complexity.Mutation.StartWebLogin = weChat
	cfg.Complexity.Mutation.ScanWebLogin = func(childComplexity int, _ string) int { return write(childComplexity) }
	cfg.Complexity.Mutation.ConfirmWebLogin = func(childComplexity int, _ string) int { return write(childComplexity) }
	cfg.Complexity.Mutation.CancelWebLogin = func(childComplexity int, _ string) int { return write(childComplexity) }
	cfg.Complexity.Query.WebLogin = func(childComplexity int, _, _ string) int { return write(childComplexity) }
	cfg.Complexity.Subscription.WebLogin = func(childComplexity int, _, _ string) int { return write(childComplexity) }
	if o.PersistedQueries == "" {
		o.PersistedQueries = persisted.Automatic
	}
	if o.Manifest == nil {
		o.Manifest = persisted.Builtin()
	}
	docs := newDocumentCache(documentCacheBytes)
	srv := handler.New(NewExecutableSchema(cfg))
	// First: it takes only requests that accept text/event-stream; the other takes all.
	srv.AddTransport(sseTransport{transport.SSE{KeepAlivePingInterval: 15 * time.Second}})
	srv.AddTransport(httpTransport{})
	srv.SetQueryCache(docs)
	for _, ext := range extensions(o, docs) {
		srv.Use(ext)
	}
	if tracing.On() {
		// A span per operation and per resolver. The variables are left out here, and
		// the document's text and the resolvers' arguments by the exporter: a login's
		// code may be in any of them.
		srv.Use(otelgqlgen.Middleware(otelgqlgen.WithoutVariables()))
	}
	srv.SetDisableSuggestion(!o.Suggestions)
	srv.SetValidationRulesFn(validationRules(o.Suggestions))
	srv.SetParserTokenLimit(parserTokenLimit)
	srv.SetErrorPresenter(ErrorPresenter(log))
	srv.SetRecoverFunc(Recover(log))
	return srv, docs
}

// validationRules are gqlparser's rules, without the "Did you mean …" hints when
// suggestions are off. gqlgen's SetDisableSuggestion swaps only the rules for fields
// (FieldsOnCorrectType, ScalarLeafs); these are the rest that hint: argument names,
// type names (of fragments and variables), and input fields and enum values.
func validationRules(suggestions bool) func() *rules.Rules {
	return func() *rules.Rules {
		r := rules.NewDefaultRules()
		if !suggestions {
			for _, rule := range []core.Rule{
				rules.KnownArgumentNamesRuleWithoutSuggestions,
				rules.KnownTypeNamesRuleWithoutSuggestions,
				rules.ValuesOfCorrectTypeRuleWithoutSuggestions,
			} {
				r.ReplaceRule(strings.TrimSuffix(rule.Name, "WithoutSuggestions"), rule.RuleFunc)
			}
		}
		return r
	}
}
