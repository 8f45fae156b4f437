// Fuzz targets for persisted queries: the extensions.persistedQuery a client sends with
// or instead of its document, the canonical printing the allow-list compares documents
// by, and the manifest file. Run one with:
//
//	go test -run '^$' -fuzz '^FuzzPersistedQuery$' -fuzztime 10m -parallel 1 ./internal/persisted
//
// The seeds (f.Add and testdata/fuzz) run with the ordinary tests.
package persisted

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/wxlogin/wxlogin/internal/input"
)

const fuzzTokenLimit = 5000

// FuzzPersistedQuery sends a document and extensions (JSON, as the transport reads
// them) in each mode: never a panic; a refusal is an input error or one of the
// protocol's; a hash is only ever taken for its own document or a manifest's; Off takes
// no hash; and in allow-list mode only the manifest's documents pass.
func FuzzPersistedQuery(f *testing.F) {
	manifest := Builtin()
	me := manifestBody(f, manifest, "Me")
	for _, c := range []struct{ query, ext string }{
		{me, ``},
		{me, `{"persistedQuery":{"version":1,"sha256Hash":"` + Hash(me) + `"}}`},
		{"", `{"persistedQuery":{"version":1,"sha256Hash":"` + Hash(me) + `"}}`},
		{"", `{"persistedQuery":{"version":1,"sha256Hash":"` + Hash("{ me { id } }") + `"}}`},
		{"{ me { id } }", `{"persistedQuery":{"version":1,"sha256Hash":"` + Hash("{ me { id } }") + `"}}`},
		{"{ me { id } }", `{"persistedQuery":{"version":1,"sha256Hash":"` + Hash(me) + `"}}`},
		{"query Me {\n  me { id nickname avatarUrl phoneNumber createdAt }\n}", ``},
		{"{ __schema { types { name } } }", ``},
		{"{ me {", ``},
		{"", `{"persistedQuery":{"version":"1","sha256Hash":"00"}}`},
		{"", `{"persistedQuery":{"version":1.0,"sha256Hash":"` + Hash(me) + `"}}`},
		{"", `{"persistedQuery":{"version":2,"sha256Hash":"` + Hash(me) + `"}}`},
		{"", `{"persistedQuery":{"version":1,"sha256Hash":"ABCDEF"}}`},
		{"", `{"persistedQuery":[]}`},
		{"", `{"persistedQuery":null}`},
		{"", `{}`},
	} {
		for mode := range uint8(3) {
			f.Add(c.query, []byte(c.ext), mode)
		}
	}
	modes := []Mode{Automatic, AllowList, Off}
	bodies := map[string]bool{}
	for _, op := range manifest.Operations {
		bodies[op.Body] = true
	}

	f.Fuzz(func(t *testing.T, query string, ext []byte, modeN uint8) {
		p := &graphql.RawParams{Query: query}
		if len(ext) > 0 && json.Unmarshal(ext, &p.Extensions) != nil {
			return // the transport refuses what is not a JSON object
		}
		mode := modes[int(modeN)%len(modes)]
		e := New(mode, manifest, 1<<20, fuzzTokenLimit)
		op := &graphql.OperationContext{}
		ctx := graphql.WithOperationContext(context.Background(), op)
		hash, sent, _ := requestedHash(p.Extensions)

		if gerr := e.MutateOperationParameters(ctx, p); gerr != nil {
			var ie *input.Error
			switch err := gerr.Err; {
			case gerr.Message == "":
				t.Fatalf("a refusal without a message: %#v", gerr)
			case errors.As(err, &ie), errors.Is(err, ErrNotFound), errors.Is(err, ErrNotSupported), errors.Is(err, ErrNotAllowed):
			default:
				t.Fatalf("refused with %v (%T)", err, err)
			}
			return
		}
		if sent && mode == Off {
			t.Fatalf("Off took the hash %s", hash)
		}
		if query != "" && p.Query != query {
			t.Fatalf("the document sent was replaced by %q", p.Query)
		}
		switch {
		case sent && query == "":
			if !bodies[p.Query] {
				t.Fatalf("the hash %s was taken for %q, which is no manifest document (the cache is empty)", hash, p.Query)
			}
		case sent && Hash(query) != hash:
			t.Fatalf("the hash %s was taken with a document it is not the hash of", hash)
		}
		if mode == AllowList && !bodies[p.Query] && !sameAsAManifestDocument(manifest, p.Query) {
			t.Fatalf("the allow-list let %q through", p.Query)
		}
	})
}

// sameAsAManifestDocument says whether query parses to a document of the manifest,
// comments and spacing aside.
func sameAsAManifestDocument(m *Manifest, query string) bool {
	doc, err := parser.ParseQuery(&ast.Source{Input: query})
	if err != nil {
		return false
	}
	want := shape(reflect.ValueOf(doc))
	for _, op := range m.Operations {
		body, err := parser.ParseQuery(&ast.Source{Input: op.Body})
		if err == nil && reflect.DeepEqual(shape(reflect.ValueOf(body)), want) {
			return true
		}
	}
	return false
}

