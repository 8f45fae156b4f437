// Command manifestgen writes the persisted query manifest of the client documents: each
// .graphql file holds one operation (and the fragments it uses), is validated against
// the schema, and is stored formatted the canonical way under the hash of that text.
// A document the schema no longer accepts fails the build.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/wxlogin/wxlogin/internal/persisted"
)

func main() {
	schemaDir := flag.String("schema", "graph", "folder of the schema's .graphqls files")
	docsDir := flag.String("documents", "clients/documents", "folder of the client documents")
	out := flag.String("out", "manifest.json", "manifest to write")
	flag.Parse()
	if err := run(*schemaDir, *docsDir, *out); err != nil {
		fmt.Fprintln(os.Stderr, "manifestgen:", err)
		os.Exit(1)
	}
}

func run(schemaDir, docsDir, out string) error {
	schema, err := loadSchema(schemaDir)
	if err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(docsDir, "*.graphql"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no .graphql files in %s", docsDir)
	}
	m := persisted.Manifest{Format: persisted.ManifestFormat, Version: 1, Operations: []persisted.Operation{}}
	names := map[string]string{}
	for _, f := range files {
		op, err := operation(schema, f)
		if err != nil {
			return err
		}
		if other, dup := names[op.Name]; dup {
			return fmt.Errorf("%s: operation %s is also in %s", f, op.Name, other)
		}
		names[op.Name] = f
		m.Operations = append(m.Operations, op)
	}
	sort.Slice(m.Operations, func(i, j int) bool { return m.Operations[i].Name < m.Operations[j].Name })
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(out, append(b, '\n'), 0o644)
}

func loadSchema(dir string) (*ast.Schema, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.graphqls"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no .graphqls files in %s", dir)
	}
	sort.Strings(files)
	var sources []*ast.Source
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		sources = append(sources, &ast.Source{Name: f, Input: string(b)})
	}
	schema, gerr := gqlparser.LoadSchema(sources...)
	if gerr != nil {
		return nil, gerr
	}
	return schema, nil
}

func operation(schema *ast.Schema, file string) (persisted.Operation, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return persisted.Operation{}, err
	}
	doc, errs := gqlparser.LoadQueryWithRules(schema, string(b), nil) // nil: the default rules
	if len(errs) > 0 {
		return persisted.Operation{}, fmt.Errorf("%s: %v", file, errs)
	}
	if len(doc.Operations) != 1 || doc.Operations[0].Name == "" {
		return persisted.Operation{}, fmt.Errorf("%s: want exactly one named operation", file)
	}
	body, ok := persisted.Canonical(doc)
	if !ok {
		return persisted.Operation{}, fmt.Errorf("%s: directives on variables are not supported", file)
	}
	return persisted.Operation{
		ID:   persisted.Hash(body),
		Name: doc.Operations[0].Name,
		Type: string(doc.Operations[0].Operation),
		Body: body,
	}, nil
}
