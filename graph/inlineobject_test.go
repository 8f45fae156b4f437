package graph

import (
	"bytes"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// inlineObject must write exactly what graphql.FieldSet writes for the same fields.
func TestInlineObjectWritesWhatFieldSetWrites(t *testing.T) {
	field := func(alias string) graphql.CollectedField {
		return graphql.CollectedField{Field: &ast.Field{Alias: alias, Name: alias}}
	}
	for name, c := range map[string]struct {
		aliases []string
		values  []graphql.Marshaler
	}{
		"none": {},
		"one":  {[]string{"id"}, []graphql.Marshaler{graphql.MarshalString("u1")}},
		"the SDK's me": {
			[]string{"id", "openid", "unionid", "createdAt", "nickname", "__typename"},
			[]graphql.Marshaler{
				graphql.MarshalID("01a2"), graphql.MarshalString(`o"pen\id`), graphql.Null,
				graphql.MarshalString("2026-11-24T19:58:09Z"), graphql.MarshalString("小明"), graphql.MarshalString("User"),
			},
		},
		"an alias twice: the first is written": {
			[]string{"a", "b", "a"},
			[]graphql.Marshaler{graphql.MarshalInt(1), graphql.MarshalInt(2), graphql.MarshalInt(3)},
		},
		"aliases no parser makes, written escaped": {
			[]string{`q"uote`, "é", `back\slash`},
			[]graphql.Marshaler{graphql.MarshalBoolean(true), graphql.MarshalBoolean(false), graphql.Null},
		},
	} {
		t.Run(name, func(t *testing.T) {
			fields := make([]graphql.CollectedField, len(c.aliases))
			for i, a := range c.aliases {
				fields[i] = field(a)
			}
			want := graphql.NewFieldSet(fields)
			got := newInlineObject(fields)
			copy(want.Values, c.values)
			copy(got.Values, c.values)
			var wb, gb bytes.Buffer
			want.MarshalGQL(&wb)
			got.MarshalGQL(&gb)
			if gb.String() != wb.String() {
				t.Errorf("inlineObject wrote %s, graphql.FieldSet %s", gb.String(), wb.String())
			}
		})
	}
}
