package graph

import (
	"context"
	"strconv"
	"sync"

	"github.com/99designs/gqlgen/complexity"
	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
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

// documentLimits refuses operations that ask for too many fields, nest too deep once
// their fragments are expanded, or cost more than the complexity budget.
//
// The shape comes first: each fragment is measured once. gqlgen's complexity count
// expands every spread anew, so a 1 KB document whose fragments each spread the next
// twice asks for 2^n fields and would keep that count busy for days; it only ever sees
// documents whose shape passed.
//
// Both figures depend on the document's text and the operation alone when the
// operation declares no variables (every complexity function in NewHandler ignores its
// arguments, and a literal argument is part of the text), so they are remembered for
// such operations of at most maxRememberedQuery bytes: the SDK's `me` would otherwise
// walk its fields twice on every request.
type documentLimits struct {
	fields, depth, introspectionDepth, complexity int

	es    graphql.ExecutableSchema
	mu    sync.RWMutex
	known map[limitsKey]measured
}

// limitsKey names one operation of one document.
type limitsKey struct{ query, operation string }

// measured is what documentLimits found for one operation.
type measured struct {
	shape
	cost int
}

const (
	// maxRememberedQuery is the longest document whose figures are remembered, as for
	// parsed documents (see documentCache).
	maxRememberedQuery = maxCachedQuery
	// maxRememberedOperations bounds the operations remembered; past it, they are
	// forgotten all at once and measured again.
	maxRememberedOperations = 1000
)

var _ interface {
	graphql.OperationContextMutator
	graphql.HandlerExtension
} = (*documentLimits)(nil)

func newDocumentLimits(budget int) *documentLimits {
	return &documentLimits{
		fields:             budget,
		depth:              maxDepth,
		introspectionDepth: maxIntrospectionDepth,
		complexity:         budget,
		known:              map[limitsKey]measured{},
	}
}

func (*documentLimits) ExtensionName() string { return "DocumentLimits" }

func (l *documentLimits) Validate(es graphql.ExecutableSchema) error {
	l.es = es
	return nil
}

func (l *documentLimits) MutateOperationContext(ctx context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	op := opCtx.Doc.Operations.ForName(opCtx.OperationName)
	if op == nil {
		return nil
	}
	key := limitsKey{opCtx.RawQuery, opCtx.OperationName}
	remember := len(op.VariableDefinitions) == 0 && len(key.query) <= maxRememberedQuery
	if remember {
		l.mu.RLock()
		m, ok := l.known[key]
		l.mu.RUnlock()
		if ok {
			return l.check(m)
		}
	}
	m := measured{shape: measure(op.SelectionSet)}
	if err := l.check(m); err != nil {
		return err // too big to count: not remembered either, as it costs nothing more
	}
	m.cost = complexity.Calculate(ctx, l.es, op, opCtx.Variables)
	if remember {
		l.mu.Lock()
		if len(l.known) >= maxRememberedOperations {
			clear(l.known)
		}
		l.known[key] = m
		l.mu.Unlock()
	}
	return l.check(m)
}

// check refuses what is past a limit. A cost of 0 is one not counted yet.
func (l *documentLimits) check(m measured) *gqlerror.Error {
	switch {
	case m.fields > l.fields:
		return gqlerror.Errorf("The query asks for %s fields once its fragments are expanded, past the limit of %d: ask for fewer.", count(m.fields), l.fields)
	case m.depth > l.depth:
		return gqlerror.Errorf("The query is nested %d levels deep, past the limit of %d: ask for less at once.", m.depth, l.depth)
	case m.fullDepth > l.introspectionDepth:
		return gqlerror.Errorf("The query is nested %d levels deep with introspection, past the limit of %d: ask for fewer levels of ofType.", m.fullDepth, l.introspectionDepth)
	case m.cost > l.complexity:
		// gqlgen's own words and code, which limitMessage rewords as for its extension
		err := gqlerror.Errorf("operation has complexity %d, which exceeds the limit of %d", m.cost, l.complexity)
		errcode.Set(err, "COMPLEXITY_LIMIT_EXCEEDED")
		return err
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
