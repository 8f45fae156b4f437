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
// and MarshalTime only for the zero time (the test checks both), so under its condition
// a non-null field's marshaller raises no error; the nullable ones return Null only for
// nil and raise nothing. Where the condition does not hold, gqlgen's own code runs, so
// that a null in a non-null field is reported at the field's own path, as before.
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

// rewrite returns the source with every eligible field function's body replaced, and
// how many it replaced.
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
		field, marshaller, ok := plainField(fn)
		if !ok {
			continue
		}
		value := "obj." + field
		lean := fmt.Sprintf("return ec.%s(ctx, field.Selections, %s)", marshaller, value)
		from := fset.Position(fn.Body.Lbrace).Offset + 1
		to := fset.Position(fn.Body.Rbrace).Offset
		var body string
		if cond := safeMarshallers[marshaller]; cond == "" {
			body = "\n// A plain struct field: its marshaller directly (tools/leanfields).\n" + lean + "\n"
		} else {
			// gqlgen's code stays for the value that would be null.
			body = "\n// A plain struct field: its marshaller directly unless null (tools/leanfields).\n" +
				"if " + fmt.Sprintf(cond, value) + " {\n" + lean + "\n}\n" +
				strings.TrimLeft(string(src[from:to]), "\n")
		}
		edits = append(edits, edit{from: from, to: to, text: body})
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
	if fn.Recv == nil || len(fn.Recv.List) != 1 || len(fn.Type.Params.List) != 3 {
		return "", "", false
	}
	names := []string{"ctx", "field", "obj"}
	for i, p := range fn.Type.Params.List {
		if len(p.Names) != 1 || p.Names[0].Name != names[i] {
			return "", "", false
		}
	}
	if len(fn.Body.List) != 1 {
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
	if id, isIdent := call.Args[5].(*ast.Ident); !isIdent || id.Name != "nil" {
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
	lit, ok := e.(*ast.FuncLit)
	if !ok || len(lit.Body.List) != 1 {
		return "", false
	}
	ret, ok := lit.Body.List[0].(*ast.ReturnStmt)
	if !ok || len(ret.Results) != 2 {
		return "", false
	}
	if id, isIdent := ret.Results[1].(*ast.Ident); !isIdent || id.Name != "nil" {
		return "", false
	}
	sel, ok := ret.Results[0].(*ast.SelectorExpr)
	if !ok {
		return "", false
	}
	if x, isIdent := sel.X.(*ast.Ident); !isIdent || x.Name != "obj" {
		return "", false
	}
	return sel.Sel.Name, true
}

// marshalCall matches `func(ctx, selections, v) graphql.Marshaler { return ec.marshalX(ctx, selections, v) }`.
func marshalCall(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.FuncLit)
	if !ok || len(lit.Body.List) != 1 {
		return "", false
	}
	ret, ok := lit.Body.List[0].(*ast.ReturnStmt)
	if !ok || len(ret.Results) != 1 {
		return "", false
	}
	call, ok := ret.Results[0].(*ast.CallExpr)
	if !ok || len(call.Args) != 3 {
		return "", false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return "", false
	}
	if x, isIdent := sel.X.(*ast.Ident); !isIdent || x.Name != "ec" {
		return "", false
	}
	for i, want := range []string{"ctx", "selections", "v"} {
		if id, isIdent := call.Args[i].(*ast.Ident); !isIdent || id.Name != want {
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
