// Command leanfields is the last step of gqlgen's generation (`make generate`): in the
// generated executor it replaces, for an object's fields that are plain reads of a struct
// field, gqlgen's general resolution with a direct call to the field's marshaller.
//
// gqlgen resolves every field through graphql.ResolveField: a field context put in the
// context, three closures, the value boxed in an interface, a deferred recover, and the
// field middleware. For `obj.Openid` none of that can matter: the read cannot fail or
// panic, there is no directive on the field, and wxlogin's handler installs no field
// middleware (graph.NewHandler says so where the extensions are added). The profiles of
// `me` put about seven allocations per field there, most of `me`'s cost over
// `{ __typename }`; see docs/benchmarks.md.
//
// A field is rewritten only when all of this holds in the generated code:
//   - its resolver is `return obj.Field, nil`: a struct field, not a method or resolver;
//   - its middleware chain is nil: no directive on it;
//   - its marshaller is one of safeMarshallers: those that, for a non-null field, do not
//     answer null under a condition checked first (so that no error needs the field's
//     own path; otherwise gqlgen's code runs), and for a nullable one answer null only
//     for nil, with no error either way.
//
// And an object whose fields are all resolved in place (no field in a goroutine of its
// own, so no deferred fragment either) gets graph's inlineObject for its value instead of
// a graphql.FieldSet: the same bytes, without a deferred group made for every object
// (its path built, a field set and a map), a map of the aliases written and a copy of
// each field as it is written. The object function must have exactly the shape gqlgen
// gives such an object (see inlineObject below).
//
// And every object function collects its fields with graph's collectFields instead of
// graphql.CollectFields: gqlgen's, remembered across requests for the selection sets
// that only list fields, in documents the query cache holds.
//
// Anything else is left as gqlgen wrote it. Running it twice changes nothing.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"os"
	"sort"
	"strings"
)

// safeMarshallers are the generated marshallers a rewritten field may use, each with the
// condition (a format for the field's expression) under which it cannot answer null.
// graphql's MarshalString, MarshalID, MarshalBoolean and MarshalInt never return Null,
// and graph/model's MarshalTime (the Time scalar's) only for the zero time (the test
// checks both), so under its condition a non-null field's marshaller raises no error;
// the nullable ones return Null only for nil and raise nothing. Where the condition does
// not hold, gqlgen's own code runs, so that a null in a non-null field is reported at
// the field's own path, as before.
var safeMarshallers = map[string]string{
	"marshalNString2string":  "",
	"marshalNID2string":      "",
	"marshalNBoolean2bool":   "",
	"marshalNInt2int":        "",
	"marshalNTime2timeᚐTime": "!%s.IsZero()",
	"marshalOString2ᚖstring": "",
	"marshalOID2ᚖstring":     "",
	"marshalOBoolean2ᚖbool":  "",
	"marshalOInt2ᚖint":       "",
}

func main() {
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: leanfields generated.go")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	path := flag.Arg(0)
	src, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "leanfields:", err)
		os.Exit(1)
	}
	out, n, err := rewrite(path, src)
	if err != nil {
		fmt.Fprintln(os.Stderr, "leanfields:", err)
		os.Exit(1)
	}
	if n == 0 {
		return
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "leanfields:", err)
		os.Exit(1)
	}
}

// edit replaces the bytes between two offsets of the source.
type edit struct {
	from, to int
	text     string
}

// rewrite returns the source with every eligible field and object function rewritten,
// and how many edits that took (none: nothing to do).
func rewrite(filename string, src []byte) ([]byte, int, error) {
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, filename, src, parser.ParseComments)
	if err != nil {
		return nil, 0, err
	}
	var edits []edit
	for _, decl := range file.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Body == nil {
			continue
		}
		if objEdits, ok := inlineObject(fset, src, fn); ok {
			edits = append(edits, objEdits...)
		} else if e, ok := leanField(fset, src, fn); ok {
			edits = append(edits, e)
		}
		edits = append(edits, collectCalls(fset, fn)...)
	}
	if len(edits) == 0 {
		return src, 0, nil
	}
	sort.Slice(edits, func(i, j int) bool { return edits[i].from < edits[j].from })
	var buf bytes.Buffer
	last := 0
	for _, e := range edits {
		buf.Write(src[last:e.from])
		buf.WriteString(e.text)
		last = e.to
	}
	buf.Write(src[last:])
	out, err := format.Source(buf.Bytes())
	if err != nil {
		return nil, 0, fmt.Errorf("formatting the rewritten file: %w", err)
	}
	return out, len(edits), nil
}

