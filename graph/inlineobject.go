package graph

import (
	"io"

	"github.com/99designs/gqlgen/graphql"
)

// inlineObject is the value of a GraphQL object whose fields were all resolved in place,
// none in a goroutine of its own (so none in a deferred fragment either): what a
// graphql.FieldSet is for such an object, without its machinery for the rest (a
// deferred group made for each object, a map of the aliases written, a copy of each
// field as it is written). tools/leanfields, the last step of gqlgen's generation, puts
// it in the generated object functions where that holds. It writes the same bytes as a
// FieldSet (TestInlineObjectWritesWhatFieldSetWrites).
type inlineObject struct {
	fields   []graphql.CollectedField
	Values   []graphql.Marshaler
	Invalids uint32
}

func newInlineObject(fields []graphql.CollectedField) *inlineObject {
	return &inlineObject{fields: fields, Values: make([]graphql.Marshaler, len(fields))}
}

// MarshalGQL writes {"alias":value,…} in the fields' order, an alias once, as
// graphql.FieldSet does.
func (o *inlineObject) MarshalGQL(w io.Writer) {
	io.WriteString(w, "{")
	first := true
	for i := range o.fields {
		alias := o.fields[i].Alias
		if o.written(i, alias) {
			continue
		}
		if !first {
			io.WriteString(w, ",")
		}
		first = false
		writeName(w, alias)
		io.WriteString(w, ":")
		o.Values[i].MarshalGQL(w)
	}
	io.WriteString(w, "}")
}

// written reports whether a field before i has the alias.
func (o *inlineObject) written(i int, alias string) bool {
	for j := range i {
		if o.fields[j].Alias == alias {
			return true
		}
	}
	return false
}

// writeName writes a GraphQL name as a JSON string. A name is letters, digits and
// underscores (the parser allows nothing else), so it needs no escaping; anything else
// goes through graphql.MarshalString, to be safe.
func writeName(w io.Writer, name string) {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			graphql.MarshalString(name).MarshalGQL(w)
			return
		}
	}
	io.WriteString(w, `"`)
	io.WriteString(w, name)
	io.WriteString(w, `"`)
}
