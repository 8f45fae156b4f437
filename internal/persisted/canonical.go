package persisted

import (
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/formatter"
)

// Canonical prints a document the one way the manifest stores documents: two-space
// indent, no comments. Two texts of one document print the same. ok is false for a
// document it cannot print faithfully: gqlparser's formatter drops directives on
// variable definitions, so that "query ($a: A @d) {…}" would print as another
// document (FuzzCanonical found it).
func Canonical(doc *ast.QueryDocument) (printed string, ok bool) {
	for _, op := range doc.Operations {
		for _, v := range op.VariableDefinitions {
			if len(v.Directives) > 0 {
				return "", false
			}
		}
	}
	var b strings.Builder
	formatter.NewFormatter(&b, formatter.WithIndent("  ")).FormatQueryDocument(doc)
	return b.String(), true
}