// leanField returns the edit that has a plain field's function call its marshaller
// directly (see plainField), keeping gqlgen's code after a guard where the marshaller
// has a condition.
func leanField(fset *token.FileSet, src []byte, fn *ast.FuncDecl) (edit, bool) {
	field, marshaller, ok := plainField(fn)
	if !ok {
		return edit{}, false
	}
	value := "obj." + field
	lean := fmt.Sprintf("return ec.%s(ctx, field.Selections, %s)", marshaller, value)
	from, to := offset(fset, fn.Body.Lbrace)+1, offset(fset, fn.Body.Rbrace)
	if cond := safeMarshallers[marshaller]; cond != "" {
		// gqlgen's code stays for the value that would be null.
		return edit{from: from, to: to, text: "\n// A plain struct field: its marshaller directly unless null (tools/leanfields).\n" +
			"if " + fmt.Sprintf(cond, value) + " {\n" + lean + "\n}\n" +
			strings.TrimLeft(string(src[from:to]), "\n")}, true
	}
	return edit{from: from, to: to, text: "\n// A plain struct field: its marshaller directly (tools/leanfields).\n" + lean + "\n"}, true
}

// plainField reports whether fn is a generated object field function of the form
//
//	func (ec *executionContext) _T_f(ctx context.Context, field graphql.CollectedField, obj *T) (ret graphql.Marshaler) {
//		return graphql.ResolveField(ctx, ec.OperationContext, field, fieldContext,
//			func(ctx context.Context) (any, error) { return obj.F, nil },
//			nil,
//			func(ctx context.Context, selections ast.SelectionSet, v V) graphql.Marshaler {
//				return ec.marshalX(ctx, selections, v)
//			},
//			recover, nonNull)
//	}
//
// with marshalX one of safeMarshallers, and if so returns F and marshalX.
func plainField(fn *ast.FuncDecl) (field, marshaller string, ok bool) {
	if !isMethodOf(fn, "ctx", "field", "obj") || len(fn.Body.List) != 1 {
		return "", "", false
	}
	ret, ok := fn.Body.List[0].(*ast.ReturnStmt)
	if !ok || len(ret.Results) != 1 {
		return "", "", false
	}
	call, ok := ret.Results[0].(*ast.CallExpr)
	if !ok || !isSelector(call.Fun, "graphql", "ResolveField") || len(call.Args) != 9 {
		return "", "", false
	}
	field, ok = structFieldRead(call.Args[4])
	if !ok {
		return "", "", false
	}
	if !isIdent(call.Args[5], "nil") {
		return "", "", false // a directive's middleware
	}
	marshaller, ok = marshalCall(call.Args[6])
	if _, safe := safeMarshallers[marshaller]; !ok || !safe {
		return "", "", false
	}
	return field, marshaller, true
}

// structFieldRead matches `func(ctx context.Context) (any, error) { return obj.F, nil }`.
func structFieldRead(e ast.Expr) (string, bool) {
	results, ok := onlyReturn(e)
	if !ok || len(results) != 2 || !isIdent(results[1], "nil") {
		return "", false
	}
	sel, ok := results[0].(*ast.SelectorExpr)
	if !ok || !isIdent(sel.X, "obj") {
		return "", false
	}
	return sel.Sel.Name, true
}

// onlyReturn returns the results of a function literal whose body is one return.
func onlyReturn(e ast.Expr) ([]ast.Expr, bool) {
	lit, ok := e.(*ast.FuncLit)
	if !ok || len(lit.Body.List) != 1 {
		return nil, false
	}
	ret, ok := lit.Body.List[0].(*ast.ReturnStmt)
	if !ok {
		return nil, false
	}
	return ret.Results, true
}