// FuzzCanonical: the canonical printing the allow-list compares documents by keeps
// everything that makes a document run the way it does, so that no other document can
// pass for an allowed one: a document printed and parsed again is the same document,
// comments and spacing aside, and printing is stable.
func FuzzCanonical(f *testing.F) {
	for _, op := range Builtin().Operations {
		f.Add(op.Body)
	}
	for _, q := range []string{
		`{ me { id } }`,
		`query Q($a: Int = 1, $b: [String!]! = ["x"]) @dir(x: 1) { a(x: $a, y: {k: [1, 2.5e3, true, null, ENUM]}) @include(if: $b) { ...F ... on T { b } ... @skip(if: false) { c } } }
fragment F on T @d { d: e }`,
		"{ a(s: \"quote \\\" backslash \\\\ unicode \\u00e9 tab \\t\") }",
		"{ a(s: \"\"\"\n  block\n    indented \\\"\"\" \"\"\" }",
		"{ a(s: \"\"\"\"\"\") b(s: \"\") }",
		"# comment\n{ a # trailing\n}",
		`subscription S { a }`,
		`mutation M { a(x: -0) b(x: 1.0) c(x: 0.00001) }`,
		`query ($v: ID) { a(x: $v) }`,
		`{ a { a { a { a { a } } } } }`,
	} {
		f.Add(q)
	}

	f.Fuzz(func(t *testing.T, query string) {
		if !utf8.ValidString(query) {
			return // the transport refuses it; gqlparser reads invalid UTF-8 after an escape as U+FFFD
		}
		doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: query}, fuzzTokenLimit)
		if err != nil {
			return
		}
		printed, ok := Canonical(doc)
		if !ok { // directives on a variable: matched by no manifest document
			if !hasVariableDirectives(doc) {
				t.Fatalf("%q has no canonical print", query)
			}
			return
		}
		again, err := parser.ParseQuery(&ast.Source{Input: printed})
		if err != nil {
			t.Fatalf("%q prints as %q, which does not parse: %v", query, printed, err)
		}
		if got, want := shape(reflect.ValueOf(again)), shape(reflect.ValueOf(doc)); !reflect.DeepEqual(got, want) {
			t.Fatalf("%q prints as %q, which parses to another document", query, printed)
		}
		if twice, _ := Canonical(again); twice != printed {
			t.Fatalf("printing is not stable: %q, then %q", printed, twice)
		}
	})
}

func hasVariableDirectives(doc *ast.QueryDocument) bool {
	for _, op := range doc.Operations {
		for _, v := range op.VariableDefinitions {
			if len(v.Directives) > 0 {
				return true
			}
		}
	}
	return false
}

var (
	positionType = reflect.TypeFor[*ast.Position]()
	commentType  = reflect.TypeFor[*ast.CommentGroup]()
	valueType    = reflect.TypeFor[ast.Value]()
)

// shape is a parsed document as plain values, without positions or comments, and with
// block strings as strings: what two texts of one document have in common.
func shape(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() || v.Type() == positionType || v.Type() == commentType {
			return nil
		}
		return shape(v.Elem())
	case reflect.Struct:
		m := map[string]any{}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				m[v.Type().Field(i).Name] = shape(v.Field(i))
			}
		}
		if v.Type() == valueType && m["Kind"] == ast.BlockValue {
			m["Kind"] = ast.StringValue
		}
		return m
	case reflect.Slice:
		if v.Len() == 0 {
			return nil
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = shape(v.Index(i))
		}
		return out
	}
	return v.Interface()
}

// FuzzParseManifest: reading a manifest file never panics; a manifest it takes has the
// format's name and version, every id is its body's hash, and every body parses and is
// allowed in allow-list mode.
func FuzzParseManifest(f *testing.F) {
	body := "query Me {\n  me {\n    id\n  }\n}"
	op := func(id, body string) string {
		return `{"id":"` + id + `","name":"Me","type":"query","body":` + strconv.Quote(body) + `}`
	}
	builtin := Builtin()
	builtin.Operations = builtin.Operations[:2] // a small input minimizes fast
	excerpt, err := json.Marshal(builtin)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		string(excerpt),
		`{"format":"apollo-persisted-query-manifest","version":1,"operations":[` + op(Hash(body), body) + `]}`,
		`{"format":"apollo-persisted-query-manifest","version":1,"operations":[` + op(Hash(body), body) + `,` + op(Hash(body), body) + `]}`,
		`{"format":"apollo-persisted-query-manifest","version":1,"operations":[` + op("00", body) + `]}`,
		`{"format":"apollo-persisted-query-manifest","version":1,"operations":[` + op(Hash("{ me {"), "{ me {") + `]}`,
		`{"format":"apollo-persisted-query-manifest","version":1,"operations":[` + op(Hash(""), "") + `]}`,
		`{"format":"apollo-persisted-query-manifest","version":1,"operations":null}`,
		`{"format":"apollo-persisted-query-manifest","version":2,"operations":[]}`,
		`{"format":"other","version":1}`,
		`{"operations":[]}`,
		`[]`,
		``,
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			if m != nil || err.Error() == "" {
				t.Fatalf("ParseManifest: %v with a manifest", err)
			}
			return
		}
		if m.Format != ManifestFormat || m.Version != 1 {
			t.Fatalf("took a manifest of format %q version %d", m.Format, m.Version)
		}
		e := New(AllowList, m, 1<<20, fuzzTokenLimit)
		for _, op := range m.Operations {
			if op.ID != Hash(op.Body) {
				t.Fatalf("took the id %q for a body whose hash is %s", op.ID, Hash(op.Body))
			}
			if _, err := parser.ParseQuery(&ast.Source{Input: op.Body}); err != nil {
				t.Fatalf("took a body that does not parse: %q", op.Body)
			}
			if !e.allowed(op.Body) {
				t.Fatalf("the manifest's own %q is not allowed", op.Body)
			}
		}
	})
}

func manifestBody(f *testing.F, m *Manifest, name string) string {
	for _, op := range m.Operations {
		if op.Name == name {
			return op.Body
		}
	}
	f.Fatalf("the built-in manifest has no %s", name)
	return ""
}
