package graph

import (
	"container/list"
	"context"
	"sync"
	"unsafe"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/lexer"
)

// documentCacheBytes bounds the memory the parsed documents of the query cache hold,
// by documentSize's estimate: a budget of bytes held, not of text, as a 4 KiB document
// parses into some 30 times its size in nodes.
const documentCacheBytes = 4 << 20

// documentCache is the handler's query cache: parsed and validated documents by their
// text, least recently used first out, within a budget of the memory they hold.
//
// It keeps a document only when an operation of it is about to run (it is an
// OperationInterceptor), so that it never holds one that a limit refused after gqlgen
// validated it: gqlgen offers every document that validates (Add), and this cache
// declines the offer. With each document it remembers the complexity of its
// operations (see documentLimits).
type documentCache struct {
	mu     sync.Mutex
	budget int
	bytes  int
	order  *list.List               // of *cachedDocument, most recently used at the front
	byText map[string]*list.Element // the document's text → its element in order
}

// cachedDocument is a document the cache holds, with what is remembered of it.
type cachedDocument struct {
	query string
	doc   *ast.QueryDocument
	size  int
	costs map[string]int // complexity by operation name, for operations without variables
}

var _ interface {
	graphql.Cache[*ast.QueryDocument]
	graphql.HandlerExtension
	graphql.OperationInterceptor
} = (*documentCache)(nil)

func newDocumentCache(budget int) *documentCache {
	return &documentCache{budget: budget, order: list.New(), byText: map[string]*list.Element{}}
}

func (*documentCache) ExtensionName() string { return "DocumentCache" }

func (*documentCache) Validate(graphql.ExecutableSchema) error { return nil }

// Get returns the document kept for a text.
func (c *documentCache) Get(_ context.Context, query string) (*ast.QueryDocument, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byText[query]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*cachedDocument).doc, true
}

// Add is gqlgen's offer of a document that validated; it is kept once it runs.
func (*documentCache) Add(context.Context, string, *ast.QueryDocument) {}

// InterceptOperation keeps the document of an operation that passed every check and is
// about to run.
func (c *documentCache) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	if op := graphql.GetOperationContext(ctx); op.Doc != nil {
		c.keep(op.RawQuery, op.Doc)
	}
	return next(ctx)
}

// has says whether the cache holds a document for the text, without making it recent.
func (c *documentCache) has(query string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.byText[query]
	return ok
}

// cost returns the complexity remembered for an operation of a kept document.
func (c *documentCache) cost(query string, doc *ast.QueryDocument, operation string) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entry(query, doc); e != nil {
		n, ok := e.costs[operation]
		return n, ok
	}
	return 0, false
}

// rememberCost remembers an operation's complexity, when its document is kept.
func (c *documentCache) rememberCost(query string, doc *ast.QueryDocument, operation string, cost int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entry(query, doc); e != nil {
		if e.costs == nil {
			e.costs = map[string]int{}
		}
		e.costs[operation] = cost
	}
}

// used returns the bytes the kept documents hold, by estimate, and how many there are.
func (c *documentCache) used() (bytes, count int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes, c.order.Len()
}

// entry is the kept document for a text, if it is doc.
func (c *documentCache) entry(query string, doc *ast.QueryDocument) *cachedDocument {
	if el, ok := c.byText[query]; ok {
		if e := el.Value.(*cachedDocument); e.doc == doc {
			return e
		}
	}
	return nil
}

// keep adds a document, unless the cache holds one for the text already (another
// request's) or it would take more than an eighth of the budget;
// then it drops the least recently used documents until the rest fit.
func (c *documentCache) keep(query string, doc *ast.QueryDocument) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byText[query]; ok {
		return
	}
	size := documentSize(query, doc)
	if size > c.budget/8 {
		return
	}
	c.byText[query] = c.order.PushFront(&cachedDocument{query: query, doc: doc, size: size})
	c.bytes += size
	for c.bytes > c.budget {
		c.drop(c.order.Back())
	}
}

func (c *documentCache) drop(el *list.Element) {
	e := c.order.Remove(el).(*cachedDocument)
	delete(c.byText, e.query)
	c.bytes -= e.size
}

