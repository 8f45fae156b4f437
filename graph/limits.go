package graph

import (
	"context"
	"errors"
	"strconv"

	"github.com/99designs/gqlgen/complexity"
	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
)

// Limits on what one document may ask, so that no request costs more than its share.
const (
	// parserTokenLimit stops a huge document before it is parsed into memory.
	parserTokenLimit = 5000
	// maxFields bounds the fields a document asks for once its fragments are expanded.
	// Validation compares the fields of one name in a selection set pairwise, so the
	// worst document it lets through costs the square of it; GraphiQL's schema query
	// asks for 220.
	maxFields = 250
	// maxSpreads bounds the fragment spreads once expanded: validation walks each
	// fragment where it is defined as well as where it is spread. GraphiQL's schema
	// query has 10.
	maxSpreads = 16
	// maxDepth bounds nesting. Today's schema is shallow (login { user { id } } is 3);
	// the limit guards whatever recursive type comes later.
	maxDepth = 12
	// maxIntrospectionDepth bounds introspection, whose type references nest by design:
	// GraphiQL's schema query is 15 levels deep, graphql-js's about as deep.
	maxIntrospectionDepth = 24
	// maxMutationFields bounds the fields of a mutation, aliases and fragments'
	// included: each runs on its own, one after the other, most in a transaction.
	maxMutationFields = 5
)

// documentLimits refuses documents that ask for too much, in two steps.
//
// Before gqlgen parses and validates a document it has not cached, it parses the
// document itself and measures its shape: fields, fragment spreads and depth once
// fragments are expanded, the fields of each mutation, and introspection while it is
// off. Validation costs the square of a document's fields and a refusal must not, so
// this comes first; a document refused costs its parse. Each fragment is measured once:
// a 1 KB document whose fragments each spread the next twice asks for 2^n fields and
// would keep any count that expands every spread busy for days.
//
// Once the document has validated, it measures the operation's complexity, which
// gqlgen counts from the schema's cost of each field (see NewHandler): only documents
// whose shape passed get that far. An operation without variables costs the same every
// time (every complexity function in NewHandler ignores its arguments, and a literal
// argument is part of the text), so its figure is remembered with the cached document:
// the SDK's `me` would otherwise walk its fields twice on every request.
type documentLimits struct {
	fields, spreads, depth, introspectionDepth, mutationFields, complexity int
	introspection                                                          bool // introspection is on

	docs *documentCache
	es   graphql.ExecutableSchema
}

var _ interface {
	graphql.OperationParameterMutator
	graphql.OperationContextMutator
	graphql.HandlerExtension
} = (*documentLimits)(nil)

func newDocumentLimits(docs *documentCache, budget int, introspection bool) *documentLimits {
	return &documentLimits{
		fields:             maxFields,
		spreads:            maxSpreads,
		depth:              maxDepth,
		introspectionDepth: maxIntrospectionDepth,
		mutationFields:     maxMutationFields,
		complexity:         budget,
		introspection:      introspection,
		docs:               docs,
	}
}

func (*documentLimits) ExtensionName() string { return "DocumentLimits" }

func (l *documentLimits) Validate(es graphql.ExecutableSchema) error {
	l.es = es
	return nil
}

// MutateOperationParameters measures a document the cache does not hold, before gqlgen
// parses and validates it. It runs after the persisted-query extension has filled in a
// document sent by hash.
func (l *documentLimits) MutateOperationParameters(_ context.Context, p *graphql.RawParams) *gqlerror.Error {
	if l.docs.has(p.Query) {
		return nil // it passed when it was kept
	}
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: p.Query}, parserTokenLimit)
	if err != nil {
		var gerr *gqlerror.Error
		if !errors.As(err, &gerr) {
			return gqlerror.Wrap(err)
		}
		errcode.Set(gerr, errcode.ParseFailed) // as gqlgen would say it
		return gerr
	}
	return l.check(measureDocument(doc))
}

// MutateOperationContext refuses an operation that costs more than the budget.
func (l *documentLimits) MutateOperationContext(ctx context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	op := opCtx.Operation
	if op == nil {
		return nil
	}
	remember := len(op.VariableDefinitions) == 0
	if remember {
		if cost, ok := l.docs.cost(opCtx.RawQuery, opCtx.Doc, op.Name); ok {
			return l.checkCost(cost)
		}
	}
	cost := complexity.Calculate(ctx, l.es, op, opCtx.Variables)
	if remember {
		l.docs.rememberCost(opCtx.RawQuery, opCtx.Doc, op.Name, cost)
	}
	return l.checkCost(cost)
}

// check refuses a document whose shape is past a limit.
func (l *documentLimits) check(m documentShape) *gqlerror.Error {
	switch {
	case m.mutationFields > l.mutationFields: // the most telling, for a flood of aliased mutations
		return gqlerror.Errorf("The mutation asks for %s fields, past the limit of %d a request: each runs on its own, so send fewer at once (aliases and fields from fragments count).", count(m.mutationFields), l.mutationFields)
	case m.fields > l.fields:
		return gqlerror.Errorf("The document asks for %s fields once its fragments are expanded, past the limit of %d: ask for fewer.", count(m.fields), l.fields)
	case m.spreads > l.spreads:
		return gqlerror.Errorf("The document spreads fragments %s times once they are expanded, past the limit of %d: spread fewer, or write their fields out.", count(m.spreads), l.spreads)
	case m.depth > l.depth:
		return gqlerror.Errorf("The query is nested %d levels deep, past the limit of %d: ask for less at once.", m.depth, l.depth)
	case m.fullDepth > l.introspectionDepth:
		return gqlerror.Errorf("The query is nested %d levels deep with introspection, past the limit of %d: ask for fewer levels of ofType.", m.fullDepth, l.introspectionDepth)
	case m.introspects && !l.introspection:
		return gqlerror.Errorf("Introspection is off on this server: read the schema from the wxlogin repository (clients/schema), or from a server in dev mode.")
	}
	return nil
}