// marshalCall matches `func(ctx, selections, v) graphql.Marshaler { return ec.marshalX(ctx, selections, v) }`.
func marshalCall(e ast.Expr) (string, bool) {
	results, ok := onlyReturn(e)
	if !ok || len(results) != 1 {
		return "", false
	}
	call, ok := results[0].(*ast.CallExpr)
	if !ok || len(call.Args) != 3 {
		return "", false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || !isIdent(sel.X, "ec") {
		return "", false
	}
	for i, want := range []string{"ctx", "selections", "v"} {
		if !isIdent(call.Args[i], want) {
			return "", false
		}
	}
	return sel.Sel.Name, true
}

func isSelector(e ast.Expr, x, name string) bool {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == x && sel.Sel.Name == name
}

// inlineObject returns the edits that give a generated object function graph's
// inlineObject for its value, when the function has exactly this shape:
//
//	func (ec *executionContext) _T(ctx context.Context, sel ast.SelectionSet, obj *T) graphql.Marshaler {
//		fields := graphql.CollectFields(ec.OperationContext, sel, tImplementors)
//		out := graphql.NewFieldSet(fields)
//		deferred := graphql.NewDeferredGroup(ctx)
//		for i, field := range fields {
//			… out.Values[i] = …; out.Invalids++ …   // nothing else of out, no deferred
//		}
//		out.Dispatch(ctx)
//		if out.Invalids > 0 {
//			return graphql.Null
//		}
//		if n := len(deferred.Defers); n > 0 { … }
//		return out
//	}
//
// The loop using nothing of out but Values and Invalids means that no field was handed
// to a goroutine (out.ResolveConcurrently, out.Concurrently), so Dispatch has nothing to
// run and the deferred group stays empty: both go, and NewFieldSet becomes
// newInlineObject.
func inlineObject(fset *token.FileSet, src []byte, fn *ast.FuncDecl) ([]edit, bool) {
	if !isMethodOf(fn, "ctx", "sel", "obj") {
		return nil, false
	}
	body := fn.Body.List
	if len(body) != 8 {
		return nil, false
	}
	if !isDefine(body[0], "fields", "graphql", "CollectFields") ||
		!isDefine(body[1], "out", "graphql", "NewFieldSet") ||
		!isDefine(body[2], "deferred", "graphql", "NewDeferredGroup") {
		return nil, false
	}
	loop, ok := body[3].(*ast.RangeStmt)
	if !ok || !onlyValuesAndInvalids(loop.Body) {
		return nil, false
	}
	if stmt, ok := body[4].(*ast.ExprStmt); !ok || !isCallOf(stmt.X, "out", "Dispatch") {
		return nil, false
	}
	if invalid, ok := body[5].(*ast.IfStmt); !ok || !mentions(invalid.Cond, "out") {
		return nil, false
	}
	defers, ok := body[6].(*ast.IfStmt)
	if !ok || !mentions(defers.Init, "deferred") {
		return nil, false
	}
	if ret, ok := body[7].(*ast.ReturnStmt); !ok || len(ret.Results) != 1 || !isIdent(ret.Results[0], "out") {
		return nil, false
	}
	// out := graphql.NewFieldSet(fields): only the call changes.
	call := body[1].(*ast.AssignStmt).Rhs[0]
	return []edit{
		{from: offset(fset, call.Pos()), to: offset(fset, call.End()), text: "newInlineObject(fields)"},
		deleteLine(fset, src, body[2]),
		deleteLine(fset, src, body[4]),
		deleteLine(fset, src, body[6]),
	}, true
}

// collectCalls returns the edits that have fn call graph's collectFields where it
// calls graphql.CollectFields(ec.OperationContext, …), which takes the same arguments.
func collectCalls(fset *token.FileSet, fn *ast.FuncDecl) []edit {
	var edits []edit
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if ok && isSelector(call.Fun, "graphql", "CollectFields") && len(call.Args) == 3 && isSelector(call.Args[0], "ec", "OperationContext") {
			edits = append(edits, edit{from: offset(fset, call.Fun.Pos()), to: offset(fset, call.Fun.End()), text: "collectFields"})
		}
		return true
	})
	return edits
}

// isDefine matches `name := pkg.fun(…)`.
func isDefine(stmt ast.Stmt, name, pkg, fun string) bool {
	a, ok := stmt.(*ast.AssignStmt)
	if !ok || a.Tok != token.DEFINE || len(a.Lhs) != 1 || len(a.Rhs) != 1 || !isIdent(a.Lhs[0], name) {
		return false
	}
	call, ok := a.Rhs[0].(*ast.CallExpr)
	return ok && isSelector(call.Fun, pkg, fun)
}

// onlyValuesAndInvalids reports whether n uses out only as out.Values and out.Invalids,
// and deferred and innerCtx (a root object's) not at all.
func onlyValuesAndInvalids(n ast.Node) bool {
	ok := true
	ast.Inspect(n, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			if isIdent(n.X, "out") {
				if n.Sel.Name != "Values" && n.Sel.Name != "Invalids" {
					ok = false
				}
				return false
			}
		case *ast.Ident:
			if n.Name == "out" || n.Name == "deferred" || n.Name == "innerCtx" {
				ok = false // out as a whole (its address, say), or a deferred fragment
			}
		}
		return ok
	})
	return ok
}

func mentions(n ast.Node, name string) bool {
	found := false
	ast.Inspect(n, func(n ast.Node) bool {
		if isIdent(n, name) {
			found = true
		}
		return !found
	})
	return found
}

// isMethodOf reports whether fn is a method whose parameters have these names, one each.
func isMethodOf(fn *ast.FuncDecl, params ...string) bool {
	if fn.Recv == nil || len(fn.Recv.List) != 1 || len(fn.Type.Params.List) != len(params) {
		return false
	}
	for i, p := range fn.Type.Params.List {
		if len(p.Names) != 1 || p.Names[0].Name != params[i] {
			return false
		}
	}
	return true
}

func isCallOf(e ast.Expr, x, name string) bool {
	call, ok := e.(*ast.CallExpr)
	return ok && isSelector(call.Fun, x, name)
}

func isIdent(n ast.Node, name string) bool {
	id, ok := n.(*ast.Ident)
	return ok && id.Name == name
}

func offset(fset *token.FileSet, p token.Pos) int { return fset.Position(p).Offset }

// deleteLine removes a statement with the whole of its lines.
func deleteLine(fset *token.FileSet, src []byte, stmt ast.Stmt) edit {
	from := offset(fset, stmt.Pos())
	for from > 0 && src[from-1] != '\n' {
		from--
	}
	to := offset(fset, stmt.End())
	if to < len(src) && src[to] == '\n' {
		to++
	}
	return edit{from: from, to: to}
}