// documentSize estimates the bytes a kept document holds: its text (the names in its
// nodes are slices of it), each node the parser allocated with its position, the
// strings it made, the cache's own entry and the remembered complexities. The estimate follows how
// gqlparser allocates (a node's position comes with the token it was read from) and the
// allocator's size classes; a test holds it to the heap a document really takes.
func documentSize(query string, doc *ast.QueryDocument) int {
	s := sizer{}
	s.n = alloc(len(query)) + alloc(sizeOf[ast.Source]()) + alloc(sizeOf[ast.QueryDocument]()) + positionBytes +
		alloc(sizeOf[cachedDocument]()) + cacheEntryBytes + costsBytes + max(0, len(doc.Operations)-8)*costBytes
	s.comments(doc.Comment)
	s.n += slice[*ast.OperationDefinition](cap(doc.Operations))
	for _, op := range doc.Operations {
		s.n += alloc(sizeOf[ast.OperationDefinition]()) + positionBytes
		s.comments(op.Comment)
		s.n += slice[*ast.VariableDefinition](cap(op.VariableDefinitions))
		for _, v := range op.VariableDefinitions {
			s.n += alloc(sizeOf[ast.VariableDefinition]()) + positionBytes
			s.comments(v.Comment)
			s.typ(v.Type)
			s.value(v.DefaultValue)
			s.directives(v.Directives)
		}
		s.directives(op.Directives)
		s.selections(op.SelectionSet)
	}
	s.n += slice[*ast.FragmentDefinition](cap(doc.Fragments))
	for _, f := range doc.Fragments {
		s.n += alloc(sizeOf[ast.FragmentDefinition]()) + positionBytes
		s.comments(f.Comment)
		s.directives(f.Directives)
		s.selections(f.SelectionSet)
	}
	return s.n
}

// The sizes documentSize adds for what is not a node.
var (
	// positionBytes: a node's position is the Pos of the token it was read from, and
	// taking its address moves the whole token to the heap.
	positionBytes = alloc(sizeOf[lexer.Token]())
	// cacheEntryBytes: the cache's map entry and list element for a document.
	cacheEntryBytes = 64 + alloc(sizeOf[list.Element]())
	// costsBytes: the map of remembered complexities, whose first eight entries come
	// in one allocation; costBytes: each entry past them.
	costsBytes = 256
	costBytes  = 48
)

// sizer adds up the bytes of a document's nodes.
type sizer struct{ n int }

func (s *sizer) selections(set ast.SelectionSet) {
	if len(set) == 0 {
		return
	}
	s.n += slice[ast.Selection](cap(set))
	for _, sel := range set {
		switch x := sel.(type) {
		case *ast.Field:
			s.n += alloc(sizeOf[ast.Field]()) + positionBytes + slice[ast.Selection](len(x.SelectionSet))
			if x.Name == "__typename" { // validation gives it a definition of its own
				s.n += alloc(sizeOf[ast.FieldDefinition]()) + alloc(sizeOf[ast.Type]())
			}
			s.comments(x.Comment)
			s.arguments(x.Arguments)
			s.directives(x.Directives)
			s.selections(x.SelectionSet)
		case *ast.InlineFragment:
			s.n += alloc(sizeOf[ast.InlineFragment]()) + positionBytes
			s.comments(x.Comment)
			s.directives(x.Directives)
			s.selections(x.SelectionSet)
		case *ast.FragmentSpread:
			s.n += alloc(sizeOf[ast.FragmentSpread]()) + positionBytes
			s.comments(x.Comment)
			s.directives(x.Directives)
		}
	}
}

func (s *sizer) directives(list ast.DirectiveList) {
	s.n += slice[*ast.Directive](cap(list))
	for _, d := range list {
		s.n += alloc(sizeOf[ast.Directive]()) + positionBytes
		s.arguments(d.Arguments)
	}
}

func (s *sizer) arguments(list ast.ArgumentList) {
	s.n += slice[*ast.Argument](cap(list))
	for _, a := range list {
		s.n += alloc(sizeOf[ast.Argument]()) + positionBytes
		s.comments(a.Comment)
		s.value(a.Value)
	}
}

func (s *sizer) value(v *ast.Value) {
	if v == nil {
		return
	}
	s.n += alloc(sizeOf[ast.Value]()) + positionBytes
	s.comments(v.Comment)
	if v.Kind == ast.StringValue || v.Kind == ast.BlockValue {
		s.n += alloc(len(v.Raw)) // unescaped into a string of its own
	}
	s.n += slice[*ast.ChildValue](cap(v.Children))
	for _, c := range v.Children {
		s.n += alloc(sizeOf[ast.ChildValue]())
		if v.Kind == ast.ObjectValue {
			s.n += positionBytes
		}
		s.value(c.Value)
	}
}

func (s *sizer) typ(t *ast.Type) {
	for ; t != nil; t = t.Elem {
		s.n += alloc(sizeOf[ast.Type]()) + positionBytes
	}
}

func (s *sizer) comments(g *ast.CommentGroup) {
	if g == nil {
		return
	}
	s.n += alloc(sizeOf[ast.CommentGroup]()) + slice[*ast.Comment](cap(g.List))
	s.n += len(g.List) * (alloc(sizeOf[ast.Comment]()) + positionBytes)
}

func sizeOf[T any]() int {
	var v T
	return int(unsafe.Sizeof(v))
}

// slice is the bytes of a slice's backing array of n elements.
func slice[T any](n int) int {
	if n == 0 {
		return 0
	}
	return alloc(n * sizeOf[T]())
}

// alloc is about what the allocator hands out for n bytes: its size classes are spaced
// an eighth of their size apart, at least 8 bytes.
func alloc(n int) int {
	if n <= 0 {
		return 0
	}
	step := 8
	for p := 64; p <= n; p *= 2 {
		step = p / 8
	}
	return (n + step - 1) / step * step
}