// checkCost refuses an operation past the complexity budget.
func (l *documentLimits) checkCost(cost int) *gqlerror.Error {
	if cost <= l.complexity {
		return nil
	}
	// gqlgen's own words and code, which limitMessage rewords as for its extension
	err := gqlerror.Errorf("operation has complexity %d, which exceeds the limit of %d", cost, l.complexity)
	errcode.Set(err, "COMPLEXITY_LIMIT_EXCEEDED")
	return err
}

// shape is what a selection set asks for once its fragments are expanded: how many
// fields and fragment spreads, how deep without looking inside __schema and __type
// (they count as one level), how deep in full, and whether it asks for introspection.
type shape struct {
	fields, spreads, depth, fullDepth int
	introspects                       bool
}

// documentShape is the shape of a whole document, as validation walks it: the fields
// and spreads of every operation, and of every fragment no operation spreads; the
// deepest nesting; and the most fields of one mutation.
type documentShape struct {
	shape
	mutationFields int
}

// manyFields caps the counts, so that a fan-out of fragments cannot overflow them.
const manyFields = 1 << 40

// measureDocument measures a parsed document, validated or not: fragments are found by
// name, each measured once.
func measureDocument(doc *ast.QueryDocument) documentShape {
	m := measurer{
		defs: map[string]*ast.FragmentDefinition{}, memo: map[string]shape{}, rootMemo: map[string]int{}, visiting: map[string]bool{},
	}
	for _, f := range doc.Fragments {
		if _, dup := m.defs[f.Name]; !dup { // validation refuses the second
			m.defs[f.Name] = f
		}
	}
	var out documentShape
	for _, op := range doc.Operations {
		s := m.set(op.SelectionSet)
		out.add(s)
		if op.Operation == ast.Mutation {
			out.mutationFields = max(out.mutationFields, m.rootFields(op.SelectionSet))
		}
	}
	for _, f := range doc.Fragments {
		if _, spread := m.memo[f.Name]; !spread || m.defs[f.Name] != f { // a fragment by that name is spread, but not this one
			out.add(m.set(f.SelectionSet))
		}
	}
	return out
}

func (d *documentShape) add(s shape) {
	d.fields = min(d.fields+s.fields, manyFields)
	d.spreads = min(d.spreads+s.spreads, manyFields)
	d.depth = max(d.depth, s.depth)
	d.fullDepth = max(d.fullDepth, s.fullDepth)
	d.introspects = d.introspects || s.introspects
}

type measurer struct {
	defs     map[string]*ast.FragmentDefinition
	memo     map[string]shape
	rootMemo map[string]int  // a fragment's fields at its own level
	visiting map[string]bool // validation refuses fragment cycles, after this has run
}

func (m *measurer) set(set ast.SelectionSet) shape {
	var out shape
	for _, sel := range set {
		var s shape
		switch x := sel.(type) {
		case *ast.Field:
			inner := m.set(x.SelectionSet)
			s = inner
			s.fields = min(1+inner.fields, manyFields)
			s.depth, s.fullDepth = 1+inner.depth, 1+inner.fullDepth
			if x.Name == "__schema" || x.Name == "__type" {
				s.depth, s.introspects = 1, true
			}
		case *ast.InlineFragment:
			s = m.set(x.SelectionSet)
		case *ast.FragmentSpread:
			s = m.fragment(x.Name)
			s.spreads = min(1+s.spreads, manyFields)
		}
		out.fields = min(out.fields+s.fields, manyFields)
		out.spreads = min(out.spreads+s.spreads, manyFields)
		out.depth = max(out.depth, s.depth)
		out.fullDepth = max(out.fullDepth, s.fullDepth)
		out.introspects = out.introspects || s.introspects
	}
	return out
}

func (m *measurer) fragment(name string) shape {
	if s, ok := m.memo[name]; ok {
		return s
	}
	def := m.defs[name]
	if def == nil || m.visiting[name] {
		return shape{} // unknown, or a cycle: validation says so
	}
	m.visiting[name] = true
	s := m.set(def.SelectionSet)
	delete(m.visiting, name)
	m.memo[name] = s
	return s
}

// rootFields counts the fields a selection set runs at its own level: its fields, and
// those of the fragments it spreads or inlines, aliased or not.
func (m *measurer) rootFields(set ast.SelectionSet) int {
	n := 0
	for _, sel := range set {
		switch x := sel.(type) {
		case *ast.Field:
			n++
		case *ast.InlineFragment:
			n += m.rootFields(x.SelectionSet)
		case *ast.FragmentSpread:
			n += m.fragmentRootFields(x.Name)
		}
		n = min(n, manyFields)
	}
	return n
}

func (m *measurer) fragmentRootFields(name string) int {
	if n, ok := m.rootMemo[name]; ok {
		return n
	}
	def := m.defs[name]
	if def == nil || m.visiting[name] {
		return 0
	}
	m.visiting[name] = true
	n := m.rootFields(def.SelectionSet)
	delete(m.visiting, name)
	m.rootMemo[name] = n
	return n
}

func count(n int) string {
	if n >= manyFields {
		return "more than a trillion"
	}
	return strconv.Itoa(n)
}
