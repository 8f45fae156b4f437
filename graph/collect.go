package graph

import (
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// memos holds, for each document some handler's query cache holds, the fields
// collected from its plain selection sets.
var memos sync.Map // *ast.QueryDocument → *fieldsMemo

// fieldsMemo maps a plain selection set, by its first field and length, to its fields.
type fieldsMemo struct{ m sync.Map } // selectionKey → *collected

type selectionKey struct {
	first *ast.Field
	n     int
}

type collected struct {
	sel    []*ast.Field // the selection set, so that a set that only starts alike misses; nil for a set not plain
	fields []graphql.CollectedField
}

// collectFields is graphql.CollectFields, which the generated executor calls for every
// object it writes (tools/leanfields puts it there), remembered across requests for
// the plain selection sets of cached documents: those with fields only, none with a
// directive. What gqlgen collects from such a set depends on the set alone (variables
// matter only to @skip, @include and @defer, the type and the document only to
// fragments), and the document's nodes do not change once it is cached, so the fields
// are the same in every request. gqlgen's collection of a set (a map, a closure and a
// copy of its selections for each field, and a cache per request) took 1.9 µs of the
// 8-field `me` object's time; see docs/benchmarks.md.
//
// Callers only read what it returns: gqlgen already shares one result among the uses
// of a set in a request (a list's items). A memo's keys cannot be reused by another
// document's nodes: it lives only while the cache holds its document.
func collectFields(op *graphql.OperationContext, sel ast.SelectionSet, satisfies []string) []graphql.CollectedField {
	m, cached := memos.Load(op.Doc)
	var first *ast.Field
	if cached && len(sel) > 0 {
		first, _ = sel[0].(*ast.Field)
	}
	if first == nil {
		return graphql.CollectFields(op, sel, satisfies)
	}
	memo := m.(*fieldsMemo)
	key := selectionKey{first, len(sel)}
	if c, ok := memo.m.Load(key); ok {
		if c := c.(*collected); c.is(sel) {
			return c.fields
		}
		return graphql.CollectFields(op, sel, satisfies)
	}
	fields := graphql.CollectFields(op, sel, satisfies)
	// A set that is not plain is remembered as such (no fields, which no set is), so
	// that it is not looked over again: it is collected every time.
	c := &collected{}
	if fieldsOnly, ok := plain(sel); ok {
		c.sel, c.fields = fieldsOnly, fields
	}
	memo.m.LoadOrStore(key, c)
	return fields
}

// plain returns the fields of a selection set with nothing but fields, none with a
// directive.
func plain(sel ast.SelectionSet) ([]*ast.Field, bool) {
	fields := make([]*ast.Field, len(sel))
	for i, s := range sel {
		f, ok := s.(*ast.Field)
		if !ok || len(f.Directives) > 0 {
			return nil, false
		}
		fields[i] = f
	}
	return fields, true
}

// is reports whether sel is the remembered selection set: the same fields, in order.
func (c *collected) is(sel ast.SelectionSet) bool {
	if len(sel) != len(c.sel) {
		return false
	}
	for i, s := range sel {
		if f, ok := s.(*ast.Field); !ok || f != c.sel[i] {
			return false
		}
	}
	return true
}
